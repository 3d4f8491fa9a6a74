"""Golden-file comparison: fail with a readable unified diff, refresh with one flag.

Refresh with `./dev test --update-golden` (or `UPDATE_GOLDEN=1 ./dev test`).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest


def updating(config: pytest.Config) -> bool:
    return bool(config.getoption("--update-golden")) or os.environ.get("UPDATE_GOLDEN") == "1"


def check_golden(request: pytest.FixtureRequest, path: Path, actual: str) -> None:
    """Compare `actual` with the golden file at `path`, or rewrite it when refreshing."""
    if updating(request.config):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing; run the tests with --update-golden to create it")
    expected = path.read_text()
    if expected != actual:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{path} (golden)",
                tofile="actual",
                n=3,
            )
        )
        message = f"output differs from golden {path} (refresh with --update-golden):\n{diff}"
        pytest.fail(message, pytrace=False)
