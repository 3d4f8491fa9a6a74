"""The sample apps run in pods without the project's virtualenv: standard library imports only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.unit.samples.conftest import SAMPLES

APPS = sorted(SAMPLES.rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_there_are_apps() -> None:
    assert {p.name for p in APPS} >= {
        "productpage.py",
        "details.py",
        "reviews.py",
        "ratings.py",
        "httpbin.py",
    }


@pytest.mark.parametrize("path", APPS, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_app_imports_only_the_standard_library_and_its_siblings(path: Path) -> None:
    siblings = {p.stem for p in path.parent.glob("*.py")}
    foreign = imported_modules(path) - set(sys.stdlib_module_names) - siblings - {"__future__"}
    assert not foreign, f"{path.name} imports {sorted(foreign)}"
