"""Golden test data and tests.

This package shadows the helper module `tests/golden.py` (same import name `tests.golden`), so the helper
is loaded from its file and re-exported here: `from tests.golden import check_golden` works everywhere.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "tests._golden_helper", Path(__file__).parent.parent / "golden.py"
)
assert _spec is not None and _spec.loader is not None
_helper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helper)

check_golden = _helper.check_golden
updating = _helper.updating

__all__ = ["check_golden", "updating"]
