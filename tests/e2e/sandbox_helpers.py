"""Helpers for the local-mesh e2e tests: unique prefixes, a private copy of a sample's manifests, commands
inside pods, and the read-only checks of sandbox-networking.md (routing tables, link metadata, a snapshot of
the root namespace). Nothing here opens a connection from the root namespace to a pod or service address:
clients run inside pods (`ip netns exec`) or go through the ingress relay on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pilotfish.sandbox import netns, procs
from pilotfish.sandbox.state import lock_path, run_dir
from tests.paths import SAMPLES

T = TypeVar("T")
SRC = str(Path(__file__).resolve().parents[2] / "src")
OUTSIDE = ("192.0.2.1", "198.51.100.1", "8.8.8.8", "1.1.1.1", "10.45.0.1", "172.16.0.1")
"""Addresses no pod may route to (documentation ranges, public resolvers, private ranges)."""


def pilotfish(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The `pilotfish` command of this checkout."""
    return run([sys.executable, "-m", "pilotfish", *args], timeout=timeout, check=check,
               env={**os.environ, "PYTHONPATH": SRC})


def unique_prefix(tag: str = "") -> str:
    """`pft<tag><pid><hex>-`: no other run (or other helper's tests) uses it."""
    return f"pft{tag}{os.getpid() % 100000}{secrets.token_hex(2)}-"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _copy_sample(source: Path, target: Path) -> None:
    """Manifests copied (tests may edit them), programs and app folders linked."""
    target.mkdir(mode=0o755, exist_ok=True)
    for item in source.iterdir():
        if item.suffix in (".yaml", ".yml"):
            shutil.copy(item, target / item.name)
        elif item.is_dir() and item.name == "versions":
            _copy_sample(item, target / item.name)
        elif (item.is_dir() and item.name != "networking") or item.suffix == ".py":
            (target / item.name).symlink_to(item)


@contextmanager
def mesh_copy(*samples: str) -> Iterator[Path]:
    """A private, world-readable directory of manifests the tests may edit.

    One sample (default bookinfo): its files at the top. Several: one subdirectory per sample, plus an
    empty `config/` for the routing config tests apply.
    """
    root = Path(tempfile.mkdtemp(prefix=f"pft-mesh-{os.getpid()}-"))
    try:
        os.chmod(root, 0o755)
        if len(samples) <= 1:
            _copy_sample(SAMPLES / (samples[0] if samples else "bookinfo"), root)
        else:
            for sample in samples:
                _copy_sample(SAMPLES / sample, root / sample)
            (root / "config").mkdir(mode=0o755)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(argv: list[str], *, timeout: float = 30, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def in_pod(netns_name: str, argv: list[str], *, uid: int | None = 1000, timeout: float = 30,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns_name]
    if uid is not None:
        prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    return run(prefix + argv, timeout=timeout, check=check)


CONNECT = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
start = time.monotonic()
try:
    socket.create_connection((host, port), timeout=5).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__, exc.errno, round(time.monotonic() - start, 3))
"""


def connect_from(netns_name: str, host: str, port: int, uid: int | None = 1000) -> list[str]:
    """['connected'] or [error class, errno, seconds] for one connect() inside a pod."""
    return in_pod(netns_name, [sys.executable, "-I", "-S", "-c", CONNECT, host, str(port)], uid=uid).stdout.split()


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `check` (growing interval) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


# --- read-only network checks ---------------------------------------------------------------------


def routes(netns_name: str, family: int = 4) -> list[dict[str, object]]:
    data = run(["ip", "-j", f"-{family}", "-n", netns_name, "route", "show", "table", "all"]).stdout
    return list(json.loads(data or "[]"))


def assert_isolated(prefix: str) -> list[str]:
    """Every namespace of the run: no default route (v4/v6), no route to an outside address, veth peers only
    in namespaces of the run, forwarding off. Returns the namespaces checked."""
    names = [n for n in netns.list_netns() if n.startswith(prefix)]
    ids_of: dict[str, dict[int, str]] = {}
    for name in names:
        for family in (4, 6):
            assert not run(["ip", f"-{family}", "-n", name, "route", "show", "default"]).stdout.strip(), name
        for address in OUTSIDE:
            lookup = run(["ip", "-n", name, "route", "get", address], check=False)
            assert lookup.returncode != 0 and "unreachable" in lookup.stderr.lower(), (name, address, lookup)
        forwarding = in_pod(name, ["cat", "/proc/sys/net/ipv4/ip_forward"], uid=None).stdout.strip()
        assert forwarding == "0", name
        ids = {}
        for line in run(["ip", "-n", name, "netns", "list-id"]).stdout.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nsid":
                ids[int(words[1])] = words[-1].rstrip(")") if "name:" in line else ""
        ids_of[name] = ids
        for link in json.loads(run(["ip", "-j", "-n", name, "link", "show", "type", "veth"]).stdout or "[]"):
            peer_id = link.get("link_netnsid")
            assert peer_id is not None, f"{name}: veth {link['ifname']} has its peer in its own namespace"
            assert ids[peer_id].startswith(prefix), f"{name}: veth {link['ifname']} peer is in {ids[peer_id]!r}"
    return names


def root_snapshot() -> dict[str, str]:
    """The root namespace's links, routes, rules, forwarding sysctls and firewall rules (no counters)."""
    commands = {
        "links": ["ip", "-o", "link"],
        "routes4": ["ip", "route", "show", "table", "all"],
        "routes6": ["ip", "-6", "route", "show", "table", "all"],
        "rules4": ["ip", "rule"],
        "rules6": ["ip", "-6", "rule"],
        "iptables": ["iptables-save"],
        "nft": ["nft", "list", "ruleset"],
    }
    snapshot = {}
    for key, argv in commands.items():
        if shutil.which(argv[0]):
            text = run(argv, check=False).stdout
            snapshot[key] = "\n".join(line for line in text.splitlines()
                                      if not line.startswith("#") and "counter packets" not in line)
    for sysctl in ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"):
        snapshot[sysctl] = Path(f"/proc/sys/{sysctl}").read_text().strip()
    return snapshot


def leftovers_of(prefix: str) -> dict[str, object]:
    """What of the run still exists (empty values: nothing)."""
    return {
        "namespaces": [n for n in netns.list_netns() if n.startswith(prefix)],
        "etc_netns": netns.etc_netns_entries(prefix),
        "processes": procs.marked_pids(prefix),
        "run_dir": run_dir(prefix).exists(),
        "lock": lock_path(prefix).exists(),
    }


def assert_nothing_left(prefix: str) -> None:
    left = leftovers_of(prefix)
    assert not any(left.values()), left
