"""Shared pytest fixtures and options.

`--update-golden` (or UPDATE_GOLDEN=1) rewrites golden files instead of comparing them; see
`tests/golden.py`.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files with the current output instead of comparing",
    )
