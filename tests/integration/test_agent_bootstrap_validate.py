"""Every agent bootstrap golden must be accepted by the real Envoy (`envoy --mode validate`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pilotfish.agent.envoy import locate_envoy

GOLDENS = sorted((Path(__file__).parents[1] / "golden" / "agent").glob("bootstrap_*.json"))


def test_there_are_goldens_to_validate() -> None:
    assert len(GOLDENS) >= 2


@pytest.mark.envoy
@pytest.mark.parametrize("golden", GOLDENS, ids=lambda path: path.stem)
def test_envoy_accepts_bootstrap(golden: Path) -> None:
    result = subprocess.run(
        [str(locate_envoy(None)), "--mode", "validate", "-c", str(golden), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
