"""`pilotfish trace`: follow one request through the mesh's Envoy config, hop by hop.

    pilotfish trace deploy/productpage-v1 http://reviews:9080/reviews/0 -H 'end-user: jason' \\
        --manifests samples/bookinfo --manifests my-routing.yaml -o svg --out trace.svg
    pilotfish trace ingress http://127.0.0.1:18080/productpage --manifests samples/bookinfo

The source is a pod (`name`, `name.namespace`, `deploy/<deployment>` or a deployment name) or
`ingress` (the ingress gateway, reached from the host). The config is generated offline from the
manifests (`simulate.source.OfflineSource`); reading a running mesh's Envoys comes with the local
mesh. Exit status: 0 when the request gets through, 1 when it fails, 2 for unusable input.
IO lives here (reading manifests, running Graphviz, writing the output); the walk is pure.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import click

from pilotfish.model.mesh import Mesh
from pilotfish.model.names import ProxyType, split_pod_ref
from pilotfish.model.service import Workload
from pilotfish.pipeline import load_mesh
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
from pilotfish.simulate.source import OfflineSource
from pilotfish.simulate.walk import simulate

EXIT_FAILED = 1
EXIT_USAGE = 2
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
) -> None:
    """Simulate a request from SOURCE (a pod, or `ingress`) to URL and show every hop."""
    if not manifests:
        _usage(
            ctx, "give the mesh's config with --manifests DIR (reading a running mesh is not available yet)"
        )
    mesh, diagnostics = load_mesh(list(manifests))
    for diagnostic in diagnostics:
        click.echo(f"pilotfish trace: {diagnostic}", err=True)
    if mesh is None:
        ctx.exit(EXIT_USAGE)
    config = OfflineSource(mesh)
    try:
        origin = resolve_source(mesh, config, source, namespace, url, gateway_port)
        request = build_request(origin, url, method, headers)
    except (UsageError, RequestError) as exc:
        _usage(ctx, str(exc))
    result = simulate(mesh, config, request, pick)
    if output == "text":
        text = render_text(result, config.description)
    elif output == "json":
        text = render_json(result, config.description)
    else:
        text = render_dot(result)
    if output == "svg":
        _write_bytes(out_file, _svg(ctx, text))
    else:
        _write_text(out_file, text)
    ctx.exit(0 if result.outcome.ok else EXIT_FAILED)


def _usage(ctx: click.Context, message: str) -> NoReturn:
    click.echo(f"pilotfish trace: {message}", err=True)
    ctx.exit(EXIT_USAGE)


def resolve_source(
    mesh: Mesh, config: OfflineSource, ref: str, namespace: str, url: str, gateway_port: int | None
) -> Source:
    """The pod (or the ingress gateway) a request starts from; raises UsageError naming what exists."""
    if ref == "ingress":
        return _ingress(config, _ingress_gateway(mesh), url, gateway_port)
    pod = find_pod(mesh, ref, namespace)
    if pod.proxy_type is ProxyType.ROUTER:
        return _ingress(config, pod, url, gateway_port)
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


def _ingress(config: OfflineSource, gateway: Workload, url: str, gateway_port: int | None) -> IngressSource:
    """Which gateway port the URL reaches: its own port when the gateway listens there, else the
    gateway's only listener (the host forwards to it, as the local mesh does with 127.0.0.1:18080)."""
    try:
        _, _, port, _, _ = parse_url(url)
    except RequestError as exc:
        raise UsageError(str(exc)) from None
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
