"""A running `pilotfish up` (the real command, as a subprocess) for the full-mesh e2e tests.

`LocalMesh` starts it on a private copy of the samples (one DIR or several), waits for "all N pods ready",
and offers what
the tests need: requests through the ingress gateway (127.0.0.1:<port>, the relay), commands inside pods,
Envoy admin reads over the pods' unix sockets, applying/removing config files and waiting until every
Envoy has acknowledged the resulting mesh version (the discovery server's /debug/syncz), and
`stop()`, which must leave nothing behind.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from pilotfish.sandbox.state import MeshState, PodState, find_pod, read_state
from pilotfish.sources.manifests import content_version, read_manifests
from tests.e2e.sandbox_helpers import SRC, in_pod, wait_for
from tests.paths import CONFORMANCE

ISTIO_NETWORKING = CONFORMANCE / "istio-samples" / "bookinfo" / "networking"
REVIEWS_BY = re.compile(r"Reviews served by: (\S+) \(<span class=\"reviews-version\">(v\d)</span>\)")
START_TIMEOUT = 120.0
CONVERGE_TIMEOUT = 30.0


class LocalMesh:
    def __init__(self, directory: Path, prefix: str, ingress_port: int, dirs: list[Path] | None = None) -> None:
        self.dir, self.prefix, self.port = directory, prefix, ingress_port
        self.dirs = dirs or [directory]
        """The DIRs given to `up` (`directory` holds them all: tests edit files under it)."""
        self.log_path = Path(f"/tmp/{prefix}up-{os.getpid()}.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = ""
        self.state: MeshState | None = None
        self._mesh_original: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> float:
        """Run `pilotfish up` and wait for its table; returns the seconds it took."""
        began = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pilotfish", "up", *map(str, self.dirs), "--prefix", self.prefix,
                 "--ingress-port", str(self.port), "--timeout", str(timeout)],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": SRC})

        def started() -> bool:
            self.output = self.log_path.read_text(errors="replace")
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"pilotfish up exited ({self.proc.returncode}):\n{self.output}")
            return "Stop with Ctrl-C" in self.output

        wait_for("pilotfish up to report all pods ready", started, timeout + 10)
        self.state = read_state(self.prefix)
        assert self.state is not None
        return time.monotonic() - began

    def stop(self) -> str:
        """SIGTERM `up` (as Ctrl-C or `pilotfish down` would) and return its whole output."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.output = self.log_path.read_text(errors="replace") if self.log_path.exists() else self.output
        self.log_path.unlink(missing_ok=True)
        return self.output

    def refresh(self) -> MeshState:
        self.state = read_state(self.prefix)
        assert self.state is not None
        return self.state

    # -- pods -------------------------------------------------------------------------------------------

    def pod(self, ref: str, namespace: str | None = None) -> PodState:
        return find_pod(self.refresh(), ref, namespace)

    @property
    def gateway(self) -> PodState:
        return next(p for p in self.refresh().pods if p.proxy_type == "router")

    def exec(self, ref: str, argv: list[str], *, uid: int | None = 1000, timeout: float = 30,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return in_pod(self.pod(ref).netns, argv, uid=uid, timeout=timeout, check=check)

    def curl(self, ref: str, url: str, *args: str, uid: int = 1000, timeout: float = 10) -> tuple[int, str]:
        """(status, body) of one request made by a process of the pod (captured by its sidecar)."""
        done = self.exec(ref, ["curl", "-sS", "-m", str(timeout), "-w", "\n%{http_code}",
                               *args, url], uid=uid, timeout=timeout + 10, check=False)
        body, _, code = done.stdout.rpartition("\n")
        return int(code or 0), body

    def admin(self, ref: str, path: str, namespace: str | None = None, method: str = "GET") -> str:
        """GET an Envoy admin path over the pod's admin unix socket."""
        conn = _UnixHTTP(self.pod(ref, namespace).admin)
        try:
            conn.request(method, path)
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def stats(self, ref: str, pattern: str, namespace: str | None = None) -> dict[str, int]:
        text = self.admin(ref, f"/stats?filter={urllib.parse.quote(pattern)}", namespace)
        result = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                result[name] = int(value)
        return result

    # -- the gateway ------------------------------------------------------------------------------------

    def get(self, path: str = "/productpage", headers: dict[str, str] | None = None,
            timeout: float = 30) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()

    def login(self, user: str) -> str:
        """Productpage's login: returns the Cookie header value its later calls carry."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/login", body=f"username={user}&passwd=x",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            response.read()
            cookie = response.getheader("Set-Cookie") or ""
        finally:
            conn.close()
        assert cookie, "productpage set no cookie"
        return cookie.split(";")[0]

    def reviews_versions(self, count: int, cookie: str = "") -> Counter[str]:
        """Which reviews version served each of `count` product pages (`error` when reviews failed)."""
        headers = {"Cookie": cookie} if cookie else {}

        def one(_: int) -> str:
            status, body = self.get("/productpage", headers)
            assert status == 200, (status, body[:300])
            match = REVIEWS_BY.search(body)
            return match.group(2) if match else "error"

        with ThreadPoolExecutor(4) as pool:
            return Counter(pool.map(one, range(count)))

    # -- config -------------------------------------------------------------------------------------------

    def apply(self, *texts: str) -> None:
        """`kubectl apply`: each object goes to its own file in the mesh directory (a later object with the
        same kind/namespace/name replaces it); then wait until every Envoy has the result."""
        for text in texts:
            for name, doc in objects(text):
                (self.dir / "config" / name).write_text(doc)
        self.converge()

    def apply_istio(self, *names: str) -> None:
        """Istio's own Bookinfo sample config (tests/data/conformance), applied unchanged."""
        self.apply(*((ISTIO_NETWORKING / name).read_text() for name in names))

    def delete(self, *texts: str) -> None:
        for text in texts:
            for name, _ in objects(text):
                (self.dir / "config" / name).unlink(missing_ok=True)
        self.converge()

    def remove(self, *names: str) -> None:
        for name in names:
            (self.dir / "config" / name).unlink(missing_ok=True)
        self.converge()

    @property
    def mesh_config_file(self) -> Path:
        """The `istio` ConfigMap of the mesh (samples/bookinfo/mesh.yaml): edited in place, as
        `kubectl edit configmap istio -n istio-system` would, since a second one would be a duplicate."""
        return self.dir / "bookinfo" / "mesh.yaml"

    def set_mesh_config(self, mesh_yaml: str) -> None:
        """Replace the `mesh` key of the `istio` ConfigMap (kept as it was started by `clear_config`)."""
        if self._mesh_original is None:
            self._mesh_original = self.mesh_config_file.read_text()
        body = "".join(f"    {line}\n" for line in mesh_yaml.strip().splitlines())
        self.mesh_config_file.write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  namespace: istio-system\n"
            f"data:\n  mesh: |-\n{body}")
        self.converge()

    def clear_config(self) -> None:
        names = [p.name for p in (self.dir / "config").iterdir()]
        if self._mesh_original is not None:
            self.mesh_config_file.write_text(self._mesh_original)
            self._mesh_original = None
            if not names:
                self.converge()
        if names:
            self.remove(*names)

    def syncz(self) -> list[dict[str, Any]]:
        conn = http.client.HTTPConnection(*self.refresh().discovery_http.split(":"), timeout=5)
        try:
            conn.request("GET", "/debug/syncz")
            return list(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    def expected_version(self) -> str:
        """The mesh version of what the discovery server reads: the DIRs, then `up`'s pod status reports."""
        status = self.state.status_dir if self.state else ""
        texts, _ = read_manifests([*self.dirs, *([Path(status)] if status else [])])
        return content_version(texts)

    def converge(self, timeout: float = CONVERGE_TIMEOUT) -> None:
        """Wait until every proxy of the mesh acknowledged the mesh version of the files as they are now."""
        proxies = {p.proxy_id for p in self.refresh().pods if p.proxy_type}

        def synced() -> bool:
            want = self.expected_version()  # the status reports may change meanwhile (a pod restarting)
            try:
                streams = self.syncz()
            except (OSError, ValueError):
                return False
            current = {s["proxy"]: s for s in streams}
            return set(current) >= proxies and all(
                current[p]["mesh_version"] == want
                and all(t["status"] == "SYNCED" for t in current[p]["types"].values())
                for p in proxies)

        wait_for("every proxy to acknowledge the mesh version of the files", synced, timeout)

    def endpoints(self, ref: str, cluster: str, namespace: str | None = None) -> set[str]:
        """`ip:port` of each host of `cluster` in a pod's Envoy (admin /clusters, what proxy-config endpoint
        reads)."""
        clusters = json.loads(self.admin(ref, "/clusters?format=json", namespace))
        found = next((c for c in clusters["cluster_statuses"] if c["name"] == cluster), {})
        return {f"{h['address']['socket_address']['address']}:{h['address']['socket_address']['port_value']}"
                for h in found.get("host_statuses", [])}


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class ClientLoop:
    """Requests through the gateway in a loop on a thread, counting every status (0 = no response)."""

    def __init__(self, mesh: LocalMesh, path: str = "/productpage") -> None:
        self.mesh, self.path = mesh, path
        self.results: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.mesh.get(self.path, timeout=15)
                match = REVIEWS_BY.search(body)
                self.results.append((status, match.group(2) if match else "error"))
            except (OSError, http.client.HTTPException) as exc:
                self.results.append((0, type(exc).__name__))

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        wait_for("the client loop's first answers", lambda: len(self.results) >= 3)
        return self

    def __exit__(self, *exc: object) -> None:
        self.settle()
        self._stop.set()
        self._thread.join(30)

    def settle(self, more: int = 3) -> None:
        """Wait for `more` answers after this moment."""
        mark = len(self.results)
        wait_for(f"{more} more answers", lambda: len(self.results) >= mark + more)

    def failures(self) -> list[tuple[int, str]]:
        return [r for r in self.results if r[0] != 200 or r[1] == "error"]


def objects(text: str) -> list[tuple[str, str]]:
    """(file name, document text) per object of a multi-document YAML text."""
    result = []
    for doc in re.split(r"^---[ \t]*$", text, flags=re.M):
        data = yaml.safe_load(doc)
        if not data:
            continue
        meta = data["metadata"]
        name = f"{data['kind']}.{meta.get('namespace', 'default')}.{meta['name']}.yaml".lower()
        result.append((name, doc.strip() + "\n"))
    return result


def versions(results: Iterable[tuple[int, str]]) -> Counter[str]:
    return Counter(version for _, version in results)
