"""`pilotfish trace`: follow one request through the mesh's Envoy config, hop by hop.

    pilotfish trace deploy/productpage-v1 http://reviews:9080/reviews/0 -H 'end-user: jason' \\
        --manifests samples/bookinfo --manifests my-routing.yaml -o svg --out trace.svg
    pilotfish trace ingress http://127.0.0.1:18080/productpage --manifests samples/bookinfo

    pilotfish trace productpage http://reviews:9080/reviews/0 -H 'end-user: jason' --verify

The source is a pod (`name`, `name.namespace`, `deploy/<deployment>` or a deployment name) or
`ingress` (the ingress gateway, reached from the host). Where the Envoy config comes from:

- `--manifests`: generated offline from the manifests (`simulate.source.OfflineSource`);
- no `--manifests` while a local mesh runs (`pilotfish up`): each proxy's live config, read from its
  Envoy's admin socket (`/config_dump?include_eds`); the pods, Services and VirtualService origins
  come from the manifests the mesh runs (`--offline` generates the config from them instead);
- `--admin POD=ADDRESS`: that pod's Envoy at ADDRESS (with `--manifests`, the others stay offline).

`--verify` then sends the request for real (from inside the source pod as the app's uid, or to the
ingress relay on 127.0.0.1) and compares every proxy's access-log line with the prediction
(`cli.trace_live`). Exit status: 0 when the request gets through, 1 when it fails; with `--verify`,
0 when the Envoys agree with the trace and 3 when they do not; 2 for unusable input.
IO lives here (reading manifests, running Graphviz, writing the output); the walk is pure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import click

from pilotfish.cli import trace_live
from pilotfish.cli.dump_sources import SourceError
from pilotfish.inspect.configdump import ConfigDumpError
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import ProxyType, split_pod_ref
from pilotfish.model.service import Workload
from pilotfish.pipeline import load_mesh
from pilotfish.sandbox.probe import ProbeError
from pilotfish.sandbox.state import MeshState, NoRunningMesh, running_mesh
from pilotfish.simulate import envoy
from pilotfish.simulate.dot import render_dot
from pilotfish.simulate.render import render_json, render_text
from pilotfish.simulate.request import (
    IngressSource,
    PodSource,
    RequestError,
    Source,
    build_request,
    parse_url,
)
from pilotfish.simulate.result import Trace
from pilotfish.simulate.source import ConfigSource, MixedSource, OfflineSource
from pilotfish.simulate.verify import Verification, render_verification
from pilotfish.simulate.walk import simulate

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DISAGREE = 3
FORMATS = ("text", "json", "dot", "svg")


class UsageError(Exception):
    """Input the command cannot use; the message says what to change."""


@click.command("trace", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source")
@click.argument("url")
@click.option("-X", "--request", "method", default="GET", show_default=True, help="HTTP method.")
@click.option("-H", "--header", "headers", multiple=True, help="Request header 'name: value' (repeatable).")
@click.option(
    "--manifests",
    "-f",
    "manifests",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Manifest file or directory (repeatable).",
)
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the source pod.")
@click.option("-o", "--output", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--out", "out_file", type=click.Path(path_type=Path), help="Write to this file instead of stdout."
)
@click.option(
    "--pick", help="Weighted routes: follow this cluster (name, subset or host) instead of the heaviest."
)
@click.option(
    "--gateway-port", type=int, help="For `ingress`: the gateway port the URL's port is forwarded to."
)
@click.option(
    "--admin",
    "admins",
    multiple=True,
    metavar="POD=ADDRESS",
    help="Read POD's config from its Envoy admin API (unix:/path/admin.sock or host:port); repeatable.",
)
@click.option(
    "--offline", is_flag=True, help="With a running mesh: generate the config from its manifests instead."
)
@click.option(
    "--verify",
    is_flag=True,
    help="Send the request in the running mesh and compare the proxies' access logs with the trace.",
)
@click.pass_context
def trace(
    ctx: click.Context,
    source: str,
    url: str,
    method: str,
    headers: tuple[str, ...],
    manifests: tuple[Path, ...],
    namespace: str,
    output: str,
    out_file: Path | None,
    pick: str | None,
    gateway_port: int | None,
    admins: tuple[str, ...],
    offline: bool,
    verify: bool,
) -> None:
    """Simulate a request from SOURCE (a pod, or `ingress`) to URL and show every hop.

    The config is the running local mesh's (each Envoy's live config) unless --manifests is given;
    --verify sends the request for real and checks every proxy's access-log line against the trace
    (exit 0: they agree, 3: they do not).
    """
    state = _running(ctx, required=verify or not manifests)
    mesh = _load(ctx, list(manifests) if manifests else [Path(d) for d in state.dirs] if state else [])
    try:
        config = _config_source(mesh, namespace, state, manifests, admins, offline)
        relay = trace_live.relay(state, mesh) if state is not None and not manifests else None
        origin = resolve_source(mesh, config, source, namespace, url, gateway_port, relay)
        request = build_request(origin, url, method, headers)
        hosts = (
            trace_live.pod_hosts(state, mesh.workloads_by_name[(origin.namespace, origin.pod)])
            if state is not None and not manifests and isinstance(origin, PodSource)
            else {}
        )
        result = simulate(mesh, config, request, pick, hosts)
        verification = None
        if verify:
            assert state is not None
            running = mesh if not manifests else _load(ctx, [Path(d) for d in state.dirs])
            context = trace_live.verify_context(state, running)
            verification, result = trace_live.verify(
                context, mesh, result, lambda cluster: simulate(mesh, config, request, cluster, hosts)
            )
    except (UsageError, RequestError, trace_live.LiveError, SourceError, ConfigDumpError, ProbeError) as exc:
        _usage(ctx, str(exc))
    _emit(ctx, output, out_file, result, config.description, verification)
    if verification is not None:
        ctx.exit(0 if verification.ok else EXIT_DISAGREE)
    ctx.exit(0 if result.outcome.ok else EXIT_FAILED)


def _running(ctx: click.Context, required: bool) -> MeshState | None:
    """The running local mesh's state; a usage error when it is needed and there is none."""
    try:
        return running_mesh()
    except NoRunningMesh as exc:
        if required:
            _usage(ctx, f"{exc}; or trace offline with --manifests DIR")
        return None


def _load(ctx: click.Context, paths: list[Path]) -> Mesh:
    mesh, diagnostics = load_mesh(paths)
    for diagnostic in diagnostics:
        click.echo(f"pilotfish trace: {diagnostic}", err=True)
    if mesh is None:
        ctx.exit(EXIT_USAGE)
    return mesh


def _config_source(
    mesh: Mesh,
    namespace: str,
    state: MeshState | None,
    manifests: tuple[Path, ...],
    admins: tuple[str, ...],
    offline: bool,
) -> ConfigSource:
    """Offline with --manifests or --offline; live from the running mesh otherwise; --admin overrides."""
    addresses = {
        find_pod(mesh, ref, namespace).proxy_id: address
        for ref, address in trace_live.parse_admins(admins).items()
    }
    generated = OfflineSource(mesh)
    if manifests or offline:
        if not addresses:
            return generated
        live = trace_live.live_source(None, addresses)
        pods = frozenset((w.namespace, w.name) for w in mesh.workloads if w.proxy_id in addresses)
        return MixedSource(live, pods, generated)
    return trace_live.live_source(state, addresses)


def _emit(
    ctx: click.Context,
    output: str,
    out_file: Path | None,
    result: Trace,
    description: str,
    verification: Verification | None,
) -> None:
    if output == "text":
        text = render_text(result, description)
        if verification is not None:
            text += render_verification(verification)
    elif output == "json":
        text = render_json(result, description)
        if verification is not None:
            document = json.loads(text)
            document["verify"] = verification.to_json()
            text = json.dumps(document, indent=2) + "\n"
    else:
        text = render_dot(result)
        if verification is not None:
            click.echo(render_verification(verification), err=True, nl=False)
    if output == "svg":
        _write_bytes(out_file, _svg(ctx, text))
    else:
        _write_text(out_file, text)


def _usage(ctx: click.Context, message: str) -> NoReturn:
    click.echo(f"pilotfish trace: {message}", err=True)
    ctx.exit(EXIT_USAGE)


def resolve_source(
    mesh: Mesh,
    config: ConfigSource,
    ref: str,
    namespace: str,
    url: str,
    gateway_port: int | None,
    relay: tuple[int, int] | None = None,
) -> Source:
    """The pod (or the ingress gateway) a request starts from; raises UsageError naming what exists.

    `relay` is the running mesh's (host port, gateway port): a URL on 127.0.0.1:<host port> reaches
    the gateway port it is forwarded to."""
    if ref == "ingress":
        return _ingress(config, _ingress_gateway(mesh), url, gateway_port, relay)
    pod = find_pod(mesh, ref, namespace)
    if pod.proxy_type is ProxyType.ROUTER:
        return _ingress(config, pod, url, gateway_port, relay)
    return PodSource(pod.name, pod.namespace)


def find_pod(mesh: Mesh, ref: str, namespace: str) -> Workload:
    """A pod by name (`name` or `name.namespace`), `deploy/<name>`, a Deployment name or a unique prefix."""
    name, ns = split_pod_ref(ref, namespace)
    deployment = name.removeprefix("deploy/")
    local = [w for w in mesh.workloads if w.namespace == ns]
    exact = [w for w in local if w.name == name] or [w for w in local if w.deployment == deployment]
    if exact:
        return exact[0]  # a Deployment's first pod, as `kubectl exec deploy/x` picks one
    prefixed = [w for w in local if w.name.startswith(name)]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        listed = ", ".join(w.name for w in prefixed)
        raise UsageError(f"{ref!r} names several pods in namespace {ns}: {listed}")
    known = ", ".join(f"{w.name}.{w.namespace}" for w in mesh.workloads) or "none"
    raise UsageError(f"no pod {name!r} in namespace {ns} (pods: {known})")


def _ingress_gateway(mesh: Mesh) -> Workload:
    routers = [w for w in mesh.workloads if w.proxy_type is ProxyType.ROUTER]
    selector = mesh.mesh_config.ingress_selector
    preferred = [w for w in routers if w.labels.get("istio") == selector]
    found = preferred or routers
    if not found:
        raise UsageError("the manifests have no gateway pod (a Deployment whose pods run only istio-proxy)")
    return found[0]


def _ingress(
    config: ConfigSource,
    gateway: Workload,
    url: str,
    gateway_port: int | None,
    relay: tuple[int, int] | None = None,
) -> IngressSource:
    """Which gateway port the URL reaches: the relay's target for the running mesh's ingress URL, its
    own port when the gateway listens there, else the gateway's only listener (the host forwards to
    it, as the local mesh does with 127.0.0.1:8080)."""
    try:
        _, host, port, _, _ = parse_url(url)
    except RequestError as exc:
        raise UsageError(str(exc)) from None
    if gateway_port is None and relay is not None and port == relay[0] and host in ("127.0.0.1", "localhost"):
        return IngressSource(gateway.name, gateway.namespace, relay[1], port)
    listeners = config.proxy_config(gateway).listeners.values()
    ports = sorted({envoy.address_of(li)[1] for li in listeners if envoy.is_bound(li)})
    if gateway_port is not None:
        return IngressSource(
            gateway.name, gateway.namespace, gateway_port, port if port != gateway_port else None
        )
    if port in ports:
        return IngressSource(gateway.name, gateway.namespace, port)
    if len(ports) == 1:
        return IngressSource(gateway.name, gateway.namespace, ports[0], port)
    listed = ", ".join(str(p) for p in ports) or "no port"
    raise UsageError(
        f"gateway {gateway.name}.{gateway.namespace} listens on {listed}, not {port}: "
        "say which port the URL reaches with --gateway-port"
    )


def _svg(ctx: click.Context, dot_text: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        _usage(ctx, "-o svg needs Graphviz's `dot` (apt-get install graphviz); -o dot prints its input")
    result = subprocess.run([dot, "-Tsvg"], input=dot_text.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        click.echo(f"pilotfish trace: dot failed: {result.stderr.decode(errors='replace')}", err=True)
        ctx.exit(EXIT_FAILED)
    return result.stdout


def _write_text(out_file: Path | None, text: str) -> None:
    if out_file is None:
        click.echo(text, nl=False)
    else:
        out_file.write_text(text)


def _write_bytes(out_file: Path | None, data: bytes) -> None:
    if out_file is None:
        click.echo(data, nl=False)
    else:
        out_file.write_bytes(data)
