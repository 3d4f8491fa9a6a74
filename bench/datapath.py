"""Data-path tier: requests/s and p50/p99 latency through gateway -> productpage with sidecars,
versus the same apps called directly (wrk over the local mesh's namespaces).

Needs the local mesh (`pilotfish up`), which has not landed yet: the tier says so.
"""

from __future__ import annotations

from bench.figures import Figure, unavailable


def run(quick: bool, only: str = "") -> list[Figure]:
    return [unavailable("datapath", "needs the local mesh (pilotfish up)")]
