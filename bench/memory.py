"""Memory tier: what one more proxy costs the control plane.

- `config_kb_per_proxy`: the serialized config one sidecar of the 1,000-service mesh receives (what
  crosses the wire per full push; Istio's `pilot_xds_config_size_bytes`).
- `retained_kb_per_proxy`: memory the generation cache keeps for each further proxy, measured with
  `tracemalloc` over many pods of different Deployments (their shared clusters, endpoints and
  routes are counted once; only what is the proxy's own remains).
- with the discovery server: its RSS with 0, 100 and 1,000 connected simulated proxies and the slope
  per connected proxy (target <= 200 KB), from `bench.convergence`'s fleet.
"""

from __future__ import annotations

import gc
import tracemalloc

from bench import meshes
from bench.figures import Figure, unavailable
from bench.generation import ready
from pilotfish.pipeline import generate, proxy_for_workload

PER_PROXY_TARGET_KB = 200.0


def generation_figures(services: int, proxies: int) -> list[Figure]:
    mesh = meshes.build(meshes.http_services(services))
    pods = [w for w in mesh.proxies() if w.deployment.startswith("svc-")][: proxies + 1]
    first = generate(mesh, proxy_for_workload(mesh, pods[0]))
    ready(first)
    config_kb = sum(r.size for s in first for r in s) / 1024
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for pod in pods[1:]:
        ready(generate(mesh, proxy_for_workload(mesh, pod)))
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    name = f"memory.sidecar-{services}"
    return [
        Figure(f"{name}.config_kb_per_proxy", config_kb, "KB"),
        Figure(f"{name}.retained_kb_per_proxy", grown / 1024 / (len(pods) - 1), "KB"),
    ]


def run(quick: bool, only: str = "") -> list[Figure]:
    services, proxies = (100, 20) if quick else (1000, 100)
    figures = generation_figures(services, proxies)
    figures.append(unavailable("memory.server", "needs the discovery server (pilotfish discovery)"))
    return figures
