"""Hosts and pods as the analyzers look them up, read leniently from every input object.

The model's registry (`model.build`) only holds objects that passed strict validation; an analyzer
must still know that `reviews` exists when its Service uses a field pilotfish does not implement, or
every VirtualService routing to it would be reported too. So this module reads Services,
ServiceEntries, Pods, pod templates (Deployments and friends) and Nodes from the raw documents,
tolerating anything malformed, and answers Istio's lookups: "which host does this destination name,
as seen from this namespace" (`destination_host`, Istio's `GetDestinationHost` semantics, exportTo
included) and "which pods does this selector pick".

Naming and visibility rules are the model's (`names.resolve_short_host`, `scope.visible`,
`hosts.covers`, `allocate.pod_name`), so the analyzers agree with what the control plane serves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pilotfish.analyze.resource import (
    APPS,
    CORE,
    ISTIO,
    Resource,
    items,
    labels,
    mapping,
    strings,
    text,
)
from pilotfish.model import allocate, hosts
from pilotfish.model.names import resolve_short_host, service_fqdn
from pilotfish.model.scope import labels_match, visible

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
_POD_TEMPLATE_KINDS = ((APPS, "Deployment"), (APPS, "StatefulSet"), (APPS, "DaemonSet"), (APPS, "ReplicaSet"))


@dataclass(frozen=True, slots=True)
class Port:
    number: int
    name: str
    protocol: str
    """Kubernetes' protocol (TCP, UDP, SCTP) for Services; Istio's protocol name for ServiceEntries."""
    target_port: int | str | None = None
    app_protocol: str = ""


@dataclass(frozen=True, slots=True)
class Host:
    """A hostname destinations can name: a Kubernetes Service, or one host of a ServiceEntry."""

    hostname: str
    namespace: str
    export_to: frozenset[str]
    ports: tuple[Port, ...]
    resource: Resource
    selector: Mapping[str, str] | None = None
    """The Service's pod selector, or the ServiceEntry's workloadSelector (None when there is none)."""
    endpoint_labels: tuple[Mapping[str, str], ...] = ()
    """Labels of a ServiceEntry's inline endpoints."""

    @property
    def from_service_entry(self) -> bool:
        return self.resource.kind == "ServiceEntry"

    @property
    def exported_to_all(self) -> bool:
        return not self.export_to or "*" in self.export_to

    def visible_to(self, namespace: str) -> bool:
        return visible(self.export_to, self.namespace, namespace)

    def port(self, number: int) -> Port | None:
        return next((p for p in self.ports if p.number == number), None)


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod as written, or the first replica of a pod template (Deployment, StatefulSet...)."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    node_name: str
    resource: Resource


@dataclass(frozen=True, slots=True)
class Inventory:
    hosts: tuple[Host, ...]
    pods: tuple[Pod, ...]
    node_labels: Mapping[str, Mapping[str, str]]
    domain_suffix: str
    _by_hostname: dict[str, list[Host]] = field(default_factory=dict, repr=False)
    _by_namespace: dict[str, list[Pod]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for host in self.hosts:
            self._by_hostname.setdefault(host.hostname, []).append(host)
        for pod in self.pods:
            self._by_namespace.setdefault(pod.namespace, []).append(pod)

    def fqdn(self, host: str, namespace: str) -> str:
        return resolve_short_host(host, namespace, self.domain_suffix)

    def destination_host(self, host: str, namespace: str, export_to: Sequence[str] = ()) -> Host | None:
        """The host a destination in `namespace` names, if some Service or ServiceEntry defines it
        visibly. A config object with `exportTo` must find it from every namespace it is exported to
        (any one of them suffices, as in Istio); wildcard ServiceEntry hosts cover matching names."""
        fqdn = self.fqdn(host, namespace)
        viewers = [namespace if e == "." else e for e in export_to] or [namespace]
        exact = self._by_hostname.get(fqdn, [])
        found = next((h for h in exact if h.exported_to_all), None) or next(
            (h for h in exact if any(v != "*" and h.visible_to(v) for v in viewers)), None
        )
        if found is not None:
            return found
        return next(
            (
                h
                for h in self.hosts
                if hosts.is_wildcard(h.hostname)
                and (h.exported_to_all or h.visible_to(namespace))
                and hosts.covers(h.hostname, fqdn)
            ),
            None,
        )

    def covered_hosts(self, pattern: str, namespace: str) -> list[Host]:
        """Hosts visible from `namespace` that a (possibly wildcard) host pattern includes."""
        fqdn = self.fqdn(pattern, namespace)
        return [h for h in self.hosts if h.visible_to(namespace) and hosts.covers(fqdn, h.hostname)]

    def hosts_of(self, resource: Resource) -> list[Host]:
        """The hosts a Service (one) or ServiceEntry (one per `hosts` entry) defines."""
        return [h for h in self.hosts if h.resource is resource]

    def hostnames(self) -> list[str]:
        return sorted(self._by_hostname)

    def pods_in(self, namespace: str) -> list[Pod]:
        return list(self._by_namespace.get(namespace, []))

    def pods_matching(self, selector: Mapping[str, str], namespace: str | None = None) -> list[Pod]:
        """Pods whose labels include `selector` (in `namespace`, or anywhere when None)."""
        pods = self.pods if namespace is None else self._by_namespace.get(namespace, [])
        return [p for p in pods if labels_match(selector, p.labels)]

    def pods_of(self, host: Host) -> list[Pod] | None:
        """The pods behind a host, or None when that cannot be known (no selector: endpoints are
        managed elsewhere, or the host is outside the mesh)."""
        if host.selector is None or (not host.selector and host.from_service_entry):
            return None
        return self.pods_matching(host.selector, host.namespace)


def build_inventory(resources: Iterable[Resource], domain_suffix: str) -> Inventory:
    found_hosts: list[Host] = []
    pods: list[Pod] = []
    node_labels: dict[str, Mapping[str, str]] = {}
    for resource in resources:
        key = (resource.group, resource.kind)
        if key == (CORE, "Service"):
            found_hosts.append(_service_host(resource, domain_suffix))
        elif key == (ISTIO, "ServiceEntry"):
            found_hosts.extend(_service_entry_hosts(resource, domain_suffix))
        elif key == (CORE, "Pod"):
            pods.append(_pod(resource))
        elif key in _POD_TEMPLATE_KINDS:
            pods.extend(_template_pods(resource))
        elif key == (CORE, "Node"):
            node_labels[resource.name] = resource.labels
    return Inventory(tuple(found_hosts), tuple(pods), node_labels, domain_suffix)


def _service_host(resource: Resource, domain_suffix: str) -> Host:
    spec = resource.spec
    ports = tuple(
        Port(
            number=_int(port.get("port")),
            name=text(port.get("name")),
            protocol=text(port.get("protocol")) or "TCP",
            target_port=_port_ref(port.get("targetPort")),
            app_protocol=text(port.get("appProtocol")),
        )
        for port in map(mapping, items(spec.get("ports")))
    )
    export = resource.annotations.get(EXPORT_TO_ANNOTATION, "")
    selector = spec.get("selector")
    return Host(
        hostname=service_fqdn(resource.name, resource.namespace, domain_suffix),
        namespace=resource.namespace,
        export_to=frozenset(e.strip() for e in export.split(",") if e.strip()),
        ports=ports,
        resource=resource,
        selector=labels(selector) if isinstance(selector, dict) else None,
    )


def _service_entry_hosts(resource: Resource, domain_suffix: str) -> list[Host]:
    spec = resource.spec
    ports = tuple(
        Port(
            number=_int(port.get("number")),
            name=text(port.get("name")),
            protocol=text(port.get("protocol")),
            target_port=_port_ref(port.get("targetPort")),
        )
        for port in map(mapping, items(spec.get("ports")))
    )
    selector = mapping(spec.get("workloadSelector")).get("labels")
    endpoints = tuple(labels(mapping(e).get("labels")) for e in items(spec.get("endpoints")))
    return [
        Host(
            hostname=resolve_short_host(host, resource.namespace, domain_suffix),
            namespace=resource.namespace,
            export_to=frozenset(strings(spec.get("exportTo"))),
            ports=ports,
            resource=resource,
            selector=labels(selector) if isinstance(selector, dict) else None,
            endpoint_labels=endpoints,
        )
        for host in strings(spec.get("hosts"))
    ]


def _pod(resource: Resource) -> Pod:
    return Pod(
        name=resource.name,
        namespace=resource.namespace,
        labels=resource.labels,
        annotations=resource.annotations,
        node_name=text(resource.at("spec", "nodeName")),
        resource=resource,
    )


def _template_pods(resource: Resource) -> list[Pod]:
    """The first replica of a pod template, named as the model names Deployment pods."""
    replicas = resource.at("spec", "replicas")
    if isinstance(replicas, int) and replicas <= 0:
        return []
    template = resource.at("spec", "template")
    meta = mapping(mapping(template).get("metadata"))
    if resource.kind == "Deployment":
        template_id = allocate.template_hash(resource.namespace, resource.name, template)
        name = allocate.pod_name(resource.name, template_id, 0)
    else:
        name = f"{resource.name}-0"
    return [
        Pod(
            name=name,
            namespace=resource.namespace,
            labels=labels(meta.get("labels")),
            annotations=labels(meta.get("annotations")),
            node_name=text(mapping(mapping(template).get("spec")).get("nodeName")),
            resource=resource,
        )
    ]


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _port_ref(value: object) -> int | str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        return value
    return None
