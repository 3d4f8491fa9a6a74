"""Fixtures for the sample-app tests: start the stdlib apps as subprocesses on 127.0.0.1.

Each app is started with port 0 and ``BIND_ADDRESS=127.0.0.1``; its first stdout line announces the
real port. Every process is killed and every log file removed when the fixture ends, also when a
test fails. Logs live in a private temporary directory named with this process id.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "samples"
BOOKINFO_APPS = SAMPLES / "bookinfo" / "apps"
STARTUP_TIMEOUT = 10.0
_LISTENING = re.compile(rb"listening on [^\s:]+:(\d+)")


@dataclass
class HttpResult:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> object:
        return json.loads(self.body)


def http_call(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 15.0,
) -> HttpResult:
    """One request to 127.0.0.1:port on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return HttpResult(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


@dataclass
class AppProcess:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 5.0) -> str:
        """The log once it contains ``needle`` ``count`` times (a server logs its line after it has
        answered, so the client may be faster than the log: poll briefly)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if text.count(needle) >= count or time.monotonic() > deadline:
                return text
            time.sleep(0.02)

    def get(self, path: str, **kwargs: Any) -> HttpResult:
        return http_call(self.port, path, **kwargs)


@dataclass
class Launcher:
    """Starts sample apps and stops all of them in `stop_all`."""

    workdir: Path
    apps: list[AppProcess] = field(default_factory=list)

    def start(
        self,
        script: Path,
        name: str,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = ("0",),
    ) -> AppProcess:
        log_path = self.workdir / f"{name}.log"
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "BIND_ADDRESS": "127.0.0.1",
            "POD_NAME": name,
            "POD_NAMESPACE": "default",
            "POD_IP": "127.0.0.1",
            **(env or {}),
        }
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(script), *args],
                cwd=script.parent,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        app = AppProcess(name, proc, 0, log_path)
        self.apps.append(app)
        app.port = self._wait_listening(app)
        return app

    @staticmethod
    def _wait_listening(app: AppProcess) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            match = _LISTENING.search(app.log_path.read_bytes())
            if match:
                return int(match.group(1))
            if app.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"{app.name} did not start (exit {app.proc.poll()}):\n{app.log()}")

    def stop_all(self) -> None:
        for app in self.apps:
            if app.proc.poll() is None:
                app.proc.terminate()
        for app in self.apps:
            try:
                app.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                app.proc.kill()
                app.proc.wait()
        self.apps.clear()


def _launcher() -> Iterator[Launcher]:
    with tempfile.TemporaryDirectory(prefix=f"pilotfish-samples-{os.getpid()}-") as tmp:
        launcher = Launcher(Path(tmp))
        try:
            yield launcher
        finally:
            launcher.stop_all()


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    """A launcher whose apps live for one test."""
    yield from _launcher()


@pytest.fixture(scope="module")
def module_launcher() -> Iterator[Launcher]:
    """A launcher whose apps live for one test module."""
    yield from _launcher()


def upstream_env(service: str, app: AppProcess | int) -> dict[str, str]:
    """Env pointing a Bookinfo app at ``service`` on 127.0.0.1 (an app or a bare port)."""
    port = app if isinstance(app, int) else app.port
    prefix = service.upper()
    return {f"{prefix}_HOSTNAME": "127.0.0.1", f"{prefix}_SERVICE_PORT": str(port)}


@dataclass
class Bookinfo:
    """One running Bookinfo without a mesh: a productpage per reviews version."""

    details: AppProcess
    ratings: AppProcess
    reviews: dict[str, AppProcess]
    productpage: dict[str, AppProcess]


def start_bookinfo(launcher: Launcher, versions: tuple[str, ...] = ("v1", "v2", "v3")) -> Bookinfo:
    details = launcher.start(BOOKINFO_APPS / "details.py", "details-v1-test")
    ratings = launcher.start(BOOKINFO_APPS / "ratings.py", "ratings-v1-test", {"SERVICE_VERSION": "v1"})
    reviews = {
        v: launcher.start(
            BOOKINFO_APPS / "reviews.py",
            f"reviews-{v}-test",
            {"SERVICE_VERSION": v, **upstream_env("ratings", ratings)},
        )
        for v in versions
    }
    productpage = {
        v: launcher.start(
            BOOKINFO_APPS / "productpage.py",
            f"productpage-{v}-test",
            {
                **upstream_env("details", details),
                **upstream_env("reviews", reviews[v]),
                **upstream_env("ratings", ratings),
            },
        )
        for v in versions
    }
    return Bookinfo(details, ratings, reviews, productpage)


@pytest.fixture(scope="module")
def bookinfo(module_launcher: Launcher) -> Bookinfo:
    return start_bookinfo(module_launcher)


class RefusingPort:
    """A port on 127.0.0.1 where nothing listens: bound but not listening, so connects are refused."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class HangingServer:
    """Accepts connections and never answers; counts them (to see how often a client tried)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def refusing_port() -> Iterator[RefusingPort]:
    port = RefusingPort()
    try:
        yield port
    finally:
        port.close()


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    server = HangingServer()
    try:
        yield server
    finally:
        server.close()
