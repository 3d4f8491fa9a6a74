"""Push convergence tier: a change to the manifests -> every proxy ACKed what it needs (p50/p90/p99).

`pilotfish discovery` runs as its own process on a generated manifests directory (loopback only:
ADS on a unix socket, debug HTTP on 127.0.0.1). A fleet of simulated Envoys (`bench.fleet`, half
SotW, half delta) and a few real Envoy 1.40 sidecars started with the agent-shaped bootstrap of
`bench.xds_convergence` (each in its own network namespace) connect to it. Then, in rounds:

- endpoint change: one more pod behind svc-0 (every sidecar's EDS for svc-0 changes);
- VirtualService change: the weights of svc-1's route move (every sidecar's RDS for port 8080).

A proxy's convergence for a change is the time from the file write to its last ACK of what the
change pushed to it (so polling, debounce, parsing, building, generating and sending are all in
it). Simulated clients record their ACK times themselves; the real Envoys' come from the server's
`/debug/syncz`, read once after the fleet went quiet, which also checks that every stream is
SYNCED at the final mesh version (otherwise the figure is reported as not converged).

The server polls the directory every 10 ms and debounces 10 ms (its defaults are 100 ms each, which
alone would exceed the 100 ms endpoint target); the settings are part of the figure's note.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import xds_convergence as harness
from bench.figures import Figure, unavailable
from bench.fleet import FakeEnvoy, fleet, quiet
from bench.meshes import http_services

SERVER_SETTINGS = ("--poll", "10ms", "--debounce", "10ms")
SETTINGS_NOTE = "server: --poll 10ms --debounce 10ms"
TARGETS_MS = {("endpoint", 100): 100.0, ("virtualservice", 1000): 1000.0}


@dataclass(frozen=True, slots=True)
class Setup:
    """One server + fleet configuration."""

    services: int
    replicas: int
    clients: int
    envoys: int
    rounds: int


def node_ids(workloads: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"sidecar~{w['ip']}~{w['name']}.{w['namespace']}~{w['namespace']}.svc.cluster.local"
        for w in workloads
    ]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (clock ticks of 1/100 s on Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


async def syncz(session: aiohttp.ClientSession, port: int) -> list[dict[str, Any]]:
    async with session.get(f"http://127.0.0.1:{port}/debug/syncz") as response:
        data: list[dict[str, Any]] = json.loads(await response.text())
        return data


async def synced(
    session: aiohttp.ClientSession, port: int, count: int, timeout: float = 120.0
) -> list[dict[str, Any]]:
    """syncz once every 0.5 s until `count` streams are SYNCED at one mesh version."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = await syncz(session, port)
        versions = {e["mesh_version"] for e in entries}
        statuses = [d["status"] for e in entries for d in e["types"].values()]
        if len(entries) >= count and len(versions) == 1 and all(s == "SYNCED" for s in statuses):
            return entries
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{count} streams not synced after {timeout} s")


def envoy_convergence(entries: list[dict[str, Any]], envoys: set[str], since: float) -> list[float]:
    """Per real Envoy: its last ACK of a type sent after `since`, in seconds after `since`."""
    result = []
    for entry in entries:
        if entry["node_id"] not in envoys:
            continue
        acks = [
            harness._ts(d["acked_at"])
            for d in entry["types"].values()
            if harness._ts(d["sent_at"]) >= since - 0.001
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
    with tempfile.TemporaryDirectory(prefix="pf-bench-conv-") as tmp:
        work = Path(tmp)
        manifests = work / "manifests"
        manifests.mkdir()
        harness.write(manifests / "services.yaml", http_services(setup.services, replicas=setup.replicas))
        routes, extra = manifests / "routes.yaml", manifests / "extra.yaml"
        harness.write(routes, harness.virtual_service(1, 100))
        sock = work / "xds.sock"
        with harness.discovery(manifests, sock, None, SERVER_SETTINGS) as (server, port):
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/debug/registryz") as response:
                    ids = node_ids(json.loads(await response.text())["workloads"])
                envoy_ids = ids[: setup.envoys]
                clients = [
                    FakeEnvoy(ids[(setup.envoys + i) % len(ids)], delta=i % 2 == 1)
                    for i in range(setup.clients)
                ]
                with harness.real_envoys(envoy_ids, work, sock):
                    async with fleet(sock, clients):
                        return await _rounds(
                            setup, session, port, server.pid, clients, set(envoy_ids), routes, extra
                        )


async def _rounds(
    setup: Setup,
    session: aiohttp.ClientSession,
    port: int,
    pid: int,
    clients: list[FakeEnvoy],
    envoys: set[str],
    routes: Path,
    extra: Path,
) -> list[Figure]:
    total = setup.clients + setup.envoys
    started = time.time()
    await quiet(clients, started, settle=0.5, timeout=120)  # without polling syncz meanwhile
    await synced(session, port, total)
    figures = [Figure(f"convergence.{setup.clients}.initial_sync", time.time() - started, "s")]
    idle_from, idle_cpu = time.monotonic(), cpu_seconds(pid)
    await asyncio.sleep(1.0)
    idle_rate = (cpu_seconds(pid) - idle_cpu) / (time.monotonic() - idle_from)  # polling the directory
    samples: dict[str, list[float]] = {"endpoint": [], "virtualservice": []}
    envoy_samples: dict[str, list[float]] = {"endpoint": [], "virtualservice": []}
    cpu: dict[str, list[float]] = {"endpoint": [], "virtualservice": []}
    for round_ in range(setup.rounds):
        changes = {
            "endpoint": (extra, harness.extra_pod(round_) if round_ % 2 == 0 else ""),
            "virtualservice": (routes, harness.virtual_service(1, 50 + round_)),
        }
        for kind, (path, text) in changes.items():
            before, began = cpu_seconds(pid), time.monotonic()
            when = harness.write(path, text)
            await quiet(clients, when, settle=0.5)
            # before syncz (its JSON is not the push's cost), less the idle polling meanwhile
            cpu[kind].append(cpu_seconds(pid) - before - idle_rate * (time.monotonic() - began))
            entries = await synced(session, port, total, timeout=60)
            samples[kind] += [t - when for c in clients if (t := c.last_ack_after(when)) is not None]
            envoy_samples[kind] += envoy_convergence(entries, envoys, when)
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
    return figures


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
