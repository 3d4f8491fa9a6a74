"""EDS: ClusterLoadAssignments (istio-reference.md §6), and the pod's inbound targets.

A ClusterLoadAssignment depends only on its cluster name and the subset's labels, so it is built
once per mesh snapshot and shared by every proxy that has the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pilotfish.config import istio
from pilotfish.config.objects import ConfigObject
from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import destination_rule, labels_match, scope_for
from pilotfish.model.service import Endpoint, Resolution, Service, ServicePort
from pilotfish.xds.protos import (
    base_pb2,
    endpoint_components_pb2,
    endpoint_pb2,
    socket_address,
)
from pilotfish.xds.resources import Resource


def subset_labels(rule: ConfigObject | None, subset: str) -> Mapping[str, str] | None:
    """The labels of a DestinationRule subset; None when the rule has no such subset."""
    if rule is None:
        return None
    spec: istio.DestinationRuleSpec = rule.spec
    return next((s.labels for s in spec.subsets if s.name == subset), None)


def endpoint_resources(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    """A ClusterLoadAssignment for every EDS cluster the proxy has (default and subsets)."""
    result = []
    for service in scope_for(mesh, proxy).services:
        if service.resolution is not Resolution.CLIENT_SIDE_LB:
            continue
        rule = destination_rule(mesh, proxy, service)
        subsets = [("", None)] + [(s.name, s.labels) for s in (rule.spec.subsets if rule is not None else [])]
        for port in service.ports:
            if port.protocol.value == "UDP":
                continue
            for subset, labels in subsets:
                result.append(_shared_cla(mesh, service, port, subset, labels))
    return result


def _shared_cla(
    mesh: Mesh, service: Service, port: ServicePort, subset: str, labels: Mapping[str, str] | None
) -> Resource:
    name = names.ClusterKey.outbound(port.port, service.hostname, subset).name
    key = ("eds", name, tuple(sorted(labels.items())) if labels else None)
    resource = mesh.memo.get(key)
    if resource is None:
        endpoints = _select(mesh.endpoints_of(service.hostname, port.port), labels)
        resource = mesh.memo[key] = Resource(name, load_assignment(name, endpoints))
    assert isinstance(resource, Resource)
    return resource


def _select(endpoints: tuple[Endpoint, ...], labels: Mapping[str, str] | None) -> list[Endpoint]:
    """Ready endpoints whose labels include the subset's labels (1.3 sends only ready addresses)."""
    return [e for e in endpoints if e.ready and (labels is None or labels_match(labels, e.labels))]


def load_assignment(cluster_name: str, endpoints: list[Endpoint]) -> endpoint_pb2.ClusterLoadAssignment:
    """One locality group holding every endpoint, weight 1 each (1.3 shape)."""
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    if not endpoints:
        return cla
    group = cla.endpoints.add()
    for ep in endpoints:
        lb = group.lb_endpoints.add()
        lb.endpoint.address.CopyFrom(socket_address(ep.address, ep.port))
        lb.load_balancing_weight.value = ep.weight
        if ep.workload:
            metadata = base_pb2.Metadata()
            metadata.filter_metadata["istio"].update({"uid": f"kubernetes://{ep.workload}"})
            lb.metadata.CopyFrom(metadata)
    group.load_balancing_weight.value = sum(ep.weight for ep in endpoints)
    return cla


def static_load_assignment(cluster_name: str, address: str, port: int) -> endpoint_pb2.ClusterLoadAssignment:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    lb = endpoint_components_pb2.LbEndpoint()
    lb.endpoint.address.CopyFrom(socket_address(address, port))
    cla.endpoints.add().lb_endpoints.append(lb)
    return cla


def dns_load_assignment(
    mesh: Mesh, service: Service, port: ServicePort, subset: str, rule: ConfigObject | None
) -> endpoint_pb2.ClusterLoadAssignment:
    """STRICT_DNS clusters carry their (hostname) endpoints inline."""
    name = names.ClusterKey.outbound(port.port, service.hostname, subset).name
    labels = subset_labels(rule, subset) if subset else None
    return load_assignment(name, _select(mesh.endpoints_of(service.hostname, port.port), labels))


# --- inbound ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundTarget:
    """A service port this pod serves, and the pod port it arrives on."""

    service: Service
    port: ServicePort
    target_port: int


def inbound_targets(mesh: Mesh, proxy: Proxy) -> list[InboundTarget]:
    """Every (service, port) with an endpoint on this pod, by target port then service."""
    index = mesh.memo.get("inbound-index")
    if index is None:
        index = mesh.memo["inbound-index"] = _inbound_index(mesh)
    targets: list[InboundTarget] = index.get(proxy.proxy_id, [])
    return targets


def _inbound_index(mesh: Mesh) -> dict[str, list[InboundTarget]]:
    index: dict[str, list[InboundTarget]] = {}
    for service in mesh.services:
        for port in service.ports:
            for ep in mesh.endpoints_of(service.hostname, port.port):
                if ep.workload:
                    index.setdefault(ep.workload, []).append(InboundTarget(service, port, ep.port))
    for targets in index.values():
        targets.sort(key=lambda t: (t.target_port, t.service.hostname))
    return index
