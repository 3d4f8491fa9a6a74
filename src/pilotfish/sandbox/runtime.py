"""The local mesh while it runs: start, watch, change, stop (IO; needs root).

`Sandbox.up()` goes from nothing to a running mesh: take the prefix's lock, remove leftovers of a
crashed run, load the manifests, plan (`sandbox.plan`), start the discovery server, create the node
and pod namespaces and their /etc/netns files, run each sidecar pod's init step, then its apps and
proxy, and the ingress relay; then wait until every pod is ready (its apps printed their listening
line, its Envoy's admin `/ready` says LIVE) and every Envoy has the config that says so. No fixed
sleeps: everything is polled with a short, growing interval.

Like a kubelet, the sandbox reports each pod's readiness (`sandbox.podstatus`): into a status
directory of the run that the discovery server serves next to the user's manifests, so a pod starts
out not ready and a pod whose app died leaves the endpoints until the restarted app is ready again.

`Sandbox.poll()` (called in a loop by `pilotfish up`) keeps it running: restarts processes that died
(like a kubelet), reports readiness changes, applies workload changes of the manifests (pods added or
removed; routing changes are the discovery server's job, it reloads the same directories), and
rewrites hosts files in place when services change.

`Sandbox.down()` tears down in the verified order: processes, then namespaces, then files.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pilotfish
from pilotfish.config.diagnostics import Diagnostic, has_errors
from pilotfish.model.mesh import Mesh
from pilotfish.pipeline import load_mesh
from pilotfish.sandbox import leftovers, netns, procs
from pilotfish.sandbox.components import discovery_process, missing_commands, proxy_process
from pilotfish.sandbox.plan import (
    DEFAULT_PREFIX,
    READY_LINE,
    PlanError,
    PodPlan,
    ProcessPlan,
    SandboxPlan,
    Settings,
    diff_pods,
    hosts_changes,
    pilotfish_env,
    plan_sandbox,
    validate_prefix,
)
from pilotfish.sandbox.podstatus import STATUS_DIR, PodReport, StatusWriter
from pilotfish.sandbox.state import MeshState, PodState, RunLock, read_state, run_dir, write_state
from pilotfish.sources.manifests import content_version, manifest_files, read_manifests

READY_TIMEOUT = 60.0
DISCOVERY_DEBUG_PORT = 15014
RESTART_BACKOFF = (0.5, 10.0)
TERMINATION_GRACE = 3.0
"""At most this long, pods a manifest edit removes keep running while the other proxies learn that
their endpoints are gone (best effort: they stop anyway afterwards)."""
LOG_TAIL = 15
SAMPLES_EXTERNAL = Path(pilotfish.__file__).resolve().parents[2] / "samples" / "external"


class SandboxError(RuntimeError):
    """Something the user must act on (message only, no traceback)."""


def default_settings(prefix: str, ingress_port: int, *, with_proxies: bool = True,
                     external: bool = True) -> Settings:
    """Settings for this machine: our interpreter and package location, the run directory of `prefix`."""
    problem = validate_prefix(prefix)
    if problem:
        raise SandboxError(problem)
    external_dir = str(SAMPLES_EXTERNAL) if external and (SAMPLES_EXTERNAL / "echo.py").exists() else ""
    return Settings(prefix=prefix, run_dir=str(run_dir(prefix)), python=sys.executable,
                    pythonpath=str(Path(pilotfish.__file__).resolve().parents[1]), ingress_port=ingress_port,
                    with_proxies=with_proxies, external_dir=external_dir)


def available_commands() -> list[str]:
    from pilotfish.cli.main import COMMANDS

    return [name for name, _ in COMMANDS]


def log_tail(path: str, lines: int = LOG_TAIL) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def admin_ready(socket_path: str, timeout: float = 1.0) -> bool:
    """Envoy admin `/ready` over its unix socket answers 200 (LIVE)."""
    if not os.path.exists(socket_path):
        return False
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", "/ready")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def free_loopback_port(preferred: int = 0) -> int:
    """`preferred` when it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise SandboxError("no free port on 127.0.0.1")


def bind_ingress(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as err:
        listener.close()
        raise SandboxError(f"cannot listen on 127.0.0.1:{port} for the ingress gateway: {err.strerror}; "
                           "choose another --ingress-port") from None
    listener.listen(256)
    return listener


_READABLE = """
import os, sys
for path in sys.argv[1:]:
    try:
        os.listdir(path) if os.path.isdir(path) else open(path, "rb").close()
    except OSError as exc:
        print(path, exc.strerror)
"""


def preflight(plan: SandboxPlan) -> None:
    """Fail early, with the fix, when the pods' uids cannot run our interpreter or read what they need
    (a checkout or interpreter under a private home directory, gotcha 7)."""
    settings = plan.settings
    needs: dict[int, set[str]] = {}
    for pod in plan.all_pods:
        for process in pod.processes:
            if process.uid is not None:
                needs.setdefault(process.uid, set()).add(process.cwd)
    if plan.ingress is not None and settings.pythonpath:
        needs.setdefault(settings.proxy_uid, set()).add(settings.pythonpath)  # the relay
    for uid, paths in sorted(needs.items()):
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", settings.python, "-I", "-S",
                "-c", _READABLE, *sorted(paths)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except OSError as err:
            raise SandboxError(f"cannot run setpriv: {err}") from None
        problem = done.stdout.strip() or (done.stderr.strip().splitlines() or [""])[-1]
        if done.returncode != 0 or problem:
            what = problem or settings.python
            raise SandboxError(f"uid {uid} (pod processes run as it) cannot use {what}: keep the checkout "
                               "and the interpreter outside private home directories, or make them "
                               "readable (chmod -R o+rX)")


class Poller:
    """A growing poll interval: fast first answers without busy waiting."""

    def __init__(self, first: float = 0.01, most: float = 0.2) -> None:
        self.delay, self.most = first, most

    def wait(self) -> None:
        time.sleep(self.delay)
        self.delay = min(self.delay * 1.5, self.most)


# --- one pod -------------------------------------------------------------------------------------------


@dataclass
class PodRuntime:
    """A pod's processes: init first (sidecar pods), then the apps, and the proxy as soon as the discovery
    server listens (`proxy_gate`), so that Envoy's first xDS connect succeeds instead of backing off."""

    plan: PodPlan
    proxy_gate: Callable[[], bool] = lambda: True
    running: dict[str, procs.Running] = field(default_factory=dict)
    init_done: bool = False
    failed: str = ""
    restarts: int = 0
    next_restart: dict[str, float] = field(default_factory=dict)

    @property
    def main_processes(self) -> list[ProcessPlan]:
        return [p for p in self.plan.processes if p.kind != "init"]

    def start(self) -> None:
        inits = self.plan.process("init")
        if inits:
            self.running["init"] = procs.start(inits[0], self.plan.netns)
        else:
            self._start_main()

    def _start_main(self) -> None:
        self.init_done = True
        for process in self.main_processes:
            if process.kind != "proxy":
                self.running[process.name] = procs.start(process, self.plan.netns)
        self._start_proxy()

    def _start_proxy(self) -> None:
        for process in self.plan.process("proxy"):
            if process.name not in self.running and self.proxy_gate():
                self.running[process.name] = procs.start(process, self.plan.netns)

    def step(self, *, restart: bool) -> None:
        """Advance: init finished -> start the rest; a dead process -> restart it (after a backoff)."""
        if self.failed:
            return
        init = self.running.get("init")
        if not self.init_done and init is not None:
            code = init.popen.poll()
            if code == 0:
                self._start_main()
            elif code is not None:
                self.failed = f"init step failed (exit {code}):\n{log_tail(init.plan.log)}"
            return
        if self.init_done:
            self._start_proxy()
        if not restart:
            return
        now = time.monotonic()
        for process in self.main_processes:
            current = self.running.get(process.name)
            if current is None or current.alive():
                continue
            due = self.next_restart.get(process.name)
            if due is None:  # just found dead: back off like a kubelet (reset after a long run)
                streak = 0 if now - current.started > 10 else min(self.restarts, 5)
                backoff = min(RESTART_BACKOFF[1], RESTART_BACKOFF[0] * 2**streak)
                self.next_restart[process.name] = now + backoff
            elif now >= due:
                del self.next_restart[process.name]
                self.restarts += 1
                self.running[process.name] = procs.start(process, self.plan.netns)

    def dead_before_ready(self) -> str:
        """A message when a main process exited before it ever became ready (a start failure)."""
        for process in self.main_processes:
            current = self.running.get(process.name)
            if current is not None and not current.alive() and not self.process_ready(process):
                return (f"{process.name} exited with status {current.popen.returncode} before it was "
                        f"ready:\n{log_tail(process.log)}")
        return ""

    def process_ready(self, process: ProcessPlan) -> bool:
        """Alive and ready since it (re)started: the listening line in its log after its start, the
        proxy's Envoy LIVE. Once ready, a process stays ready while it lives (checked with a cheap
        `waitpid`), so polling often costs little."""
        current = self.running.get(process.name)
        if current is None or not current.alive():
            return False
        if not current.ready:
            if process.kind == "proxy":
                current.ready = admin_ready(self.plan.admin)
            elif process.ready_line:
                current.ready = _has_ready_line(process.log, current.log_offset)
            else:
                current.ready = True
        return current.ready

    def ready_count(self) -> tuple[int, int]:
        mains = self.main_processes
        if not self.init_done:
            return 0, len(mains)
        return sum(1 for p in mains if self.process_ready(p)), len(mains)

    @property
    def ready(self) -> bool:
        done, total = self.ready_count()
        return self.init_done and done == total

    def report(self) -> PodReport:
        """The pod's status as a kubelet would report it."""
        started = self.init_done and not self.failed
        unready = tuple(p.name for p in self.main_processes if not started or not self.process_ready(p))
        return PodReport(self.plan.name, self.plan.namespace, started, unready)

    def all_running(self) -> list[procs.Running]:
        return list(self.running.values())


def _has_ready_line(path: str, offset: int = 0) -> bool:
    """The process's listening line is in its log after `offset` (where its latest start began)."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return any(READY_LINE.search(line.decode(errors="replace")) for line in log)
    except OSError:
        return False


def _reset_logs(pod: PodPlan) -> None:
    """A (re-)created pod starts with empty logs (a restarted process reads only its own part)."""
    shutil.rmtree(pod.dir, ignore_errors=True)
    Path(pod.dir).mkdir(parents=True, exist_ok=True)
    os.chmod(pod.dir, 0o755)


# --- the whole mesh -----------------------------------------------------------------------------------


class Sandbox:
    """One local mesh. Not thread-safe: `pilotfish up` drives it from one loop."""

    def __init__(self, dirs: Sequence[Path], settings: Settings, *,
                 progress: Callable[[str], None] | None = None, run_id: str | None = None) -> None:
        self.dirs = [Path(d).resolve() for d in dirs]
        self.settings = settings
        self.run_id = run_id or secrets.token_hex(4)
        self.progress = progress or (lambda _line: None)
        self.lock = RunLock(settings.prefix)
        self.plan: SandboxPlan | None = None
        self.pods: dict[tuple[str, str], PodRuntime] = {}
        self.discovery: procs.Running | None = None
        self.discovery_http = ""
        self.xds_ready = False
        self.relay: procs.Running | None = None
        self.started = time.monotonic()
        self.manifest_signature: tuple[tuple[str, int, int], ...] = ()
        self.diagnostics: list[Diagnostic] = []
        self.status_dir = Path(settings.run_dir) / STATUS_DIR
        """Where the pods' readiness is reported (served by the discovery server with the DIRs)."""
        self.status = StatusWriter(self.status_dir)
        self._locked = False
        self._readiness: tuple[tuple[tuple[str, str], tuple[int, int]], ...] = ()

    # -- start ----------------------------------------------------------------------------------------

    def up(self, timeout: float = READY_TIMEOUT) -> None:
        """From nothing to every pod ready; on any failure everything started so far is removed."""
        for directory in self.dirs:
            if not directory.is_dir():
                raise SandboxError(f"{directory}: no such directory")
        if not self.lock.acquire():
            state = read_state(self.settings.prefix)
            pid = f" (pid {state.pid})" if state else ""
            raise SandboxError(f"a local mesh with prefix {self.settings.prefix!r} is already running{pid}; "
                               "stop it with `pilotfish down` or use another --prefix")
        self._locked = True
        try:
            self._up(timeout)
        except BaseException:
            self.down()
            raise

    def _up(self, timeout: float) -> None:
        found = leftovers.find(self.settings.prefix)
        if not found.empty:
            self.progress(f"removing leftovers of an earlier run: {found.describe()}")
            leftovers.clean(found)
        mesh = self._load()
        if mesh is None:
            raise SandboxError("the manifests have errors:\n" + "\n".join(str(d) for d in self.diagnostics))
        proxy_command = None
        if self.settings.with_proxies:
            missing = missing_commands(available_commands())
            if missing:
                raise SandboxError(f"this pilotfish has no `{'`, `'.join(missing)}` command yet: the mesh "
                                   "needs the discovery server and the agent")
            proxy_command = proxy_process
        try:
            plan = plan_sandbox(mesh, self.settings, self.run_id, proxy_command)
        except PlanError as err:
            raise SandboxError(str(err)) from None
        self.plan = plan
        preflight(plan)
        for warning in plan.warnings:
            self.progress(f"warning: {warning}")
        run = Path(self.settings.run_dir)
        run.mkdir(parents=True, exist_ok=True)
        os.chmod(run, 0o755)
        (run / "pods").mkdir(exist_ok=True)
        os.chmod(run / "pods", 0o755)
        self.status_dir.mkdir(exist_ok=True)
        os.chmod(self.status_dir, 0o755)
        self.report_status()  # every pod Pending: no endpoint is sent before its pod is ready
        self.write_state()  # from now on `pilotfish down` can find (and stop) this run
        listener = bind_ingress(self.settings.ingress_port) if plan.ingress else None
        try:
            if self.settings.with_proxies:
                self._start_discovery(plan)
            netns.create_node(plan.node)
            self._create_pods(plan.all_pods)
            self.progress(f"{len(plan.all_pods)} pod namespaces created")
            if plan.ingress and listener is not None:
                self._start_relay(plan, listener)
        finally:
            if listener is not None:
                listener.close()
        self.write_state()
        self.wait_ready(timeout)
        self.write_state()

    @property
    def served_dirs(self) -> list[Path]:
        """What the discovery server reads: the DIRs, then the pods' status reports."""
        return [*self.dirs, self.status_dir]

    def _load(self) -> Mesh | None:
        self.manifest_signature = self._signature()
        mesh, diagnostics = load_mesh(self.dirs)
        self.diagnostics = list(diagnostics)
        return None if mesh is None or has_errors(diagnostics) else mesh

    def _signature(self) -> tuple[tuple[str, int, int], ...]:
        files, _ = manifest_files(self.dirs)
        result = []
        for file in files:
            with contextlib.suppress(OSError):
                st = file.stat()
                result.append((str(file), st.st_mtime_ns, st.st_size))
        return tuple(result)

    def _start_discovery(self, plan: SandboxPlan) -> None:
        """Start the xDS server; `discovery_ready` tells when its socket is there (pods start meanwhile)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(plan.xds_socket)  # so that readiness never sees a stale socket
        if not self.discovery_http:
            # The default run takes istiod's debug port when it is free, so `proxy-status` finds it as is.
            preferred = DISCOVERY_DEBUG_PORT if self.settings.prefix == DEFAULT_PREFIX else 0
            self.discovery_http = f"127.0.0.1:{free_loopback_port(preferred)}"
        process = discovery_process(self.settings, self.run_id, [str(d) for d in self.served_dirs],
                                    plan.xds_socket, self.discovery_http,
                                    str(Path(self.settings.run_dir) / "discovery.log"))
        self.discovery = procs.start(process, None)
        self.xds_ready = False

    def discovery_ready(self) -> bool:
        """True once the discovery server's socket exists (made connectable for the proxy uid)."""
        if self.xds_ready or self.discovery is None or self.plan is None:
            return self.xds_ready
        if os.path.exists(self.plan.xds_socket):
            os.chmod(self.plan.xds_socket, 0o666)  # uid 1337 must be able to connect (gotcha 9)
            self.xds_ready = True
            self.progress(f"discovery server up (xDS unix:{self.plan.xds_socket}, "
                          f"debug http://{self.discovery_http}) ({self.elapsed():.1f}s)")
        elif not self.discovery.alive():
            status = self.discovery.popen.returncode
            raise SandboxError(f"the discovery server exited (status {status}):\n"
                               f"{log_tail(self.discovery.plan.log)}")
        return self.xds_ready

    def _create_pods(self, pods: Sequence[PodPlan]) -> None:
        for pod in pods:
            _reset_logs(pod)
            if pod.admin:  # Envoy (the proxy uid) binds its admin socket here
                os.chown(pod.dir, self.settings.proxy_uid, self.settings.proxy_uid)
        netns.create_pods(self.plan.node if self.plan else "", pods)
        for pod in pods:
            netns.write_pod_files(pod)
        for pod in pods:
            runtime = PodRuntime(pod, self.discovery_ready)
            self.pods[pod.key] = runtime
            runtime.start()

    def _start_relay(self, plan: SandboxPlan, listener: socket.socket) -> None:
        assert plan.ingress is not None
        fd = listener.fileno()
        process = ProcessPlan(
            "relay", "relay",
            (self.settings.python, "-m", "pilotfish.sandbox.relay", f"fd:{fd}",
             f"tcp:{plan.ingress.ip}:{plan.ingress.pod_port}"),
            "/", pilotfish_env(self.settings, self.run_id), self.settings.proxy_uid,
            str(Path(self.settings.run_dir) / "relay.log"), ready_line=True)
        self.relay = procs.start(process, plan.ingress.netns, pass_fds=[fd])

    # -- readiness ------------------------------------------------------------------------------------

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll until every pod is ready and every proxy has the config that says so; report each
        pod once as it becomes ready."""
        deadline = time.monotonic() + timeout
        reported: set[tuple[str, str]] = set()
        poller = Poller()
        while True:
            self.report_status()
            for key, pod in self.pods.items():
                pod.step(restart=False)
                if pod.failed:
                    raise SandboxError(f"pod {pod.plan.proxy_id}: {pod.failed}")
                problem = pod.dead_before_ready() if pod.init_done else ""
                if problem:
                    raise SandboxError(f"pod {pod.plan.proxy_id}: {problem}")
                if key not in reported and pod.ready:
                    reported.add(key)
                    done, total = pod.ready_count()
                    name = pod.plan.proxy_id.rstrip('.')
                    self.progress(f"  {name} ready {done}/{total} ({self.elapsed():.1f}s)")
            relay_ok = self.relay is None or _has_ready_line(self.relay.plan.log)
            if self.relay is not None and not self.relay.alive():
                raise SandboxError(f"the ingress relay exited:\n{log_tail(self.relay.plan.log)}")
            discovery_ok = self.discovery is None or self.discovery_ready()
            if len(reported) == len(self.pods) and relay_ok and discovery_ok:
                self.report_status()
                self._wait_served(deadline, timeout)
                return
            if time.monotonic() > deadline:
                waiting = [p.plan.proxy_id for k, p in self.pods.items() if k not in reported]
                raise SandboxError(f"pods not ready after {timeout:.0f}s: {', '.join(waiting)}")
            poller.wait()

    def report_status(self, pending: Collection[tuple[str, str]] = ()) -> bool:
        """Write every pod's readiness where the discovery server reads it (when it changed); pods
        in `pending` are about to be (re-)created."""
        if self.plan is None:
            return False
        reports = []
        for pod in self.plan.pods:
            runtime = self.pods.get(pod.key)
            if runtime is None or pod.key in pending:  # not started yet: Pending, nothing ready
                names = tuple(p.name for p in pod.processes if p.kind != "init")
                reports.append(PodReport(pod.name, pod.namespace, False, names))
            else:
                reports.append(runtime.report())
        return self.status.write(reports)

    def _wait_served(self, deadline: float, timeout: float) -> None:
        """Until every proxy acknowledged the mesh of the manifests and status reports as they are
        now (the discovery server's /debug/syncz): then the first request finds every endpoint."""
        if self.discovery is None or self.plan is None:
            return
        proxies = {p.proxy_id for p in self.plan.pods if p.proxy_type is not None}
        if not self._await_served(proxies, deadline):
            raise SandboxError(f"the proxies did not get the mesh within {timeout:.0f}s (discovery "
                               f"log: {self.discovery.plan.log})")

    def _await_served(self, proxies: set[str], deadline: float) -> bool:
        poller = Poller()
        while not self._served(proxies):
            if time.monotonic() > deadline:
                return False
            poller.wait()
        return True

    def _served(self, proxies: set[str]) -> bool:
        texts, _ = read_manifests(self.served_dirs)
        want = content_version(texts)
        host, _, port = self.discovery_http.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            conn.request("GET", "/debug/syncz")
            streams = json.loads(conn.getresponse().read())
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            conn.close()
        current = {s.get("proxy"): s for s in streams if isinstance(s, dict)}
        return all(
            p in current and current[p].get("mesh_version") == want
            and all(t.get("status") == "SYNCED" for t in current[p].get("types", {}).values())
            for p in proxies
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- while running --------------------------------------------------------------------------------

    def poll(self) -> list[str]:
        """One round of supervision; returns messages for the user (changes applied, errors)."""
        messages: list[str] = []
        if self.discovery is not None and not self.discovery.alive() and self.plan is not None:
            messages.append(f"discovery server exited (status {self.discovery.popen.returncode}); restarting")
            self._start_discovery(self.plan)
        with contextlib.suppress(SandboxError):
            self.discovery_ready()
        if self.relay is not None and not self.relay.alive():
            messages.append("ingress relay exited")
        for pod in self.pods.values():
            before = pod.restarts
            pod.step(restart=True)
            if pod.restarts != before:
                messages.append(f"restarted a container of {pod.plan.proxy_id} (restarts: {pod.restarts})")
        self.report_status()
        if self._signature() != self.manifest_signature:
            messages.extend(self.reload())
        readiness = tuple((key, pod.ready_count()) for key, pod in self.pods.items())
        if readiness != self._readiness:
            self._readiness = readiness
            self.write_state()
        return messages

    def reload(self) -> list[str]:
        """Apply the manifests as they are now: add/remove pods, rewrite hosts files."""
        assert self.plan is not None
        mesh = self._load()
        if mesh is None:
            return ["manifests have errors; the mesh keeps running as it was:",
                    *(f"  {d}" for d in self.diagnostics if d.is_error)]
        try:
            new = plan_sandbox(mesh, self.settings, self.run_id,
                               proxy_process if self.settings.with_proxies else None)
        except PlanError as err:
            return [f"cannot apply the manifests: {err}"]
        diff = diff_pods(self.plan.pods, new.pods)
        messages = [f"manifests changed (mesh version {mesh.version}): "
                    + (f"{len(diff.added)} pod(s) to create, {len(diff.removed)} to remove"
                       if not diff.empty else "routing config only (served by the discovery server)")]
        messages += [f"  warning: {d}" for d in self.diagnostics]
        gateway_changed = (self.plan.ingress != new.ingress
                           or any(p.key == (new.ingress.pod if new.ingress else None) for p in diff.removed))
        old = self.plan
        self.plan = new
        # Before anything stops or starts: pods to create are Pending (also the re-created ones whose
        # old processes still run), pods to remove are no longer reported.
        self.report_status(pending={pod.key for pod in diff.added})
        if diff.removed and self.discovery is not None:
            # Like Kubernetes with a terminating pod: its endpoints leave the proxies, then it stops.
            staying = {p.proxy_id for p in diff.kept if p.proxy_type is not None}
            self._await_served(staying, time.monotonic() + TERMINATION_GRACE)
        if gateway_changed and self.relay is not None:
            procs.stop([self.relay])
            self.relay = None
        for pod in diff.removed:
            self._remove_pod(pod)
            messages.append(f"pod {pod.proxy_id} removed")
        for pod in hosts_changes(old.pods, new.pods):
            netns.write_pod_files(pod)
            self.pods[pod.key].plan = pod
        if diff.added:
            self._create_pods(diff.added)
            messages.extend(f"pod {pod.proxy_id} created" for pod in diff.added)
            self.report_status()
        if gateway_changed and new.ingress is not None:
            listener = bind_ingress(self.settings.ingress_port)
            try:
                self._start_relay(new, listener)
            finally:
                listener.close()
        self.write_state()
        return messages

    def _remove_pod(self, pod: PodPlan) -> None:
        runtime = self.pods.pop(pod.key, None)
        if runtime is not None:
            procs.stop(runtime.all_running())
        netns.delete_pod(self.plan.node if self.plan else "", pod)
        netns.remove_pod_files(pod.netns)
        shutil.rmtree(pod.dir, ignore_errors=True)

    # -- state ------------------------------------------------------------------------------------------

    def state(self) -> MeshState:
        assert self.plan is not None
        plan = self.plan
        pods = []
        for pod in plan.all_pods:
            runtime = self.pods.get(pod.key)
            done, total = runtime.ready_count() if runtime else (0, 0)
            logs = {p.name: p.log for p in pod.processes}
            pods.append(PodState(pod.name, pod.namespace, pod.netns, pod.ip,
                                 pod.proxy_type.value if pod.proxy_type else None, pod.admin, logs,
                                 f"{done}/{total}"))
        return MeshState(
            prefix=self.settings.prefix, run_id=self.run_id, pid=os.getpid(),
            dirs=[str(d) for d in self.dirs], status_dir=str(self.status_dir),
            run_dir=self.settings.run_dir, ingress_url=plan.ingress.url if plan.ingress else "",
            discovery_grpc=f"unix:{plan.xds_socket}" if self.discovery else "",
            discovery_http=self.discovery_http, node=plan.node, pods=pods,
            started=time.time() - self.elapsed(),
        )

    def write_state(self) -> None:
        if self.plan is not None and Path(self.settings.run_dir).is_dir():
            write_state(self.state())

    # -- stop -------------------------------------------------------------------------------------------

    def down(self) -> None:
        """Processes first, then namespaces, then files; safe to call twice and after a failed `up`."""
        running = [r for pod in self.pods.values() for r in pod.all_running()]
        running += [r for r in (self.relay, self.discovery) if r is not None]
        procs.stop(running)
        self.pods.clear()
        self.relay = self.discovery = None
        if self._locked:
            found = leftovers.find(self.settings.prefix)  # whatever the run made, by name and marker
            leftovers.clean(found)
            if self.plan is not None:
                for pod in self.plan.all_pods:
                    netns.remove_pod_files(pod.netns)
            netns.remove_etc_netns_if_empty()
            shutil.rmtree(self.settings.run_dir, ignore_errors=True)
            self.lock.release(remove=True)
            self._locked = False
