"""The one pipeline both front ends use: manifests -> config -> Mesh -> per-proxy xDS.

`pilotfish discovery` calls `load_mesh` on every change and `generate` per connected proxy; the
offline `pilotfish proxy-config --manifests` calls `offline_dumps` for one pod. Reading files is
the only IO here; everything after it is the pure core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pilotfish.config.diagnostics import Diagnostic, has_errors
from pilotfish.config.parse import parse_manifests
from pilotfish.model.build import build_mesh
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import NodeId
from pilotfish.model.proxy import Proxy, freeze_labels
from pilotfish.model.service import Workload
from pilotfish.sources.manifests import content_version, read_manifests
from pilotfish.xds.dump import clusters_status, config_dump
from pilotfish.xds.generate import generate
from pilotfish.xds.resources import ProxyResources

__all__ = ["generate", "load_mesh", "mesh_from_texts", "offline_dumps", "proxy_for_workload", "resolve_proxy"]


def load_mesh(paths: Sequence[Path]) -> tuple[Mesh | None, list[Diagnostic]]:
    """Read and build. None (with the errors) when any input is invalid: callers keep their last
    good mesh rather than serving a partial one."""
    texts, diagnostics = read_manifests(paths)
    if has_errors(diagnostics):
        return None, diagnostics
    mesh, more = mesh_from_texts(texts)
    return mesh, diagnostics + more


def mesh_from_texts(texts: Sequence[tuple[str, str]]) -> tuple[Mesh | None, list[Diagnostic]]:
    objects, diagnostics = parse_manifests(texts)
    if has_errors(diagnostics):
        return None, diagnostics
    mesh, more = build_mesh(objects, version=content_version(texts))
    return mesh, diagnostics + more


def proxy_for_workload(mesh: Mesh, workload: Workload) -> Proxy:
    """The `Proxy` of a pod of the mesh (what its Envoy's node id and metadata would say)."""
    assert workload.proxy_type is not None, f"{workload.proxy_id} runs no proxy"
    return Proxy(
        proxy_type=workload.proxy_type,
        ip=workload.ip,
        pod_name=workload.name,
        namespace=workload.namespace,
        labels=freeze_labels(workload.labels),
        service_account=workload.service_account,
        domain_suffix=mesh.domain_suffix,
        ipv6=":" in workload.ip,
        container_ports=tuple(port for _, port in workload.container_ports),
    )


def resolve_proxy(mesh: Mesh, node_id: str, metadata: Mapping[str, Any]) -> Proxy:
    """The proxy an Envoy's node id names. Unknown pods get a Proxy with `known=False` (Istio then
    still serves outbound config, built from the node metadata's labels). Raises ValueError for a
    malformed node id."""
    node = NodeId.parse(node_id)
    workload = mesh.workload(node.pod_name, node.namespace)
    if workload is not None and workload.proxy_type is not None:
        proxy = proxy_for_workload(mesh, workload)
        return Proxy(
            proxy_type=node.proxy_type,
            ip=node.ip or proxy.ip,
            pod_name=proxy.pod_name,
            namespace=proxy.namespace,
            labels=proxy.labels,
            service_account=proxy.service_account,
            domain_suffix=proxy.domain_suffix,
            ipv6=":" in (node.ip or proxy.ip),
            container_ports=proxy.container_ports,
        )
    labels = metadata.get("LABELS")
    return Proxy(
        proxy_type=node.proxy_type,
        ip=node.ip,
        pod_name=node.pod_name,
        namespace=node.namespace,
        labels=freeze_labels({str(k): str(v) for k, v in labels.items()})
        if isinstance(labels, Mapping)
        else (),
        domain_suffix=mesh.domain_suffix,
        ipv6=":" in node.ip,
        known=False,
    )


class PodNotFound(LookupError):
    """The named pod is not in the manifests (message lists what is)."""


def find_workload(mesh: Mesh, pod: str, namespace: str) -> Workload:
    """A pod by name, or `deploy/<name>` for the first pod of that Deployment."""
    if pod.startswith("deploy/"):
        name = pod.removeprefix("deploy/")
        found = [w for w in mesh.workloads if w.deployment == name and w.namespace == namespace]
    else:
        found = [w for w in mesh.workloads if w.name == pod and w.namespace == namespace]
    if not found or found[0].proxy_type is None:
        candidates = ", ".join(w.proxy_id for w in mesh.proxies()) or "none"
        reason = "runs no proxy" if found else "not found"
        raise PodNotFound(
            f"pod {pod}.{namespace} {reason} in the manifests (pods with proxies: {candidates})"
        )
    return found[0]


def offline_resources(mesh: Mesh, pod: str, namespace: str) -> ProxyResources:
    return generate(mesh, proxy_for_workload(mesh, find_workload(mesh, pod, namespace)))


def offline_dumps(mesh: Mesh, pod: str, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config_dump, clusters) JSON for one pod, as its Envoy's admin API would show them."""
    resources = offline_resources(mesh, pod, namespace)
    return config_dump(resources, mesh.version), clusters_status(resources)
