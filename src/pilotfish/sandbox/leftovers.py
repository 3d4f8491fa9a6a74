"""Finding and removing what a crashed run left behind (IO; needs root).

A run is identified by its prefix: namespaces and /etc/netns entries are named `<prefix>...`, its
processes carry `PILOTFISH_SANDBOX=<prefix>/<run id>`, its files live in `<root>/<prefix>`. Removal
follows the teardown order of sandbox-networking.md: processes first (a process keeps its namespace,
veth and bridge port alive after `ip netns del`), then namespaces, then files.

Names of a *running* mesh whose prefix merely starts with ours (`pf-` vs `pf-test-`) are left alone.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field

from pilotfish.sandbox import netns, procs
from pilotfish.sandbox.state import live_prefixes, lock_path, run_dir


@dataclass
class Leftovers:
    prefix: str
    pids: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    etc_entries: list[str] = field(default_factory=list)
    run_dir: str = ""

    @property
    def empty(self) -> bool:
        return not (self.pids or self.namespaces or self.etc_entries or self.run_dir)

    def describe(self) -> str:
        parts = []
        if self.pids:
            parts.append(f"{len(self.pids)} process(es)")
        if self.namespaces:
            parts.append(f"{len(self.namespaces)} namespace(s)")
        if self.etc_entries:
            parts.append(f"{len(self.etc_entries)} /etc/netns entries")
        if self.run_dir:
            parts.append(f"run directory {self.run_dir}")
        return ", ".join(parts) or "nothing"


def _ours(name: str, prefix: str, others: list[str]) -> bool:
    return name.startswith(prefix) and not any(name.startswith(other) for other in others)


def find(prefix: str) -> Leftovers:
    """Everything of `prefix` that exists now (call it only while no `up` of this prefix runs)."""
    others = [p for p in live_prefixes() if p != prefix and p.startswith(prefix)]
    namespaces = [n for n in netns.list_netns() if _ours(n, prefix, others)]
    pids = set(procs.marked_pids(prefix))
    for name in namespaces:
        pids.update(netns.netns_pids(name))
    etc = [n for n in netns.etc_netns_entries(prefix) if _ours(n, prefix, others)]
    directory = run_dir(prefix)
    return Leftovers(prefix, sorted(pids), namespaces, etc, str(directory) if directory.exists() else "")


def clean(found: Leftovers) -> None:
    procs.kill_pids(found.pids)
    netns.delete_netns(found.namespaces)
    for name in found.etc_entries:
        netns.remove_pod_files(name)
    netns.remove_etc_netns_if_empty()
    if found.run_dir:
        shutil.rmtree(found.run_dir, ignore_errors=True)


def clean_all(prefix: str) -> Leftovers:
    """Find and remove; returns what was there. Also removes a stale (unlocked) lock file."""
    found = find(prefix)
    clean(found)
    with contextlib.suppress(FileNotFoundError):
        lock_path(prefix).unlink()
    with contextlib.suppress(OSError):
        lock_path(prefix).parent.rmdir()
    return found
