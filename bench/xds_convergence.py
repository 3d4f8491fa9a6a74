"""Change -> all-ACK convergence of `pilotfish discovery`, and its memory per connected proxy.

    python -m bench.xds_convergence [--services 100] [--clients 100] [--envoys 2] [--rounds 5]

Runs `pilotfish discovery` as its own process over a generated manifests directory (N HTTP services,
one pod each), connects `--clients` simulated SotW ADS clients that behave like Envoy (wildcard CDS
and LDS, EDS/RDS by the names found in them, ACK every response) and `--envoys` real Envoy 1.40
sidecars (each in its own network namespace via `unshare --net`, so their 15001/15006 listeners do
not collide; xDS and admin over unix sockets; alternately SotW and delta), then edits the manifests:

  * endpoint change: one more replica of one service (new pod -> new endpoint in every sidecar's EDS)
  * VirtualService change: a weighted route of one service moves (every sidecar's RDS for that port)

For every change it waits until `/debug/syncz` shows every stream SYNCED at the new mesh version, and
reports, over all proxies, the time from the file write to the proxy's last ACK of what that change
pushed to it (p50/p90/p99/max). It also prints the server's RSS before the clients connect and with
all of them connected, as MB per connected proxy. Numbers are printed, never asserted: a shared 2-core
box is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from bench.meshes import http_services

ROOT = Path(__file__).resolve().parents[1]
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)


# --- manifests ----------------------------------------------------------------------------------------


def virtual_service(service: int, weight: int) -> str:
    host = f"svc-{service}"
    return f"""apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {{name: {host}, namespace: default}}
spec:
  host: {host}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: {host}, namespace: default}}
spec:
  hosts: [{host}]
  http:
  - route:
    - destination: {{host: {host}, subset: v1}}
      weight: {weight}
    - destination: {{host: {host}, subset: v2}}
      weight: {100 - weight}
"""


def extra_pod(round_: int) -> str:
    """One more pod behind svc-0: only svc-0's endpoints change for the other proxies."""
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: svc-0-extra-{round_}
  namespace: default
  labels: {{app: svc-0, version: v1}}
spec:
  containers: [{{name: app, ports: [{{containerPort: 8080}}]}}]
"""


def write(path: Path, text: str) -> float:
    """Atomic write; returns the wall-clock time of the change."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    now = time.time()
    tmp.replace(path)
    return now


# --- processes ----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def discovery(
    manifests: Path, sock: Path, log_path: Path | None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [
            *os.environ.get("BENCH_SERVER_PREFIX", sys.executable).split(),
            "-m",
            "pilotfish",
            "discovery",
            "--manifests",
            str(manifests),
            "--grpc",
            f"unix:{sock}",
            "--http",
            "127.0.0.1:0",
            "--log-level",
            "info" if log_path else "warning",
        ],
        stderr=log_path.open("w") if log_path else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        # the debug port is logged at info; ask the OS instead: the only TCP listener of this pid
        port = 0
        deadline = time.monotonic() + 30
        while not port and time.monotonic() < deadline:
            assert proc.poll() is None, "discovery exited"
            port = _listening_port(proc.pid)
            time.sleep(0.05)
        assert port, "discovery did not open its debug port"
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listening_port(pid: int) -> int:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
            return int(fields[1].split(":")[1], 16)
    return 0


def envoy_bootstrap(node: str, xds_sock: Path, admin_sock: Path, delta: bool) -> dict[str, Any]:
    return {
        "node": {"id": node, "cluster": "bench"},
        "admin": {"address": {"pipe": {"path": str(admin_sock)}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds-grpc",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": HTTP_OPTIONS,
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds-grpc",
                        "endpoints": [
                            {"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": str(xds_sock)}}}}]}
                        ],
                    },
                }
            ]
        },
    }


@contextlib.contextmanager
def real_envoys(nodes: list[str], workdir: Path, xds_sock: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    import sysconfig

    binary = Path(sysconfig.get_paths()["purelib"]) / "envoy" / "_bin" / "envoy"
    unshare = shutil.which("unshare")
    procs = []
    try:
        for i, node in enumerate(nodes):
            config = workdir / f"envoy-{i}.json"
            config.write_text(
                json.dumps(envoy_bootstrap(node, xds_sock, workdir / f"admin-{i}.sock", i % 2 == 1))
            )
            argv = [
                str(binary),
                "-c",
                str(config),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "error",
            ]
            if unshare and os.geteuid() == 0:
                argv = [unshare, "--net", *argv]  # own netns: sidecar listeners do not collide
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- simulated Envoy ------------------------------------------------------------------------------------


def eds_names(response: discovery_pb2.DiscoveryResponse) -> list[str]:
    names = []
    for packed in response.resources:
        cluster = cluster_pb2.Cluster()
        packed.Unpack(cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            names.append(cluster.eds_cluster_config.service_name or cluster.name)
    return names


def rds_names(response: discovery_pb2.DiscoveryResponse) -> list[str]:
    names = set()
    for packed in response.resources:
        listener = listener_pb2.Listener()
        packed.Unpack(listener)
        for chain in [*listener.filter_chains, listener.default_filter_chain]:
            for f in chain.filters:
                if f.typed_config.type_url == HCM_TYPE:
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    if hcm.HasField("rds"):
                        names.add(hcm.rds.route_config_name)
    return sorted(names)


async def fake_envoy(channel: grpc.aio.Channel, node: str, stop: asyncio.Event) -> None:
    """Envoy's SotW sequence: CDS, EDS by name, LDS after CDS, RDS by name; ACK everything."""
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    call = stub.StreamAggregatedResources()
    first = discovery_pb2.DiscoveryRequest(type_url=CDS)
    first.node.id = node
    await call.write(first)
    names: dict[str, list[str]] = {CDS: [], LDS: [], EDS: [], RDS: []}
    asked_lds = False
    try:
        while not stop.is_set():
            response = await call.read()
            if response is grpc.aio.EOF:
                return
            t = response.type_url
            if t == CDS:
                wanted = eds_names(response)
                if wanted != names[EDS]:
                    names[EDS] = wanted
                    await call.write(
                        discovery_pb2.DiscoveryRequest(type_url=EDS, resource_names=wanted, response_nonce="")
                    )
            if t == LDS:
                wanted = rds_names(response)
                if wanted != names[RDS]:
                    names[RDS] = wanted
                    await call.write(discovery_pb2.DiscoveryRequest(type_url=RDS, resource_names=wanted))
            await call.write(
                discovery_pb2.DiscoveryRequest(
                    type_url=t,
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                    resource_names=names[t],
                )
            )
            if t == CDS and not asked_lds:
                asked_lds = True
                await call.write(discovery_pb2.DiscoveryRequest(type_url=LDS))
    except (grpc.aio.AioRpcError, asyncio.CancelledError):
        return
    finally:
        call.cancel()


# --- measurement ----------------------------------------------------------------------------------------


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0


async def syncz(session: aiohttp.ClientSession, port: int) -> list[dict[str, Any]]:
    async with session.get(f"http://127.0.0.1:{port}/debug/syncz") as r:
        data: list[dict[str, Any]] = json.loads(await r.text())
        return data


async def wait_converged(
    session: aiohttp.ClientSession, port: int, count: int, changed_at: float, timeout: float = 60.0
) -> list[float]:
    """Per proxy: seconds from the change to its last ACK of what the change pushed to it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = await syncz(session, port)
        versions = {e["mesh_version"] for e in entries}
        pushed = [
            e for e in entries if any(_ts(d["sent_at"]) >= changed_at - 0.001 for d in e["types"].values())
        ]
        done = (
            len(entries) >= count
            and len(versions) == 1
            and len(pushed) == len(entries)
            and all(d["status"] == "SYNCED" for e in entries for d in e["types"].values())
        )
        if done:
            return [
                max(
                    _ts(d["acked_at"]) for d in e["types"].values() if _ts(d["sent_at"]) >= changed_at - 0.001
                )
                - changed_at
                for e in entries
            ]
        await asyncio.sleep(0.05)  # polling syncz costs the server CPU; the result uses ACK times anyway
    raise SystemExit(f"not converged after {timeout}s")


def summary(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return (
        f"{label:<24} n={len(ms):<5} p50={q[49]:7.1f} ms  p90={q[89]:7.1f} ms  p99={q[98]:7.1f} ms"
        f"  max={ms[-1]:7.1f} ms"
    )


@contextlib.asynccontextmanager
async def fake_fleet(sock: Path, nodes: list[str]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    channels = [grpc.aio.insecure_channel(f"unix:{sock}") for _ in range(max(1, len(nodes) // 25))]
    tasks = [
        asyncio.create_task(fake_envoy(channels[i % len(channels)], n, stop)) for i, n in enumerate(nodes)
    ]
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pf-bench-conv-") as tmp:
        work = Path(tmp)
        manifests = work / "manifests"
        manifests.mkdir()
        write(manifests / "services.yaml", http_services(args.services))
        routes = manifests / "routes.yaml"
        write(routes, virtual_service(1, 100))
        extra = manifests / "extra.yaml"
        sock = work / "xds.sock"
        with discovery(manifests, sock, args.server_log) as (server, port):
            async with aiohttp.ClientSession() as session:
                await asyncio.sleep(0.5)
                idle = rss_mb(server.pid)
                # node ids: the sidecars of the generated pods (their names come from the mesh)
                async with session.get(f"http://127.0.0.1:{port}/debug/registryz") as r:
                    workloads = json.loads(await r.text())["workloads"]
                ids = [
                    f"sidecar~{w['ip']}~{w['name']}.{w['namespace']}~{w['namespace']}.svc.cluster.local"
                    for w in workloads
                ]
                fakes = [ids[(args.envoys + i) % len(ids)] for i in range(args.clients)]
                with real_envoys(ids[: args.envoys], work, sock):
                    async with fake_fleet(sock, fakes):
                        total = args.clients + args.envoys
                        started = time.time()
                        await wait_converged(session, port, total, started - 1, timeout=120)
                        connected = rss_mb(server.pid)
                        print(
                            f"services={args.services} fake clients={args.clients} real envoys={args.envoys}"
                        )
                        print(f"initial sync of {total} proxies: {time.time() - started:.2f} s")
                        print(
                            f"discovery RSS: idle {idle:.1f} MB, {total} proxies connected {connected:.1f} MB"
                            f" -> {(connected - idle) / total * 1024:.0f} KB per connected proxy"
                        )
                        endpoint, vs = [], []
                        for round_ in range(args.rounds):
                            text = extra_pod(round_) if round_ % 2 == 0 else ""
                            endpoint += await wait_converged(session, port, total, write(extra, text))
                            vs += await wait_converged(
                                session, port, total, write(routes, virtual_service(1, 50 + round_))
                            )
                        print(summary("endpoint change", endpoint))
                        print(summary("VirtualService change", vs))
                        async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                            text = await r.text()
                        pushes = re.findall(r'^pilot_xds_pushes\{type="(\w+)"\} (\S+)$', text, re.M)
                        print("pushes by type: " + ", ".join(f"{t}={v}" for t, v in pushes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--envoys", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--server-log", type=Path, help="write the discovery server's info log here")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
