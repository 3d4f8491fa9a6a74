"""The running mesh as other commands see it: the state file, the run lock, and name lookups.

`pilotfish up` writes `<run dir>/state.json` (pods, their namespaces, admin sockets and log files, the
discovery server's addresses) and rewrites it on every change. `pilotfish proxy-config`,
`proxy-status`, `logs` and `down` read it through the small functions at the end of this module, so
they need no flags while a mesh runs.

The run directory is `<root>/<prefix>` with root `/run/pilotfish` (or `$PILOTFISH_RUN_ROOT`); the
prefix is `pf-` (or `$PILOTFISH_PREFIX`, or `--prefix`). One `flock` per prefix
(`<root>/<prefix>.lock`, held by `up` for its whole life) keeps two runs with the same prefix apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pilotfish.model.names import split_pod_ref
from pilotfish.sandbox.plan import DEFAULT_PREFIX, run_dir_for

DEFAULT_ROOT = "/run/pilotfish"
STATE_FILE = "state.json"


def run_root() -> Path:
    return Path(os.environ.get("PILOTFISH_RUN_ROOT") or DEFAULT_ROOT)


def default_prefix() -> str:
    return os.environ.get("PILOTFISH_PREFIX") or DEFAULT_PREFIX


def run_dir(prefix: str) -> Path:
    return Path(run_dir_for(str(run_root()), prefix))


def lock_path(prefix: str) -> Path:
    return run_root() / f"{prefix}.lock"


@dataclass
class PodState:
    name: str
    namespace: str
    netns: str
    ip: str
    proxy_type: str | None
    admin: str
    """Envoy admin unix socket path ('' without a proxy)."""
    logs: dict[str, str] = field(default_factory=dict)
    """Container name (and `init`, `proxy`) -> log file."""
    ready: str = ""
    """`<ready>/<total>` processes, as the READY column shows it."""

    @property
    def proxy_id(self) -> str:
        return f"{self.name}.{self.namespace}" if self.namespace else self.name


@dataclass
class MeshState:
    prefix: str
    run_id: str
    pid: int
    """The `pilotfish up` process."""
    dirs: list[str]
    run_dir: str
    ingress_url: str
    discovery_grpc: str
    discovery_http: str
    node: str
    pods: list[PodState] = field(default_factory=list)
    started: float = 0.0
    status_dir: str = ""
    """Where `up` reports the pods' readiness (the discovery server reads it after `dirs`)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> MeshState:
        data: dict[str, Any] = json.loads(text)
        pods = [PodState(**pod) for pod in data.pop("pods", [])]
        return cls(pods=pods, **data)


def write_state(state: MeshState) -> None:
    """Atomic replace: readers see the old or the new file, never half of one."""
    path = Path(state.run_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.to_json())
    os.chmod(tmp, 0o644)
    tmp.replace(path)


def read_state(prefix: str | None = None) -> MeshState | None:
    """The state of the mesh running with `prefix` (default: $PILOTFISH_PREFIX or pf-), if any."""
    path = run_dir(prefix or default_prefix()) / STATE_FILE
    try:
        return MeshState.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None


# --- the run lock ----------------------------------------------------------------------------------------


class RunLock:
    """An exclusive, non-blocking flock for one prefix; released when the holder exits, even by a crash."""

    def __init__(self, prefix: str) -> None:
        self.path = lock_path(prefix)
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self, *, remove: bool = False) -> None:
        """Unlock; `remove` also deletes the lock file (while still holding it) and an empty root."""
        if self._fd is None:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()
        os.close(self._fd)
        self._fd = None


def lock_held(prefix: str) -> bool:
    """Whether a live process holds the lock of `prefix` (an `up` is running)."""
    lock = RunLock(prefix)
    if not lock.path.exists():
        return False
    if lock.acquire():
        lock.release()
        return False
    return True


def live_prefixes() -> list[str]:
    """Prefixes with a running `up` (their lock is held)."""
    try:
        names = [p.name.removesuffix(".lock") for p in run_root().glob("*.lock")]
    except OSError:
        return []
    return [name for name in names if lock_held(name)]


# --- lookups for other commands -------------------------------------------------------------------------


class NoRunningMesh(LookupError):
    """No `pilotfish up` state for the prefix; the message says how to start one."""


def running_mesh(prefix: str | None = None) -> MeshState:
    prefix = prefix or default_prefix()
    state = read_state(prefix)
    if state is None:
        raise NoRunningMesh(f"no local mesh is running with prefix {prefix!r} (start one with "
                            "`pilotfish up DIR`, or give the address explicitly)")
    return state


def find_pod(state: MeshState, ref: str, namespace: str | None = None) -> PodState:
    """A pod by `name`, `name.namespace`, `deploy/<deployment>` or a unique name prefix (`productpage`);
    without a namespace every namespace is searched."""
    if namespace is None and "." in ref:
        name, namespace = split_pod_ref(ref)
    else:
        name = ref
    pods = [p for p in state.pods if p.namespace and (namespace is None or p.namespace == namespace)]
    exact = [p for p in pods if p.name == name]
    if len(exact) == 1:
        return exact[0]
    start = name.removeprefix("deploy/") + "-" if name.startswith("deploy/") else name
    matches = exact or [p for p in pods if p.name.startswith(start)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(p.proxy_id for p in state.pods if p.namespace) or "none"
        where = f" in namespace {namespace}" if namespace else ""
        raise LookupError(f"pod {ref!r} is not in the running mesh{where} (pods: {known})")
    raise LookupError(f"pod {ref!r} is ambiguous: {', '.join(p.proxy_id for p in matches)}")


def admin_address(ref: str, namespace: str | None = None, prefix: str | None = None) -> str:
    """`unix:<admin socket>` of a pod's Envoy in the running mesh: what `proxy-config` uses when it is
    given no `--admin`/`-f`. LookupError (with a message for the user) when there is none."""
    pod = find_pod(running_mesh(prefix), ref, namespace)
    if not pod.admin:
        raise LookupError(f"pod {pod.proxy_id} runs no proxy")
    return f"unix:{pod.admin}"


def discovery_http_address(prefix: str | None = None) -> str:
    """The debug HTTP address of the running mesh's discovery server (`proxy-status` default)."""
    return running_mesh(prefix).discovery_http
