"""Push convergence tier: change -> every proxy ACKed (p50/p90/p99), placeholder until the
discovery server lands."""

from __future__ import annotations

from bench.figures import Figure, unavailable


def run(quick: bool, only: str = "") -> list[Figure]:
    return [unavailable("convergence", "needs the discovery server (pilotfish discovery)")]
