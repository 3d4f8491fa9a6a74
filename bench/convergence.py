"""Push convergence tier: a change to the manifests -> every proxy ACKed what it needs (p50/p90/p99).

`pilotfish discovery` runs as its own process on a generated manifests directory (`bench.server`;
loopback only: ADS on a unix socket, debug HTTP on 127.0.0.1). A fleet of simulated Envoys
(`bench.fleet`, half SotW, half delta) and a few real Envoy 1.40 sidecars run by `pilotfish agent`
(`bench.sidecars`, each in its own network namespace) connect to it. Then, in rounds:

- endpoint change: one more pod behind svc-0 (every sidecar's EDS for svc-0 changes);
- VirtualService change: the weights of svc-1's route move (every sidecar's RDS for port 8080).

A proxy's convergence for a change is the time from the file write to its last ACK of what the
change pushed to it (so polling, debounce, parsing, building, generating and sending are all in
it). Simulated clients record their ACK times themselves; the real Envoys' come from the server's
`/debug/syncz`, read once after the fleet went quiet, which also checks that every stream is
SYNCED at the final mesh version (otherwise the figure is reported as not converged). Per change
it also counts the responses every simulated proxy received (`pushes_per_proxy`, split by type in
the note): a well-scoped change costs each proxy one response of one type (EDS, resp. RDS).

The server polls the directory every 10 ms and debounces 10 ms (its defaults are 100 ms each, which
alone would exceed the 100 ms endpoint target); the settings are part of the figure's note.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import sidecars
from bench.figures import Figure, unavailable
from bench.fleet import FakeEnvoy, fleet, quiet
from bench.meshes import extra_pod, http_services, weighted_route
from bench.server import Server, node_id, serving, timestamp

SERVER_SETTINGS = ("--poll", "10ms", "--debounce", "10ms")
SETTINGS_NOTE = "server: --poll 10ms --debounce 10ms"
TARGETS_MS = {("endpoint", 100): 100.0, ("virtualservice", 1000): 1000.0}
ROUTES, EXTRA = "routes.yaml", "extra.yaml"


@dataclass(frozen=True, slots=True)
class Setup:
    """One server + fleet configuration."""

    services: int
    replicas: int
    clients: int
    envoys: int
    rounds: int


def envoy_convergence(entries: list[dict[str, Any]], envoys: set[str], since: float) -> list[float]:
    """Per real Envoy: its last ACK of a type sent after `since`, in seconds after `since`."""
    result = []
    for entry in entries:
        if entry["node_id"] not in envoys:
            continue
        acks = [
            timestamp(d["acked_at"])
            for d in entry["types"].values()
            if timestamp(d["sent_at"]) >= since - 0.001
        ]
        if acks:
            result.append(max(acks) - since)
    return result


def percentiles(prefix: str, samples_s: list[float], target: float | None, note: str) -> list[Figure]:
    if not samples_s:
        return [unavailable(prefix, "no samples (did not converge)")]
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return [
        Figure(f"{prefix}.p50", q[49], "ms", note=note),
        Figure(f"{prefix}.p90", q[89], "ms"),
        Figure(f"{prefix}.p99", q[98], "ms", target),
        Figure(f"{prefix}.max", ms[-1], "ms"),
    ]


async def measure(setup: Setup) -> list[Figure]:
    manifests = {"services.yaml": http_services(setup.services, replicas=setup.replicas)}
    manifests[ROUTES] = weighted_route(1, 100)
    async with serving("pf-bench-conv-", manifests, SERVER_SETTINGS) as server:
        workloads = await server.workloads()
        ids = [node_id(w) for w in workloads]
        if setup.envoys and (reason := sidecars.available()):
            print(f"# convergence: no real Envoys: {reason}", file=sys.stderr)
            setup = dataclasses.replace(setup, envoys=0)
        envoys = setup.envoys
        clients = [FakeEnvoy(ids[(envoys + i) % len(ids)], delta=i % 2 == 1) for i in range(setup.clients)]
        with sidecars.sidecars(workloads[:envoys], server.work, server.sock):
            async with fleet(server.sock, clients):
                return await _rounds(setup, server, clients, set(ids[:envoys]))


async def _rounds(setup: Setup, server: Server, clients: list[FakeEnvoy], envoys: set[str]) -> list[Figure]:
    total = setup.clients + setup.envoys
    started = time.time()
    await quiet(clients, started, settle=0.5, timeout=120)  # without polling syncz meanwhile
    await server.synced(total)
    figures = [Figure(f"convergence.{setup.clients}.initial_sync", time.time() - started, "s")]
    idle_from, idle_cpu = time.monotonic(), server.cpu_seconds()
    await asyncio.sleep(1.0)
    idle_rate = (server.cpu_seconds() - idle_cpu) / (time.monotonic() - idle_from)  # polling the directory
    samples: dict[str, list[float]] = {"endpoint": [], "virtualservice": []}
    envoy_samples: dict[str, list[float]] = {"endpoint": [], "virtualservice": []}
    cpu: dict[str, list[float]] = {"endpoint": [], "virtualservice": []}
    pushes: dict[str, Counter[str]] = {"endpoint": Counter(), "virtualservice": Counter()}
    for round_ in range(setup.rounds):
        changes = {
            "endpoint": (EXTRA, extra_pod(round_) if round_ % 2 == 0 else ""),
            "virtualservice": (ROUTES, weighted_route(1, 50 + round_)),
        }
        for kind, (name, text) in changes.items():
            before, began = server.cpu_seconds(), time.monotonic()
            when = server.write(name, text)
            await quiet(clients, when, settle=0.5)
            # before syncz (its JSON is not the push's cost), less the idle polling meanwhile
            cpu[kind].append(server.cpu_seconds() - before - idle_rate * (time.monotonic() - began))
            entries = await server.synced(total, timeout=60)
            samples[kind] += [t - when for c in clients if (t := c.last_ack_after(when)) is not None]
            envoy_samples[kind] += envoy_convergence(entries, envoys, when)
            for client in clients:
                pushes[kind] += client.responses_after(when)
    for kind in samples:
        prefix = f"convergence.{kind}.{setup.clients}"
        note = (
            f"{setup.services} services x {setup.replicas} pods, {setup.clients} simulated"
            f" + {setup.envoys} Envoys; {SETTINGS_NOTE}"
        )
        figures += percentiles(prefix, samples[kind], TARGETS_MS.get((kind, setup.clients)), note)
        if envoy_samples[kind]:
            figures.append(Figure(f"{prefix}.real_envoys_max", max(envoy_samples[kind]) * 1000, "ms"))
        figures.append(Figure(f"{prefix}.server_cpu_per_change", statistics.median(cpu[kind]) * 1000, "ms"))
        figures.append(pushes_per_proxy(prefix, pushes[kind], len(clients) * setup.rounds))
    return figures


def pushes_per_proxy(prefix: str, pushes: Counter[str], changes: int) -> Figure:
    """Responses a simulated proxy got per change (the server's `pilot_xds_pushes`, per proxy and
    change), by type in the note: a well-scoped change pushes one response of one type."""
    by_type = ", ".join(f"{kind} {count / changes:.2g}" for kind, count in sorted(pushes.items()))
    return Figure(f"{prefix}.pushes_per_proxy", sum(pushes.values()) / changes, "responses", note=by_type)


def run(quick: bool, only: str = "") -> list[Figure]:
    setups = (
        [Setup(services=20, replicas=1, clients=20, envoys=0, rounds=2)]
        if quick
        else [
            Setup(services=100, replicas=1, clients=100, envoys=2, rounds=3),
            Setup(services=100, replicas=10, clients=1000, envoys=2, rounds=3),
        ]
    )
    figures: list[Figure] = []
    for setup in setups:
        figures += asyncio.run(measure(setup))
    return figures
