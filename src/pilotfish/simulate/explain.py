"""From matched Envoy config back to the Istio objects (and `file:line`) that produced it, and what to
change when a request fails.

Envoy routes carry `metadata.filter_metadata.istio.config` = the VirtualService's path (as Istio
sets it); the rule inside it is found again by rebuilding each rule's Envoy match and comparing.
Failure explanations read the mesh the way the generators do (which DestinationRule applies, which
pods a Service or subset selects), so they name the object to edit rather than the symptom.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pilotfish.config import istio
from pilotfish.config.objects import ConfigObject
from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import destination_rule, labels_match, scope_for
from pilotfish.model.service import Resolution, Service
from pilotfish.xds.httproute import set_route_match
from pilotfish.xds.protos import route_components_pb2


def describe(obj: ConfigObject) -> str:
    """`VirtualService default/reviews (samples/x.yaml:3)`."""
    return f"{obj.kind} {obj.namespace}/{obj.name} ({obj.origin})"


def object_at(mesh: Mesh, config_path: str) -> ConfigObject | None:
    """The object whose Istio config path (`/apis/.../virtual-service/reviews`) is `config_path`."""
    for obj in (*mesh.virtual_services, *mesh.destination_rules):
        if obj.config_path() == config_path:
            return obj
    return None


def config_path_of(message: Any) -> str:
    """`metadata.filter_metadata.istio.config` of a route or cluster ("" when absent)."""
    if not message.HasField("metadata"):
        return ""
    fields = message.metadata.filter_metadata
    if "istio" not in fields or "config" not in fields["istio"]:
        return ""
    return str(fields["istio"]["config"])


@dataclass(frozen=True, slots=True)
class RuleRef:
    """One VirtualService HTTP rule (and match) a route came from."""

    vs: ConfigObject
    rule: int
    match: int | None

    @property
    def path(self) -> tuple[str | int, ...]:
        base: tuple[str | int, ...] = ("spec", "http", self.rule)
        return base if self.match is None else (*base, "match", self.match)

    def text(self) -> str:
        where = f"http[{self.rule}]" + ("" if self.match is None else f".match[{self.match}]")
        return f"VirtualService {self.vs.namespace}/{self.vs.name} {where} ({self.vs.origin_of(self.path)})"

    def destination_text(self, cluster: str, domain_suffix: str) -> str:
        """`the destination of VirtualService default/reviews http[0] (x.yaml:10)`."""
        where = self.destination_origin(cluster, domain_suffix)
        vs = f"{self.vs.namespace}/{self.vs.name}"
        return f"the destination of VirtualService {vs} http[{self.rule}] ({where})"

    def destination_origin(self, cluster: str, domain_suffix: str) -> str:
        """`file:line` of the destination in this rule that names `cluster`."""
        key = names.ClusterKey.parse(cluster)
        rule: istio.HTTPRoute = self.vs.spec.http[self.rule]
        for index, dest in enumerate(rule.route):
            host = names.resolve_short_host(dest.destination.host, self.vs.namespace, domain_suffix)
            if key is not None and key.hostname == host and dest.destination.subset == key.subset:
                return str(self.vs.origin_of(("spec", "http", self.rule, "route", index, "destination")))
        return str(self.vs.origin_of(("spec", "http", self.rule)))


def rule_of(mesh: Mesh, route: Any) -> RuleRef | None:
    """The VirtualService rule that produced an Envoy route (None for generated default routes)."""
    vs = object_at(mesh, config_path_of(route))
    if vs is None or vs.kind != "VirtualService":
        return None
    spec: istio.VirtualServiceSpec = vs.spec
    for i, rule in enumerate(spec.http):
        for j, match in enumerate(rule.match or [None]):
            expected = route_components_pb2.RouteMatch()
            set_route_match(expected, match)
            name = rule.name + (f".{match.name}" if match is not None and match.name else "")
            if expected == route.match and name == str(route.name):
                return RuleRef(vs, i, None if match is None else j)
    return None


def cluster_origin(mesh: Mesh, cluster: Any) -> str:
    """The DestinationRule a cluster's settings came from (`istio.config` metadata), if any."""
    obj = object_at(mesh, config_path_of(cluster))
    return describe(obj) if obj is not None else ""


# --- what to change --------------------------------------------------------------------------------


def _pods_text(pods: list[str]) -> str:
    return ", ".join(pods) if pods else "none"


def _labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(none)"


def missing_cluster_fix(mesh: Mesh, proxy: Proxy, cluster: str, route: RuleRef | None) -> str:
    """Why cluster `cluster` does not exist on this proxy, and what would make it exist."""
    source = (
        route.destination_text(cluster, mesh.domain_suffix)
        if route is not None
        else "the route's destination"
    )
    key = names.ClusterKey.parse(cluster)
    if key is None:
        return f"cluster {cluster} is not generated for this proxy; change {source}"
    service = mesh.service(key.hostname)
    if service is None:
        return (
            f"host {key.hostname} is no Service or ServiceEntry of the mesh: fix {source}, "
            f"or add a ServiceEntry for {key.hostname}"
        )
    if service.port(key.port) is None:
        ports = ", ".join(str(p.port) for p in service.ports)
        return f"service {key.hostname} has no port {key.port} (it has {ports}): fix the port in {source}"
    if service not in scope_for(mesh, proxy).services:
        return (
            f"service {key.hostname} is not visible to {proxy.proxy_id} (exportTo or a Sidecar's egress "
            f"hosts): export it to namespace {proxy.namespace} or import it in the Sidecar"
        )
    if not key.subset:
        return f"cluster {cluster} is missing although {key.hostname} is visible (a pilotfish bug?)"
    rule = destination_rule(mesh, proxy, service)
    if rule is None:
        return (
            f"no DestinationRule applies to {key.hostname}, so subset {key.subset} has no cluster: "
            f"add a DestinationRule for host {service.name} with subset {key.subset}, or change {source}"
        )
    spec: istio.DestinationRuleSpec = rule.spec
    known = ", ".join(s.name for s in spec.subsets) or "none"
    return (
        f"{describe(rule)} has no subset {key.subset} (it has: {known}): add subset {key.subset} "
        f"to DestinationRule {rule.namespace}/{rule.name}, or change {source}"
    )


def no_endpoints_fix(mesh: Mesh, proxy: Proxy, cluster: str) -> str:
    """Why a cluster has no (healthy) endpoint, naming the selector or subset that selects nothing."""
    key = names.ClusterKey.parse(cluster)
    if key is None:
        return f"cluster {cluster} has no endpoints"
    service = mesh.service(key.hostname)
    if service is None:
        return f"cluster {cluster} has no endpoints and {key.hostname} is not in the registry"
    if service.from_service_entry:
        if service.resolution is Resolution.CLIENT_SIDE_LB:
            return f"ServiceEntry {key.hostname} (resolution STATIC) lists no endpoints: add endpoints to it"
        return f"ServiceEntry {key.hostname} gives no address to connect to"
    pods = _selected(mesh, service)
    if not pods:
        selector = _labels_text(service.selector or {})
        return (
            f"no pod in namespace {service.namespace} matches the selector of Service "
            f"{service.namespace}/{service.name} ({selector}): fix the selector or the pod labels"
        )
    if key.subset:
        rule = destination_rule(mesh, proxy, service)
        subset_labels = _subset_labels(rule, key.subset)
        if rule is not None and subset_labels is not None:
            matching = [w.proxy_id for w in pods if labels_match(subset_labels, w.labels)]
            if not matching:
                have = "; ".join(f"{w.name}: {_labels_text(w.labels)}" for w in pods)
                return (
                    f"no pod of Service {service.namespace}/{service.name} has the labels of subset "
                    f"{key.subset} ({_labels_text(subset_labels)}) in {describe(rule)}; the pods have "
                    f"{have}: fix the subset's labels or deploy pods with them"
                )
    ready = [e for e in mesh.endpoints_of(service.hostname, key.port) if e.ready]
    if not ready:
        return (
            f"the pods of Service {service.namespace}/{service.name} ({_pods_text([w.name for w in pods])}) "
            f"are not ready or serve no port for service port {key.port}"
        )
    return f"cluster {cluster} has no healthy endpoint"


def _selected(mesh: Mesh, service: Service) -> list[Any]:
    if not service.selector:
        return []
    return [
        w
        for w in mesh.workloads
        if w.namespace == service.namespace and labels_match(service.selector, w.labels)
    ]


def _subset_labels(rule: ConfigObject | None, subset: str) -> Mapping[str, str] | None:
    if rule is None:
        return None
    spec: istio.DestinationRuleSpec = rule.spec
    return next((s.labels for s in spec.subsets if s.name == subset), None)


def blackhole_fix(mesh: Mesh, proxy: Proxy, host: str, port: int) -> str:
    """Traffic sent to BlackHoleCluster on purpose: REGISTRY_ONLY, or the pod calling its own IP."""
    if scope_for(mesh, proxy).registry_only:
        return registry_only_fix(mesh, proxy, host, port)
    return (
        f"{host}:{port} is dropped on purpose (BlackHoleCluster): e.g. a pod calling its own IP through "
        "the outbound listener; call the Service name instead"
    )


def registry_only_fix(mesh: Mesh, proxy: Proxy, host: str, port: int) -> str:
    """REGISTRY_ONLY blocked a host: where the policy is set and the ServiceEntry that would allow it."""
    scope = scope_for(mesh, proxy)
    sidecar = scope.sidecar
    if sidecar is not None and sidecar.spec.outbound_traffic_policy is not None:
        where = f"the outboundTrafficPolicy of {describe(sidecar)}"
    else:
        where = "the mesh's outboundTrafficPolicy"
    return (
        f"{where} is REGISTRY_ONLY and {host} is not in the service registry: add a ServiceEntry "
        f"for {host} with port {port} (or set the policy to ALLOW_ANY)"
    )


def no_virtual_host_fix(route_config: str, host: str, gateway: bool) -> str:
    name, colon, port = host.rpartition(":")
    host = name if colon and port.isdigit() and not host.endswith("]") else host
    if gateway:
        return (
            f"no VirtualService bound to this gateway (route {route_config}) has a host matching {host}: "
            f"add {host} to the hosts of the Gateway server and of a VirtualService bound to it"
        )
    return (
        f"route {route_config} has no virtual host for {host}: add a Service or ServiceEntry for it "
        f"(or a VirtualService with that host)"
    )


def no_route_fix(vhost: str, method: str, path: str, rules: list[RuleRef]) -> str:
    origins = "; ".join(
        dict.fromkeys(f"VirtualService {r.vs.namespace}/{r.vs.name} ({r.vs.origin})" for r in rules)
    )
    where = f" - its routes come from {origins}" if origins else ""
    return f"no route of virtual host {vhost} matches {method} {path}{where}: add a match for it"


def gateway_listener_fix(gateway_labels: Mapping[str, str], port: int) -> str:
    return (
        f"no Gateway server on port {port} selects this gateway (labels {_labels_text(gateway_labels)}): "
        f"add a server for port {port} to a Gateway whose selector matches"
    )
