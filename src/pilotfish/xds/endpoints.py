"""EDS: ClusterLoadAssignments (istio-reference.md §6), and the pod's inbound targets.

A ClusterLoadAssignment depends only on its cluster name and the subset's labels, so it is built
once per mesh snapshot and shared by every proxy that has the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from pilotfish.config import istio
from pilotfish.config.objects import ConfigObject
from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.protocol import Protocol
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import destination_rule, labels_match, scope_for, shape_key
from pilotfish.model.service import Endpoint, Resolution, Service, ServicePort
from pilotfish.xds import wire
from pilotfish.xds.protos import (
    endpoint_components_pb2,
    endpoint_pb2,
    socket_address,
    u32,
)
from pilotfish.xds.resources import Resource


def subset_labels(rule: ConfigObject | None, subset: str) -> Mapping[str, str] | None:
    """The labels of a DestinationRule subset; None when the rule has no such subset."""
    if rule is None:
        return None
    spec: istio.DestinationRuleSpec = rule.spec
    return next((s.labels for s in spec.subsets if s.name == subset), None)


def endpoint_resources(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    """A ClusterLoadAssignment for every EDS cluster the proxy has (default and subsets); the list
    is shared by every proxy of the same shape (do not mutate it)."""
    key = ("eds-list", *shape_key(mesh, proxy))
    return mesh.cached(key, lambda: _endpoint_resources(mesh, proxy))


def _endpoint_resources(mesh: Mesh, proxy: Proxy) -> list[Resource]:
    result = []
    for service in scope_for(mesh, proxy).services:
        if service.resolution is not Resolution.CLIENT_SIDE_LB:
            continue
        rule = destination_rule(mesh, proxy, service)
        subsets = [("", None)] + [(s.name, s.labels) for s in (rule.spec.subsets if rule is not None else [])]
        for port in service.ports:
            if port.protocol is Protocol.UDP:
                continue
            for subset, labels in subsets:
                result.append(_shared_cla(mesh, service, port, subset, labels))
    return result


def _shared_cla(
    mesh: Mesh, service: Service, port: ServicePort, subset: str, labels: Mapping[str, str] | None
) -> Resource:
    name = names.outbound_cluster_name(port.port, service.hostname, subset)
    key = ("eds", service.hostname, port.port, subset, tuple(sorted(labels.items())) if labels else None)
    resource = mesh.memo.get(key)
    if resource is None:
        endpoints = _select(mesh.endpoints_of(service.hostname, port.port), labels)
        encoded = load_assignment_bytes(name, endpoints)
        resource = mesh.memo[key] = Resource.encoded(name, endpoint_pb2.ClusterLoadAssignment, encoded)
    return resource


def _select(endpoints: tuple[Endpoint, ...], labels: Mapping[str, str] | None) -> list[Endpoint]:
    """Ready endpoints whose labels include the subset's labels (1.3 sends only ready addresses)."""
    if labels is None:
        return [e for e in endpoints if e.ready]
    return [e for e in endpoints if e.ready and labels_match(labels, e.labels)]


def load_assignment(cluster_name: str, endpoints: list[Endpoint]) -> endpoint_pb2.ClusterLoadAssignment:
    """One locality group holding every endpoint, weight 1 each (1.3 shape)."""
    return endpoint_pb2.ClusterLoadAssignment.FromString(load_assignment_bytes(cluster_name, endpoints))


_CLA = endpoint_pb2.ClusterLoadAssignment
_GROUP = endpoint_components_pb2.LocalityLbEndpoints


def load_assignment_bytes(cluster_name: str, endpoints: list[Endpoint]) -> bytes:
    """`load_assignment`'s canonical encoding, built as bytes (`xds.wire`): a big mesh has a load
    assignment per service port and subset, and building each as a message costs ten times more."""
    if len(endpoints) == 1 and endpoints[0].workload:  # the usual one-pod service: one template
        ep = endpoints[0]
        return _ONE_POD.render(cluster_name, ep.address, ep.port, f"kubernetes://{ep.workload}", ep.weight)
    name = wire.field(_CLA.CLUSTER_NAME_FIELD_NUMBER, cluster_name.encode())
    if not endpoints:
        return name
    group = [wire.field(_GROUP.LB_ENDPOINTS_FIELD_NUMBER, _lb_endpoint(ep)) for ep in endpoints]
    group.append(_GROUP_WEIGHT.render(sum(ep.weight for ep in endpoints)))
    return name + wire.field(_CLA.ENDPOINTS_FIELD_NUMBER, b"".join(group))


def _lb_endpoint(ep: Endpoint) -> bytes:
    if ep.workload:
        return _POD_ENDPOINT.render(ep.address, ep.port, f"kubernetes://{ep.workload}", ep.weight)
    return _PLAIN_ENDPOINT.render(ep.address, ep.port, ep.weight)


def lb_endpoint_message(
    address: str, port: int, uid: str | None, weight: int
) -> endpoint_components_pb2.LbEndpoint:
    """One endpoint as the message (the templates below are this with holes): a pod's carries its
    `istio` metadata uid (`kubernetes://<pod>.<namespace>`)."""
    lb = endpoint_components_pb2.LbEndpoint()
    if uid is not None:
        lb.metadata.filter_metadata["istio"].fields["uid"].string_value = uid
    address_ = lb.endpoint.address.socket_address
    address_.address = address
    address_.port_value = port
    lb.load_balancing_weight.value = weight
    return lb


_POD_ENDPOINT = wire.Template(
    lb_endpoint_message(wire.hole(0), wire.int_hole(1), wire.hole(2), wire.int_hole(3))
)
_PLAIN_ENDPOINT = wire.Template(lb_endpoint_message(wire.hole(0), wire.int_hole(1), None, wire.int_hole(2)))
_GROUP_WEIGHT = wire.Template(_GROUP(load_balancing_weight=u32(wire.int_hole(0))))
"""Encodings of an endpoint (and of a group's weight, which follows its endpoints) with holes."""
_ONE_POD = wire.Template(
    _CLA(
        cluster_name=wire.hole(0),
        endpoints=[
            _GROUP(
                lb_endpoints=[
                    lb_endpoint_message(wire.hole(1), wire.int_hole(2), wire.hole(3), wire.int_hole(4))
                ],
                load_balancing_weight=u32(wire.int_hole(4)),
            )
        ],
    )
)
"""A load assignment of one pod: name, then the pod's address, port, uid and weight."""


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
    name = names.outbound_cluster_name(port.port, service.hostname, subset)
    labels = subset_labels(rule, subset) if subset else None
    return load_assignment(name, _select(mesh.endpoints_of(service.hostname, port.port), labels))


# --- inbound ----------------------------------------------------------------------------------------


class InboundTarget(NamedTuple):
    """A service port this pod serves, and the pod port it arrives on (a tuple: the index holds
    one per endpoint of the mesh)."""

    service: Service
    port: ServicePort
    target_port: int


def inbound_targets(mesh: Mesh, proxy: Proxy) -> list[InboundTarget]:
    """Every (service, port) with an endpoint on this pod, by target port then service."""
    index = mesh.cached("inbound-index", lambda: _inbound_index(mesh))
    return index.get(proxy.proxy_id, [])


def _inbound_index(mesh: Mesh) -> dict[str, list[InboundTarget]]:
    index: dict[str, list[InboundTarget]] = {}
    for service in mesh.services:
        for port in service.ports:
            for ep in mesh.endpoints.get((service.hostname, port.port), ()):
                if ep.workload:
                    target = InboundTarget(service, port, ep.port)
                    targets = index.get(ep.workload)
                    if targets is None:
                        index[ep.workload] = [target]
                    else:
                        targets.append(target)
    for targets in index.values():
        if len(targets) > 1:
            targets.sort(key=lambda t: (t.target_port, t.service.hostname))
    return index
