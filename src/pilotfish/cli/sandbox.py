"""`pilotfish up`, `pilotfish down`, `pilotfish logs`: the local mesh on this machine (needs root).

    pilotfish up samples/bookinfo            # runs until Ctrl-C or `pilotfish down`
    curl http://127.0.0.1:8080/productpage
    pilotfish logs productpage -c proxy -f
    pilotfish down
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click

from pilotfish.sandbox.state import (
    MeshState,
    NoRunningMesh,
    PodState,
    default_prefix,
    find_pod,
    lock_held,
    read_state,
    running_mesh,
)

POLL_INTERVAL = 0.2
"""How often `up` supervises the pods: a dead app is reported not ready (and restarted) within this."""
DOWN_TIMEOUT = 30.0


class _Stop(BaseException):
    """Raised from the signal handler: unwinds `up` into its teardown."""


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _need_root(command: str) -> None:
    if os.geteuid() != 0:
        _fail(f"`pilotfish {command}` needs root (network namespaces, iptables); run it with sudo")


def _prefix_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option("--prefix", default=None, metavar="PREFIX",
                        help="Name prefix of the run's namespaces and files (default: $PILOTFISH_PREFIX "
                             "or pf-).")(func)


def pods_table(state: MeshState) -> str:
    rows = [("NAMESPACE", "NAME", "READY", "IP")]
    for pod in state.pods:
        rows.append((pod.namespace or "-", pod.name, pod.ready, pod.ip))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def next_steps(state: MeshState) -> str:
    """The gateway URL and commands to try, with this mesh's pod names."""
    gateway = next((p for p in state.pods if p.proxy_type == "router"), None)
    page = next((p for p in state.pods if p.name.startswith("productpage-")), None)
    env = "" if state.prefix == "pf-" else f"PILOTFISH_PREFIX={state.prefix} "
    lines = []
    if state.ingress_url:
        lines += [f"Ingress gateway: {state.ingress_url}", "", "Try:",
                  f"  curl {state.ingress_url}/productpage" if page else f"  curl {state.ingress_url}/"]
    if gateway is not None and gateway.admin:
        gw = f"{gateway.name} -n {gateway.namespace}"
        lines += [f"  {env}pilotfish proxy-config listener {gw} --port 80 -o json",
                  f"  {env}pilotfish proxy-config route {gw} --name http.80 -o json",
                  f"  {env}pilotfish proxy-config cluster {gw} --fqdn productpage.default.svc.cluster.local"]
    if page is not None and page.admin:
        lines += [f"  {env}pilotfish proxy-config listener {page.name} --port 15001 -o json",
                  f"  {env}pilotfish proxy-config route {page.name} --name 9080 -o json",
                  f"  {env}pilotfish proxy-config endpoint {page.name} --cluster "
                  "'outbound|9080||reviews.default.svc.cluster.local'"]
    if state.discovery_http:
        lines.append(f"  {env}pilotfish proxy-status")
    if page is not None:
        lines.append(f"  {env}pilotfish logs {page.name} -c proxy -f")
    lines += ["", f"Edits to {', '.join(state.dirs)} apply live. Stop with Ctrl-C or `{env}pilotfish down`."]
    return "\n".join(lines)


@click.command("up")
@click.argument("dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--ingress-port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="Port on 127.0.0.1 that reaches the ingress gateway.")
@_prefix_option
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(1),
              help="Seconds to wait for all pods to become ready.")
@click.option("--apps-only", is_flag=True, hidden=True,
              help="Run pods without init step and proxies (tests of the sandbox itself).")
def up(dirs: tuple[Path, ...], ingress_port: int, prefix: str | None, timeout: float,
       apps_only: bool) -> None:
    """Run the manifests in DIRS as a local mesh: pods as network namespaces, sidecars, ingress gateway.

    Keeps running (and applies edits to DIRS) until Ctrl-C or `pilotfish down`.
    """
    _need_root("up")
    from pilotfish.sandbox.runtime import Sandbox, SandboxError, default_settings

    prefix = prefix or default_prefix()
    try:
        settings = default_settings(prefix, ingress_port, with_proxies=not apps_only)
    except SandboxError as err:
        _fail(str(err))
    sandbox = Sandbox(list(dirs), settings, progress=click.echo)

    def stop(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Stop(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    click.echo(f"starting the local mesh of {', '.join(str(d) for d in dirs)} (prefix {prefix})")
    try:
        sandbox.up(timeout)
        state = sandbox.state()
        click.echo(f"\nall {len(state.pods)} pods ready in {sandbox.elapsed():.1f}s\n")
        click.echo(pods_table(state))
        click.echo("")
        click.echo(next_steps(state))
        while True:
            time.sleep(POLL_INTERVAL)
            for message in sandbox.poll():
                click.echo(message)
    except SandboxError as err:
        sandbox.down()
        _fail(str(err))
    except _Stop:
        click.echo("\nstopping the local mesh ...")
    finally:
        sandbox.down()
    click.echo("stopped; nothing left behind")


@click.command("down")
@_prefix_option
@click.option("--timeout", default=DOWN_TIMEOUT, show_default=True, type=click.FloatRange(1),
              help="Seconds to wait for a running `pilotfish up` to stop.")
def down(prefix: str | None, timeout: float) -> None:
    """Stop the local mesh, and remove whatever a crashed run left (namespaces, processes, files)."""
    _need_root("down")
    from pilotfish.sandbox import leftovers

    prefix = prefix or default_prefix()
    if lock_held(prefix):
        state = read_state(prefix)
        if state is None:
            _fail(f"a `pilotfish up` holds the lock of prefix {prefix!r} but wrote no state yet; "
                  "stop it directly")
        click.echo(f"stopping `pilotfish up` (pid {state.pid}) ...")
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while lock_held(prefix):
            if time.monotonic() > deadline:
                _fail(f"`pilotfish up` (pid {state.pid}) did not stop within {timeout:.0f}s")
            time.sleep(0.05)
    found = leftovers.clean_all(prefix)
    if not found.empty:
        click.echo(f"removed leftovers: {found.describe()}")
    click.echo("the local mesh is down")


def _pick_log(pod: PodState, container: str | None) -> str:
    names = list(pod.logs)
    apps = [n for n in names if n not in ("init", "proxy")]
    if container in (None, "app"):
        if not apps:
            _fail(f"pod {pod.proxy_id} has no app container (logs: {', '.join(names) or 'none'})")
        return pod.logs[apps[0]]
    assert container is not None
    if container not in pod.logs:
        _fail(f"pod {pod.proxy_id} has no container {container!r} (choose from: app, {', '.join(names)})")
    return pod.logs[container]


def _follow(path: str, offset: int) -> None:
    """Print what is appended to `path` until Ctrl-C; a re-created pod's new log is picked up."""
    while True:
        try:
            with open(path, "rb") as log:
                if os.fstat(log.fileno()).st_size < offset:
                    offset = 0
                log.seek(offset)
                data = log.read()
        except FileNotFoundError:
            data, offset = b"", 0
        if data:
            offset += len(data)
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()
        time.sleep(0.2)


@click.command("logs")
@click.argument("pod")
@click.option("-c", "--container", default=None,
              help="app (the default: the pod's first container), proxy, init, or a container name.")
@click.option("-n", "--namespace", default=None, help="Namespace of POD (default: any).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=int, default=-1, help="Only the last N lines.")
@_prefix_option
def logs(pod: str, container: str | None, namespace: str | None, follow: bool, tail: int,
         prefix: str | None) -> None:
    """Print the log of a container of a pod of the running local mesh."""
    try:
        found = find_pod(running_mesh(prefix), pod, namespace)
    except (NoRunningMesh, LookupError) as err:
        _fail(str(err.args[0] if err.args else err))
    path = _pick_log(found, container)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        data = b""
    text = data.decode(errors="replace")
    if tail >= 0:
        text = "".join(text.splitlines(keepends=True)[-tail:] if tail else [])
    sys.stdout.write(text)
    sys.stdout.flush()
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            _follow(path, len(data))
