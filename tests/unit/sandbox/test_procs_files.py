"""Process marker scan and kill, log files, in-place file rewrite (no root needed)."""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

from pilotfish.sandbox import procs
from pilotfish.sandbox.netns import write_in_place
from pilotfish.sandbox.plan import MARKER_ENV, ProcessPlan


def _sleeper(prefix: str, log: Path) -> ProcessPlan:
    code = "import sys, time; print('sleeper listening on 0:0', flush=True); time.sleep(60)"
    return ProcessPlan("app", "sleeper", (sys.executable, "-c", code), "/",
                       (("PATH", os.environ.get("PATH", "")), (MARKER_ENV, f"{prefix}/run1")), None, str(log))


def test_started_processes_are_found_by_their_marker_and_killed(tmp_path: Path) -> None:
    prefix = f"pfp{secrets.token_hex(3)}-"
    running = [procs.start(_sleeper(prefix, tmp_path / f"s{i}.log"), None) for i in range(2)]
    try:
        deadline = time.monotonic() + 30
        while not all(Path(r.plan.log).read_text() for r in running):  # both started and logging
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert procs.marked_pids(prefix) == sorted(r.pid for r in running)
        assert procs.marked_pids(prefix[:-1] + "x-") == []
        assert procs.command(running[0].plan, "ns1")[:4] == ["ip", "netns", "exec", "ns1"]
        assert procs.kill_pids([running[0].pid], timeout=5) == [running[0].pid]
        running[0].popen.wait(5)
        assert not running[0].alive() and running[1].alive()
    finally:
        procs.stop(running, timeout=5)
    assert procs.marked_pids(prefix) == []
    assert all(not r.alive() for r in running)
    assert (tmp_path / "s1.log").read_text().startswith("sleeper listening on")


def test_setpriv_wraps_processes_with_a_uid() -> None:
    plan = ProcessPlan("app", "a", ("prog", "x"), "/", (), 1000, "/dev/null")
    assert procs.command(plan, None) == ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "prog", "x"]


def test_rewrite_keeps_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    write_in_place(path, "a long first version of the file\n")
    inode = path.stat().st_ino
    write_in_place(path, "short\n")
    assert path.read_text() == "short\n" and path.stat().st_ino == inode


def test_a_restarted_process_is_ready_only_after_its_own_listening_line(tmp_path: Path) -> None:
    """A process appends to its container's log; the previous run's listening line must not make
    the new one ready (its endpoint would be reported before it accepts connections)."""
    from pilotfish.sandbox.runtime import _has_ready_line

    log = tmp_path / "app.log"
    log.write_text("old run listening on 0:9080\nold run exited\n")
    go = tmp_path / "go"
    code = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\nprint('listening on')"
    plan = ProcessPlan("app", "app", (sys.executable, "-c", code), "/", (("PATH", os.environ.get("PATH", "")),),
                       None, str(log), ready_line=True)
    running = procs.start(plan, None)
    try:
        assert running.log_offset == len("old run listening on 0:9080\nold run exited\n")
        assert _has_ready_line(str(log)) and not _has_ready_line(str(log), running.log_offset)
        go.touch()
        running.popen.wait(10)
        assert _has_ready_line(str(log), running.log_offset)
    finally:
        procs.stop([running], timeout=5)
