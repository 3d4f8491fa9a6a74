"""Network namespaces, veths and per-pod DNS files of the local mesh (IO; needs root).

Everything goes through `ip -batch` (one exec per step instead of one per command; gotcha 13), in the
order sandbox-networking.md verified: namespaces, their sysctls (before eth0 exists), veths created
directly across node and pod, then each pod's addresses and routes. Nothing here touches the root
namespace's links, routes, sysctls or tables.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from pilotfish.sandbox.plan import (
    RESOLV_CONF,
    PodPlan,
    namespace_add_lines,
    node_setup_lines,
    node_sysctl_lines,
    node_veth_lines,
    pod_inside_lines,
    pod_sysctl_lines,
)

ETC_NETNS = Path("/etc/netns")
"""`ip netns exec <ns>` bind-mounts /etc/netns/<ns>/* over /etc (hosts, resolv.conf)."""
IP_TIMEOUT = 30.0


class NetnsError(RuntimeError):
    """An `ip` command failed; the message has the command's own error."""


def ip_batch(lines: Sequence[str], netns: str | None = None, *, force: bool = False) -> None:
    """Run `ip [-n NETNS] -batch -` with these lines; raise NetnsError with ip's message on failure."""
    if not lines:
        return
    argv = ["ip", *(["-n", netns] if netns else []), *(["-force"] if force else []), "-batch", "-"]
    done = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=IP_TIMEOUT, check=False)
    if done.returncode != 0 and not force:
        where = f" in {netns}" if netns else ""
        raise NetnsError(f"ip -batch{where} failed: {done.stderr.strip() or done.stdout.strip()}")


def list_netns() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=IP_TIMEOUT,
                          check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def netns_pids(netns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                          timeout=IP_TIMEOUT, check=False)
    return [int(word) for word in done.stdout.split() if word.isdigit()]


def create_node(node: str) -> None:
    ip_batch([*namespace_add_lines([node]), *node_sysctl_lines(node)])
    ip_batch(node_setup_lines(), node)


def create_pods(node: str, pods: Sequence[PodPlan]) -> None:
    """Namespaces, sysctls, veths on the node's bridge, then each pod's addresses and two routes."""
    if not pods:
        return
    names = [pod.netns for pod in pods]
    ip_batch([*namespace_add_lines(names), *pod_sysctl_lines(names)])
    ip_batch(node_veth_lines(pods), node)
    for pod in pods:
        ip_batch(pod_inside_lines(pod), pod.netns)


def delete_pod(node: str, pod: PodPlan) -> None:
    """Node-side veth first (synchronous, removes both ends), then the namespace: a pod re-created at once
    would otherwise race the kernel's asynchronous cleanup of the old veth (gotcha 4)."""
    ip_batch([f"link del {pod.veth}"], node, force=True)
    ip_batch([f"netns del {pod.netns}"], force=True)


def delete_netns(names: Iterable[str]) -> None:
    """Delete namespaces (their veths and bridge go with them); missing ones are ignored."""
    ip_batch([f"netns del {name}" for name in names], force=True)


# --- per-pod /etc files --------------------------------------------------------------------------------


def write_in_place(path: Path, text: str) -> None:
    """Overwrite `path` keeping its inode: a running process sees the file that was bind-mounted when it
    started, so replacing the file (rename, `sed -i`) would be invisible to it (gotcha 5)."""
    data = text.encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def write_pod_files(pod: PodPlan) -> None:
    directory = ETC_NETNS / pod.netns
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    write_in_place(directory / "hosts", pod.hosts)
    write_in_place(directory / "resolv.conf", RESOLV_CONF)


def remove_pod_files(netns: str) -> None:
    directory = ETC_NETNS / netns
    for name in ("hosts", "resolv.conf"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    with contextlib.suppress(FileNotFoundError, OSError):
        directory.rmdir()


def remove_etc_netns_if_empty() -> None:
    """/etc/netns goes when no namespace of any run has files there (other runs may still)."""
    with contextlib.suppress(OSError):
        ETC_NETNS.rmdir()


def etc_netns_entries(prefix: str) -> list[str]:
    try:
        return sorted(p.name for p in ETC_NETNS.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []
