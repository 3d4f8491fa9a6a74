"""`xds.wire`: resources built as bytes are the canonical encoding of the message they stand for.

Generation builds the bulk of a mesh's clusters, load assignments and route configurations as bytes
(templates with holes, fields concatenated). A resource's version is the hash of those bytes, so
they must be exactly what `SerializeToString(deterministic=True)` gives for the same message: then
versions do not depend on how a resource was built, and proxies are not pushed what did not change.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.protobuf.message import Message

from pilotfish.model.mesh import Mesh
from pilotfish.model.service import Endpoint
from pilotfish.pipeline import generate, mesh_from_texts, proxy_for_workload
from pilotfish.sources.manifests import read_manifests
from pilotfish.xds import clusters, endpoints, wire
from pilotfish.xds.httproute import RouteContext, default_route
from pilotfish.xds.protos import (
    cluster_pb2,
    endpoint_components_pb2,
    endpoint_pb2,
    route_components_pb2,
    route_pb2,
    u32,
)
from pilotfish.xds.resources import Resource
from tests.paths import CONFORMANCE, SAMPLES

NETWORKING = CONFORMANCE / "istio-samples/bookinfo/networking"
MODERN = (
    "apiVersion: pilotfish.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {profile: modern}\n"
)
EXTRAS = """apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: dns, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 8080, name: grpc, protocol: GRPC}]
  resolution: DNS
  endpoints: [{address: api.example.com}]
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: static, namespace: default}
spec:
  hosts: [db.example.com]
  addresses: [10.9.0.1]
  ports: [{number: 9000, name: http2-db, protocol: HTTP2}]
  resolution: STATIC
  endpoints: [{address: 10.9.0.2, weight: 3}, {address: 10.9.0.3, ports: {http2-db: 9443}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: hash, namespace: default}
spec:
  host: details
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
"""


def _mesh(*extra: tuple[str, str], rules: str = "destination-rule-all.yaml") -> Mesh:
    texts, problems = read_manifests([SAMPLES / "bookinfo", NETWORKING / rules])
    assert not problems
    mesh, diagnostics = mesh_from_texts([*texts, *extra])
    assert mesh is not None, "\n".join(map(str, diagnostics))
    return mesh


MESHES = {
    "bookinfo": lambda: _mesh(),
    "modern": lambda: _mesh(("mesh.yaml", MODERN)),
    "extras": lambda: _mesh(("extras.yaml", EXTRAS), rules="virtual-service-reviews-jason-v2-v3.yaml"),
}


def _resources(mesh: Mesh) -> Iterator[Resource]:
    for workload in mesh.proxies():
        for resource_set in generate(mesh, proxy_for_workload(mesh, workload)):
            yield from resource_set


def _canonical(message_type: type[Message], data: bytes) -> bytes:
    return bytes(message_type.FromString(data).SerializeToString(deterministic=True))


@pytest.mark.parametrize("case", sorted(MESHES))
def test_every_generated_resource_is_canonically_encoded(case: str) -> None:
    mesh = MESHES[case]()
    checked = 0
    for resource in _resources(mesh):
        assert resource.value == _canonical(type(resource.message), resource.value), resource
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("case", sorted(MESHES))
def test_outbound_clusters_from_the_template_equal_the_built_ones(case: str) -> None:
    mesh = MESHES[case]()
    seen = 0
    for service in mesh.services:
        for port in service.ports:
            built = clusters.build_outbound_cluster(mesh, service, port, "", None)
            if built.type == cluster_pb2.Cluster.EDS:
                template = clusters._plain_eds_template(mesh, port)
                assert template.render(built.name) == built.SerializeToString(deterministic=True)
                seen += 1
    assert seen >= 4


def test_default_virtual_hosts_from_the_template_equal_the_built_ones() -> None:
    mesh = MESHES["extras"]()
    workload = next(w for w in mesh.proxies() if w.name.startswith("productpage"))
    proxy = proxy_for_workload(mesh, workload)
    from pilotfish.xds.routes import _DEFAULT_VHOSTS

    for modern in (False, True):
        ctx = RouteContext(mesh, proxy, frozenset({"mesh"}), 9080)
        object.__setattr__(ctx, "modern", modern)
        route = default_route(ctx, "ratings.default.svc.cluster.local", 9080)
        vhost = route_components_pb2.VirtualHost(name="ratings:9080", domains=["a", "b:9080"], routes=[route])
        rendered = _DEFAULT_VHOSTS[modern].render(
            "ratings:9080",
            ["a", "b:9080"],
            route.route.cluster,
            route.decorator.operation,
        )
        assert rendered == route_pb2.RouteConfiguration(virtual_hosts=[vhost]).SerializeToString(
            deterministic=True
        )


@pytest.mark.parametrize(
    "endpoint_list",
    [
        [],
        [Endpoint("10.0.0.1", 8080, "http", workload="a.default")],
        [Endpoint("10.0.0.1", 0, "http", weight=0)],
        [Endpoint("1.2.3.4", 80, "http"), Endpoint("h.example", 65535, "x", workload="p.ns", weight=300)],
        [Endpoint("10.0.0.9", 9080, "http", workload="ümlaut-" + "x" * 200)],
    ],
)
def test_load_assignment_bytes_equal_the_message(endpoint_list: list[Endpoint]) -> None:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name="outbound|80||x")
    if endpoint_list:
        group = cla.endpoints.add()
        for ep in endpoint_list:
            uid = f"kubernetes://{ep.workload}" if ep.workload else None
            group.lb_endpoints.append(endpoints.lb_endpoint_message(ep.address, ep.port, uid, ep.weight))
        group.load_balancing_weight.value = sum(ep.weight for ep in endpoint_list)
    encoded = endpoints.load_assignment_bytes("outbound|80||x", endpoint_list)
    assert encoded == cla.SerializeToString(deterministic=True)


# --- the template mechanics ----------------------------------------------------------------------------


def test_template_fills_strings_integers_and_repeated_fields_at_any_depth() -> None:
    lb = endpoints.lb_endpoint_message(wire.hole(0), wire.int_hole(1), wire.hole(2), wire.int_hole(3))
    template = wire.Template(lb)
    assert template.holes == 4
    for address, port, uid, weight in [("10.1.2.3", 9080, "kubernetes://p.ns", 1), ("", 0, "", 0)]:
        expected = endpoints.lb_endpoint_message(address, port, uid, weight)
        assert template.render(address, port, uid, weight) == expected.SerializeToString(deterministic=True)
    vhost = wire.Template(route_components_pb2.VirtualHost(name=wire.hole(0), domains=[wire.hole(1)]))
    for domains in ([], ["a"], ["", "x" * 300, "ü.example"]):
        expected_vhost = route_components_pb2.VirtualHost(name="v", domains=domains)
        assert vhost.render("v", domains) == expected_vhost.SerializeToString(deterministic=True)


def test_one_marker_may_fill_several_fields() -> None:
    cluster = cluster_pb2.Cluster(name=wire.hole(0), type=cluster_pb2.Cluster.EDS)
    cluster.eds_cluster_config.service_name = wire.hole(0)
    expected = cluster_pb2.Cluster(name="c", type=cluster_pb2.Cluster.EDS)
    expected.eds_cluster_config.service_name = "c"
    assert wire.Template(cluster).render("c") == expected.SerializeToString(deterministic=True)


def test_template_rejects_a_marker_that_is_part_of_a_value_or_a_gap_in_the_holes() -> None:
    with pytest.raises(ValueError, match="whole value"):
        wire.Template(route_pb2.RouteConfiguration(name="x" + wire.hole(0)))
    with pytest.raises(ValueError, match=r"not 0\.\.n-1"):
        wire.Template(route_pb2.RouteConfiguration(name=wire.hole(1)))


def test_around_splits_where_a_field_goes() -> None:
    config = route_pb2.RouteConfiguration(name="r")
    config.validate_clusters.value = False
    head, tail = wire.around(config, route_pb2.RouteConfiguration.VIRTUAL_HOSTS_FIELD_NUMBER)
    vhost = route_components_pb2.VirtualHost(name="v", domains=["*"])
    middle = wire.field(2, vhost.SerializeToString())
    config.virtual_hosts.append(vhost)
    assert head + middle + tail == config.SerializeToString(deterministic=True)
    with pytest.raises(ValueError, match="is set"):
        wire.around(config, route_pb2.RouteConfiguration.VIRTUAL_HOSTS_FIELD_NUMBER)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16383, 16384, 2**32 - 1, 2**63])
def test_varint_matches_protobuf(value: int) -> None:
    wrapper = endpoint_components_pb2.LbEndpoint(load_balancing_weight=u32(value)) if value < 2**32 else None
    if wrapper is not None and value:
        assert wrapper.load_balancing_weight.SerializeToString() == b"\x08" + wire.varint(value)
    decoded, end = wire._read_varint(wire.varint(value), 0)
    assert (decoded, end) == (value, len(wire.varint(value)))


def test_resource_built_from_bytes_parses_its_message_on_demand() -> None:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name="c")
    resource = Resource.encoded("c", endpoint_pb2.ClusterLoadAssignment, cla.SerializeToString())
    eager = Resource("c", cla)
    assert resource.version == eager.version
    assert resource.any == eager.any
    assert resource.message == cla


def test_response_bodies_equal_the_response_messages() -> None:
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import discovery_pb2

    from pilotfish.server.ads import AdsServer
    from pilotfish.xds.resources import TypeUrl

    class _Plain(AdsServer):
        def __init__(self) -> None:
            self.control_plane = base_pb2.ControlPlane(identifier="pilotfish")

    server = _Plain()
    resources = [
        Resource.encoded("a", endpoint_pb2.ClusterLoadAssignment, b"\n\x01a"),
        Resource("b", endpoint_pb2.ClusterLoadAssignment(cluster_name="b" * 200)),
    ]
    sotw = discovery_pb2.DiscoveryResponse(
        type_url=TypeUrl.ENDPOINT.value,
        resources=[r.any for r in resources],
        control_plane=server.control_plane,
    )
    assert server.sotw_body(TypeUrl.ENDPOINT, resources) == sotw.SerializeToString(deterministic=True)
    versioned = [(r, f"{r.version}.1") for r in resources]
    delta = discovery_pb2.DeltaDiscoveryResponse(
        type_url=TypeUrl.ENDPOINT.value,
        resources=[discovery_pb2.Resource(name=r.name, version=v, resource=r.any) for r, v in versioned],
        removed_resources=["gone"],
        control_plane=server.control_plane,
    )
    body = server.delta_body(TypeUrl.ENDPOINT, versioned, ["gone"])
    assert body == delta.SerializeToString(deterministic=True)
