"""The process-handling helpers of `pilotfish.agent.envoy` that need no running Envoy."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from pilotfish.agent.envoy import (
    AgentError,
    RestartPolicy,
    RunOptions,
    bootstrap_file_name,
    envoy_argv,
    exit_status,
    locate_envoy,
    prepare_run_dir,
    privilege_prefix,
    remove_stale_socket,
    write_bootstrap,
)
from pilotfish.agent.options import AgentOptions, TcpAddress, UnixAddress
from pilotfish.model.names import ProxyType


def test_exit_status_follows_the_shell() -> None:
    assert exit_status(0) == 0
    assert exit_status(1) == 1
    assert exit_status(-9) == 137


def test_envoy_argv_flags() -> None:
    run = RunOptions(concurrency=1, drain_duration=2.6, log_level="info")
    argv = envoy_argv(["setpriv", "--pdeathsig", "SIGKILL"], Path("/bin/envoy"), Path("/run/b.json"), run)
    assert argv == [
        "setpriv", "--pdeathsig", "SIGKILL", "/bin/envoy", "--disable-hot-restart", "-c", "/run/b.json",
        "--concurrency", "1", "-l", "info", "--drain-time-s", "3", "--drain-strategy", "immediate",
        "--file-flush-interval-msec", "100",
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_privilege_prefix() -> None:
    setpriv = shutil.which("setpriv")
    assert privilege_prefix(RunOptions()) == [setpriv, "--pdeathsig", "SIGKILL"]
    same_user = RunOptions(uid=os.geteuid(), gid=os.getegid())
    assert privilege_prefix(same_user) == [setpriv, "--pdeathsig", "SIGKILL"]
    if os.geteuid() == 0:
        assert privilege_prefix(RunOptions(uid=1337)) == [
            setpriv, "--reuid", "1337", "--regid", "1337", "--clear-groups", "--pdeathsig", "SIGKILL",
        ]  # fmt: skip
    else:
        with pytest.raises(AgentError, match="only root"):
            privilege_prefix(RunOptions(uid=os.geteuid() + 1))


def test_locate_envoy() -> None:
    assert locate_envoy(None).name == "envoy"
    with pytest.raises(AgentError, match="does not exist"):
        locate_envoy("/nonexistent/envoy")


def test_locate_envoy_refuses_a_non_executable(tmp_path: Path) -> None:
    plain = tmp_path / "envoy"
    plain.write_text("")
    plain.chmod(0o644)
    if os.access(plain, os.X_OK):
        pytest.skip("root may execute anything that has an x bit; this file has none, but be safe")
    with pytest.raises(AgentError, match="not executable"):
        locate_envoy(str(plain))


def test_remove_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    assert path.exists()
    remove_stale_socket(UnixAddress(str(path)))
    assert not path.exists()
    remove_stale_socket(UnixAddress(str(path)))  # nothing there: fine
    remove_stale_socket(TcpAddress("127.0.0.1", 15000))  # not a file: nothing to do

    path.write_text("precious")
    with pytest.raises(AgentError, match="not a socket"):
        remove_stale_socket(UnixAddress(str(path)))
    assert path.read_text() == "precious"


def test_run_dir_and_bootstrap_file(tmp_path: Path) -> None:
    run_dir, created = prepare_run_dir(tmp_path / "a" / "run", None)
    assert created and run_dir.is_dir()
    assert prepare_run_dir(run_dir, None) == (run_dir, False)
    bootstrap = write_bootstrap(run_dir / "envoy-p1.default.json", "{}\n")
    assert bootstrap.read_text() == "{}\n"
    assert bootstrap.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in run_dir.iterdir()) == ["envoy-p1.default.json"]


def test_bootstrap_file_is_named_after_the_proxy() -> None:
    opts = AgentOptions(ProxyType.SIDECAR, "p1", "default", "10.44.0.11", UnixAddress("/run/x.sock"))
    assert bootstrap_file_name(opts) == "envoy-p1.default.json"


def test_restart_policy_backs_off_and_gives_up() -> None:
    policy = RestartPolicy(max_failures=4, initial_backoff=0.5, max_backoff=1.5, stable_after=10)
    assert [policy.record_failure(uptime=1) for _ in range(3)] == [0.5, 1.0, 1.5]
    assert policy.record_failure(uptime=1) is None
    assert policy.failures == 4


def test_restart_policy_forgives_a_long_run() -> None:
    policy = RestartPolicy(max_failures=3, initial_backoff=0.2, stable_after=10)
    assert policy.record_failure(uptime=1) == 0.2
    assert policy.record_failure(uptime=2) == 0.4
    assert policy.record_failure(uptime=60) == 0.2, "a run longer than stable_after starts the count again"
    assert policy.failures == 1


def test_temporary_run_dir(tmp_path: Path) -> None:
    run_dir, created = prepare_run_dir(None, None)
    try:
        assert created and run_dir.is_dir()
    finally:
        shutil.rmtree(run_dir)


def test_run_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(AgentError, match="--run-dir"):
        prepare_run_dir(path, None)
