"""Memory tier placeholder."""

from __future__ import annotations

from bench.figures import Figure, unavailable


def run(quick: bool, only: str = "") -> list[Figure]:
    return [unavailable("memory", "needs the discovery server (pilotfish discovery)")]
