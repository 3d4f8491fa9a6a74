"""The benchmark entry point, smallest tier only: it runs and writes figures of the promised shape.

No timing is asserted here (numbers are for `python -m bench`, not for CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.figures import Figure, unavailable
from tests.paths import REPO

KEYS = {"name", "value", "unit", "target", "pass"}


def test_quick_generation_tier_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--tier", "generation", "--quick", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures and all(set(f) == KEYS for f in figures)
    names = [f["name"] for f in figures]
    assert len(names) == len(set(names))
    for shape in ("http", "tcp", "virtualservice", "gateways", "gateways-shared", "endpoints-10/10"):
        for metric in ("cold.ms_per_op", "nth.ms_per_op", "RDS.kb_per_msg", "CDS.resources_per_msg"):
            assert f"generation.{shape}.{metric}" in names
    assert all(isinstance(f["value"], int | float) and f["value"] >= 0 for f in figures)
    assert all(f["pass"] is None for f in figures if f["target"] is None)
    assert "generation.sidecar-100.cold.ms_per_op" in result.stdout  # the table is printed too


def test_figure_pass_is_computed_against_an_upper_bound() -> None:
    assert Figure("x", 4.0, "ms", 5.0).as_json()["pass"] is True
    assert Figure("x", 6.0, "ms", 5.0).as_json()["pass"] is False
    assert Figure("x", 6.0, "ms").as_json() == {
        "name": "x",
        "value": 6.0,
        "unit": "ms",
        "target": None,
        "pass": None,
    }
    missing = unavailable("datapath", "needs the local mesh")
    assert missing.as_json()["value"] is None and missing.as_json()["pass"] is None
    assert "needs the local mesh" in missing.note
