"""One real request in the running local mesh, and the access-log lines it leaves (IO).

`pilotfish trace --verify` sends the request it traced the way an application would: from inside the
source pod's network namespace as the app's uid (so the pod's iptables capture it, exactly as they
capture the app's own calls), or, for the ingress gateway, from the host to 127.0.0.1:<ingress port>
(the relay) or, for a gateway port the relay does not forward, from inside the gateway pod. The client
is a small stdlib-only Python program run by the sandbox's interpreter; it resolves names through the
pod's hosts file and reports its own socket address, which the first proxy logs as the downstream
remote address. Nothing is sent anywhere but loopback and the sandbox's namespaces.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pilotfish.sandbox.plan import DEFAULT_APP_UID
from pilotfish.sandbox.state import MeshState

CLIENT_TIMEOUT = 15.0
"""Seconds the client waits for an answer (an injected delay is shorter in every sample)."""

CLIENT = r"""
import json, socket, ssl, sys
spec = json.loads(sys.argv[1])
out = {"local": "", "status": None, "error": "", "received": 0}
sock = None
try:
    sock = socket.create_connection((spec["connect"], spec["port"]), timeout=spec["timeout"])
    local = sock.getsockname()
    out["local"] = f"{local[0]}:{local[1]}"
    if spec["protocol"] == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
        sock = context.wrap_socket(sock, server_hostname=spec["host"])
    if spec["protocol"] == "tcp":
        sock.sendall(spec["payload"].encode())
        sock.settimeout(spec["linger"])
        data = b""
        try:
            while len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        out["received"] = len(data)
        head = data.split(b"\r\n", 1)[0].split()
        if len(head) >= 2 and head[0].startswith(b"HTTP/") and head[1].isdigit():
            out["status"] = int(head[1])
    else:
        lines = [f"{spec['method']} {spec['target']} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in spec["headers"]]
        lines += ["Content-Length: 0", "Connection: close", "", ""]
        sock.sendall("\r\n".join(lines).encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and spec["method"] == "HEAD":
                break
        out["received"] = len(data)
        head = data.split(b"\r\n", 1)[0].split()
        if len(head) >= 2 and head[1].isdigit():
            out["status"] = int(head[1])
        elif not data:
            out["error"] = "connection closed without an answer"
except OSError as exc:
    out["error"] = f"{type(exc).__name__}: {exc.strerror or exc}"
finally:
    if sock is not None:
        sock.close()
print(json.dumps(out))
"""


TCP_LINGER = 1.5
"""Seconds a TCP client waits for bytes back before it closes (a TCP server need not answer or close)."""


class ProbeError(RuntimeError):
    """The client could not be run (no such namespace, interpreter unusable...)."""


@dataclass(frozen=True, slots=True)
class Answer:
    local: str
    status: int | None
    error: str
    received: int


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """What the client sends: an HTTP request line and headers, or TCP bytes."""

    protocol: str
    host: str
    """The name in the URL (TLS server name; what the client resolves unless `connect` says otherwise)."""
    port: int
    method: str = "GET"
    target: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    payload: str = ""
    connect: str = ""
    """Address to connect to instead of resolving `host` (the relay, the gateway pod)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "protocol": self.protocol,
                "host": self.host,
                "connect": self.connect or self.host,
                "port": self.port,
                "method": self.method,
                "target": self.target,
                "headers": [list(h) for h in self.headers],
                "payload": self.payload,
                "timeout": CLIENT_TIMEOUT,
            "linger": TCP_LINGER,
            }
        )


def send(
    spec: ClientSpec, netns: str | None, uid: int | None = DEFAULT_APP_UID, python: str = sys.executable
) -> Answer:
    """Run the client (inside `netns` as `uid`, or on the host when netns is None) and read its answer."""
    argv = [python, "-I", "-S", "-c", CLIENT, spec.to_json()]
    if netns is not None:
        prefix = ["ip", "netns", "exec", netns]
        if uid is not None:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        argv = prefix + argv
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT + 10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"cannot run the client{' in ' + netns if netns else ''}: {exc}") from exc
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        problem = done.stderr.strip() or f"exit status {done.returncode}"
        raise ProbeError(f"the client{' in ' + netns if netns else ''} failed: {problem}") from None
    return Answer(str(result["local"]), result["status"], str(result["error"]), int(result["received"]))


class LogCursor:
    """The proxies' log files of the running mesh, read from where they ended at `mark()`."""

    def __init__(self, state: MeshState) -> None:
        self.files = {
            p.proxy_id: Path(p.logs["proxy"]) for p in state.pods if p.proxy_type and "proxy" in p.logs
        }
        self.offsets: dict[str, int] = {}

    def mark(self) -> None:
        self.offsets = {pod: _size(path) for pod, path in self.files.items()}

    def read(self) -> dict[str, list[str]]:
        """Complete lines written since `mark()`, per proxy."""
        result: dict[str, list[str]] = {}
        for pod, path in self.files.items():
            try:
                with path.open("rb") as log:
                    log.seek(self.offsets.get(pod, 0))
                    data = log.read()
            except OSError:
                continue
            text = data.decode("utf-8", "replace")
            complete = text[: text.rfind("\n") + 1]
            result[pod] = complete.splitlines()
        return result

    def settle(
        self, done: Callable[[Mapping[str, Sequence[str]]], bool], timeout: float = 3.0, quiet: float = 0.3
    ) -> dict[str, list[str]]:
        """Read until `done(lines)` holds and nothing new arrived for `quiet` seconds, or `timeout`.

        Envoy writes a request's line when the request completes and flushes its access logs every
        100 ms (the agent's --file-flush-interval-msec), so the lines of one request arrive within a
        few hundred milliseconds of its answer."""
        deadline = time.monotonic() + timeout
        last = self.read()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            current = self.read()
            if current != last:
                last, stable_since = current, time.monotonic()
            elif done(current) and time.monotonic() - stable_since >= quiet:
                break
        return last


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
