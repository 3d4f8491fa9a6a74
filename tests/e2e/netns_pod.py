"""A throwaway "pod" network namespace with a peer namespace, for the iptables e2e tests.

    pod  (pfipt-<token>): lo, eth0 10.66.0.2/24 [fd00:66::2/64], route 10.96.0.0/16 via the peer
    peer (pfipc-<token>): lo, eth0 10.66.0.3/24 [fd00:66::3/64], 10.96.0.0/16 is local (so an uncaptured
                          connection to a made-up service address reaches the peer's listener)

The veth is created directly across the two namespaces; nothing is added to the root namespace and no
traffic leaves these two. Every process started here is killed and both namespaces are deleted by the
fixture, even when a test fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
POD_IP, PEER_IP, SERVICE_IP = "10.66.0.2", "10.66.0.3", "10.96.0.20"
POD_IP6, PEER_IP6, SERVICE_IP6 = "fd00:66::2", "fd00:66::3", "fd00:96::20"

# Listens on the given TCP ports (IPv4, and IPv6 if asked); answers each connection with one line:
# "<name> <local port> <original destination or ->" and closes it. SO_ORIGINAL_DST is 80.
SERVER = r"""
import selectors, socket, struct, sys
name, ports, v6 = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], sys.argv[3] == "6"
sel = selectors.DefaultSelector()
for port in ports:
    for fam in ([socket.AF_INET, socket.AF_INET6] if v6 else [socket.AF_INET]):
        s = socket.socket(fam)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", port))
        s.listen(16)
        sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        try:
            if conn.family == socket.AF_INET:
                raw = conn.getsockopt(socket.SOL_IP, 80, 16)
                addr = socket.inet_ntop(socket.AF_INET, raw[4:8])
            else:
                raw = conn.getsockopt(socket.IPPROTO_IPV6, 80, 28)
                addr = "[%s]" % socket.inet_ntop(socket.AF_INET6, raw[8:24])
            orig = "%s:%d" % (addr, struct.unpack("!H", raw[2:4])[0])
        except Exception as exc:
            orig = "-" if isinstance(exc, OSError) else repr(exc)
        conn.sendall(("%s %d %s\n" % (name, conn.getsockname()[1], orig)).encode())
        conn.close()
"""

# Connects to each "host port" pair and prints the server's line, or "ERR <reason>".
CLIENT = r"""
import socket, sys
args = sys.argv[1:]
for host, port in zip(args[::2], args[1::2]):
    try:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            print(s.makefile().readline().strip(), flush=True)
    except OSError as exc:
        print("ERR", type(exc).__name__, flush=True)
"""


def run(argv: list[str], *, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)  # type: ignore[call-overload]
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr.strip()}")
    return done  # type: ignore[no-any-return]


@dataclass
class Pod:
    ns: str
    peer: str
    ipv6: bool
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def exec(self, ns: str, argv: list[str], *, uid: int | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["ip", "netns", "exec", ns]
        if uid is not None:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        return run(prefix + argv, check=check)

    def pilotfish(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real command, run inside the pod namespace."""
        return run(["ip", "netns", "exec", self.ns, sys.executable, "-m", "pilotfish", "iptables", *args],
                   check=check, env={**os.environ, "PYTHONPATH": SRC})

    def save(self, family: int = 4, table: str | None = None) -> str:
        """iptables-save without comments and counters, so two snapshots compare equal."""
        argv = ["iptables-save" if family == 4 else "ip6tables-save"] + (["-t", table] if table else [])
        lines = self.exec(self.ns, argv).stdout.splitlines()
        return "\n".join(line.split(" [")[0] if line.startswith(":") else line
                         for line in lines if not line.startswith("#"))

    def serve(self, ns: str, name: str, ports: list[int]) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-I", "-S", "-c", SERVER, name,
                                 ",".join(map(str, ports)), "6" if self.ipv6 else "4"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "ready", f"server in {ns} did not start: {line}"

    def connect(self, ns: str, targets: list[tuple[str, int]], *, uid: int | None = None) -> list[str]:
        args = [str(x) for target in targets for x in target]
        out = self.exec(ns, [sys.executable, "-I", "-S", "-c", CLIENT, *args], uid=uid)
        return out.stdout.splitlines()

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.communicate(timeout=10)  # also closes the pipes
        self.procs.clear()


def make_pod(ipv6: bool = False) -> tuple[Pod, list[str]]:
    """Create the namespaces; returns the pod and the list of namespaces created so far (for cleanup)."""
    token = f"{os.getpid()}-{secrets.token_hex(3)}"
    pod = Pod(f"pfipt-{token}", f"pfipc-{token}", ipv6)
    created: list[str] = []
    try:
        for ns in (pod.ns, pod.peer):
            run(["ip", "netns", "add", ns])
            created.append(ns)
        run(["ip", "-n", pod.ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
             "netns", pod.peer])
        for ns, ip4, ip6 in ((pod.ns, POD_IP, POD_IP6), (pod.peer, PEER_IP, PEER_IP6)):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "addr", "add", f"{ip4}/24", "dev", "eth0"])
            if ipv6:
                run(["ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", pod.ns, "route", "add", "10.96.0.0/16", "via", PEER_IP])
        run(["ip", "-n", pod.peer, "route", "add", "local", "10.96.0.0/16", "dev", "lo"])
        if ipv6:
            run(["ip", "-n", pod.ns, "-6", "route", "add", "fd00:96::/64", "via", PEER_IP6])
            run(["ip", "-n", pod.peer, "-6", "route", "add", "local", "fd00:96::/64", "dev", "lo"])
    except BaseException:
        delete_namespaces(created)
        raise
    return pod, created


def delete_namespaces(names: list[str]) -> None:
    for ns in names:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
