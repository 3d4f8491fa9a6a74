"""Tests of `pilotfish proxy-config` (pilotfish.inspect and its CLI)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

try:
    from tests.golden import check_golden
except ImportError:  # the skeleton's tests/golden/ package shadows tests/golden.py: load the helper by path
    _spec = importlib.util.spec_from_file_location("_golden_helper", Path(__file__).parents[2] / "golden.py")
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    check_golden = _module.check_golden

__all__ = ["check_golden"]
