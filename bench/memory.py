"""Memory tier: what one more proxy costs the control plane.

- `config_kb_per_proxy`: the serialized config one sidecar of the 1,000-service mesh receives (what
  crosses the wire per full push; Istio's `pilot_xds_config_size_bytes`).
- `retained_kb_per_proxy`: memory the generation cache keeps for each further proxy, measured with
  `tracemalloc` over many pods of different Deployments (their shared clusters, endpoints and
  routes are counted once; only what is the proxy's own remains).
- with the discovery server: its RSS with 0, 100 and 1,000 connected simulated proxies and the slope
  per connected proxy (target <= 200 KB), with the simulated proxies of `bench.fleet`.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc

from bench import meshes
from bench.figures import Figure
from bench.fleet import FakeEnvoy, fleet, quiet
from bench.generation import ready
from bench.server import Server, serving
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


async def server_figures(services: int, replicas: int, steps: tuple[int, int]) -> list[Figure]:
    """RSS of `pilotfish discovery` idle, then with `steps[0]` and `steps[1]` simulated proxies
    (distinct pods, half SotW, half delta) connected and synced."""
    manifests = {"services.yaml": meshes.http_services(services, replicas=replicas)}
    async with serving("pf-bench-mem-", manifests) as server:
        ids = await server.node_ids()
        await asyncio.sleep(1.0)
        rss = {0: server.rss_mb()}
        clients = [FakeEnvoy(ids[i % len(ids)], delta=i % 2 == 1) for i in range(steps[1])]
        async with fleet(server.sock, clients[: steps[0]]):
            rss[steps[0]] = await _settled_rss(server, clients[: steps[0]])
            async with fleet(server.sock, clients[steps[0] :]):
                rss[steps[1]] = await _settled_rss(server, clients)
    name = f"memory.server.{services}x{replicas}"
    slope = (rss[steps[1]] - rss[0]) * 1024 / steps[1]
    return [
        *(Figure(f"{name}.rss_{n}_proxies", mb, "MB") for n, mb in rss.items()),
        Figure(f"{name}.kb_per_connected_proxy", slope, "KB", PER_PROXY_TARGET_KB),
        Figure(
            f"{name}.kb_per_proxy_{steps[0]}_to_{steps[1]}",
            (rss[steps[1]] - rss[steps[0]]) * 1024 / (steps[1] - steps[0]),
            "KB",
        ),
    ]


async def _settled_rss(server: Server, clients: list[FakeEnvoy]) -> float:
    started = time.time()
    await quiet(clients, started - 60, settle=0.5, timeout=120)
    await server.synced(len(clients))
    await asyncio.sleep(1.0)
    return server.rss_mb()


def run(quick: bool, only: str = "") -> list[Figure]:
    services, proxies = (100, 20) if quick else (1000, 100)
    figures = generation_figures(services, proxies)
    if quick:
        figures += asyncio.run(server_figures(20, 5, (10, 100)))
    else:
        figures += asyncio.run(server_figures(100, 10, (100, 1000)))
    return figures
