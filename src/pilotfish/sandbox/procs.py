"""Starting, finding and stopping the processes of the local mesh (IO).

A pod process is `ip netns exec <ns> [setpriv --reuid=U --regid=U --clear-groups] CMD`: each step
execs, so the pid we hold is CMD's. Every process gets the run marker in its environment
(`PILOTFISH_SANDBOX=<prefix>/<run id>`) and its own session (Ctrl-C in the terminal reaches `up`
only, which then stops everything in order). Output goes to a per-container log file opened for
appending, so logs outlive `up` and `pilotfish logs` can read them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pilotfish.sandbox.plan import MARKER_ENV, ProcessPlan

STOP_TIMEOUT = 5.0


@dataclass
class Running:
    """A process we started (and must reap)."""

    plan: ProcessPlan
    popen: subprocess.Popen[bytes]
    started: float
    log_offset: int = 0
    """Size of its log file when it started: its own output (a ready line) comes after this."""
    ready: bool = False
    """It became ready since it started (set by the pod's readiness checks; a process stays ready
    while it lives)."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


def command(plan: ProcessPlan, netns: str | None) -> list[str]:
    argv: list[str] = []
    if netns:
        argv += ["ip", "netns", "exec", netns]
    if plan.uid is not None:
        argv += ["setpriv", f"--reuid={plan.uid}", f"--regid={plan.uid}", "--clear-groups"]
    return argv + list(plan.argv)


def start(plan: ProcessPlan, netns: str | None, *, pass_fds: Sequence[int] = (),
          extra_args: Sequence[str] = ()) -> Running:
    """Start one process with its output appended to its log file."""
    Path(plan.log).parent.mkdir(parents=True, exist_ok=True)
    log = os.open(plan.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        offset = os.fstat(log).st_size
        popen = subprocess.Popen(  # argv from the plan, never through a shell
            command(plan, netns) + list(extra_args), cwd=plan.cwd, env=dict(plan.env),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=tuple(pass_fds),
            start_new_session=True,
        )
    finally:
        os.close(log)
    return Running(plan, popen, time.monotonic(), offset)


def stop(running: Iterable[Running], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM all, wait together, SIGKILL whatever is left, and reap."""
    procs = [r for r in running if r.alive()]
    for r in procs:
        with contextlib.suppress(ProcessLookupError):
            r.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for r in procs:
        try:
            r.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                r.popen.kill()
            r.popen.wait()


# --- processes of other (crashed) runs -----------------------------------------------------------------


def marked_pids(prefix: str) -> list[int]:
    """Processes whose environment carries this prefix's run marker (any run id), oldest first."""
    wanted = f"{MARKER_ENV}={prefix}/".encode()
    found = []
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(wanted) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return sorted(found)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def kill_pids(pids: Iterable[int], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM these pids, SIGKILL the ones still there after `timeout`; returns the pids signalled."""
    pids = [p for p in pids if pid_alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    return pids
