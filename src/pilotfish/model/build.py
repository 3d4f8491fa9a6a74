"""Validated config objects -> one `Mesh` snapshot (pure; Istio's service registry + push context).

- Deployments expand into `replicas` pods with Kubernetes-like names; pods without an IP get one
  from 10.44.0.0/16, services without a cluster IP one from 10.96.0.0/16 (deterministically).
- Endpoints come from `Endpoints` objects when given, else from the pods the Service selects
  (like Kubernetes' endpoints controller: named target ports resolve to container ports; a pod
  whose `Ready` condition is not "True", from its own status or a `PodStatus`, is not ready).
- ServiceEntries become services too (Istio's `serviceentry/conversion.go`).
- Mesh-wide settings come from a MeshConfig document or the `istio` ConfigMap's `mesh` key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from pilotfish.config import istio, k8s
from pilotfish.config.diagnostics import DUPLICATE, UNSUPPORTED, Diagnostic, error, warning
from pilotfish.config.meshconfig import DEFAULT_MESH_CONFIG, MeshConfig
from pilotfish.config.objects import ConfigObject
from pilotfish.config.parse import parse_mesh_config
from pilotfish.config.yamltext import parse_yaml
from pilotfish.model import allocate
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import ISTIO_SYSTEM_NAMESPACE, ProxyType, service_fqdn
from pilotfish.model.protocol import Protocol, parse_protocol, protocol_of_port
from pilotfish.model.service import Endpoint, Resolution, Service, ServicePort, Workload

GATEWAY_LABEL_VALUES = frozenset({"ingressgateway", "egressgateway"})
_NO_INJECT_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
_TRUE = frozenset({"y", "yes", "true", "on", "enabled"})


def build_mesh(objects: Sequence[ConfigObject], version: str = "0") -> tuple[Mesh | None, list[Diagnostic]]:
    """Build the snapshot; returns (None, diagnostics) when the objects contradict each other."""
    diagnostics = _duplicates(objects)
    if diagnostics:
        return None, diagnostics
    by_kind: dict[str, list[ConfigObject]] = {}
    for obj in objects:
        by_kind.setdefault(obj.kind, []).append(obj)
    mesh_config, problems = _mesh_config(by_kind)
    diagnostics.extend(problems)
    if any(d.is_error for d in problems):
        return None, diagnostics
    namespaces = _namespaces(objects)
    workloads = _workloads(by_kind, namespaces)
    services = _k8s_services(by_kind.get("Service", []), mesh_config.domain_suffix)
    endpoints = _k8s_endpoints(services, by_kind.get("Endpoints", []), workloads)
    se_services, se_endpoints = _service_entries(by_kind.get("ServiceEntry", []))
    all_services, shadowed = _merge_services(services, se_services)
    diagnostics.extend(shadowed)
    diagnostics.extend(_istio_mutual_warnings(by_kind.get("DestinationRule", [])))
    for key, eps in se_endpoints.items():
        endpoints.setdefault(key, eps)
    mesh = Mesh(
        version=version,
        mesh_config=mesh_config,
        services=tuple(sorted(all_services, key=lambda s: s.hostname)),
        endpoints=endpoints,
        workloads=tuple(sorted(workloads, key=lambda w: (w.namespace, w.name))),
        namespaces=namespaces,
        virtual_services=tuple(by_kind.get("VirtualService", [])),
        destination_rules=tuple(by_kind.get("DestinationRule", [])),
        gateways=tuple(by_kind.get("Gateway", [])),
        sidecars=tuple(by_kind.get("Sidecar", [])),
        service_entries=tuple(by_kind.get("ServiceEntry", [])),
        objects=tuple(objects),
        diagnostics=tuple(d for d in diagnostics if not d.is_error),
        by_host={s.hostname: s for s in all_services},
        workloads_by_name={(w.namespace, w.name): w for w in workloads},
        workloads_by_ip={w.ip: w for w in workloads},
    )
    return mesh, diagnostics


WORKLOAD_KINDS = frozenset({"Pod", "Deployment", "Endpoints", "PodStatus"})
"""Kinds that only decide workloads and endpoints (a readiness report is an endpoint change)."""
ROUTING_KINDS = frozenset({"VirtualService", "Gateway"})
"""Kinds that only decide routes and gateway listeners (no service, cluster or endpoint)."""


@dataclass(frozen=True, slots=True)
class MeshUpdate:
    """The next snapshot built from the previous one: which groups of input changed (`endpoints`,
    `routing`) and the (hostname, port) keys whose endpoints differ (what caches must forget)."""

    mesh: Mesh
    groups: frozenset[str]
    changed_endpoints: frozenset[tuple[str, int]]


def update_mesh(previous: Mesh, objects: Sequence[ConfigObject], version: str) -> MeshUpdate | None:
    """The next snapshot when only pods, Deployments, Endpoints, PodStatus reports (a rollout, a
    scale-up, a pod becoming ready), VirtualServices or Gateways (a route edit) changed: services,
    the other config and their indexes are the previous snapshot's; workloads and endpoints, or
    the routing objects, are recomputed. None when anything else changed, or a namespace appeared
    or went away: callers then use `build_mesh`. The unchanged config objects stay the previous
    ones (equal but for shifted `order` numbers, in the same relative order). The new snapshot's
    memo is empty; what generation may keep is decided by `xds.generate.carry_over`."""
    changed = _changed_kinds(previous.objects, objects)
    if changed is None or not changed <= WORKLOAD_KINDS | ROUTING_KINDS or _duplicates(objects):
        return None
    namespaces = _namespaces(objects)
    if namespaces != previous.namespaces:
        return None
    by_kind: dict[str, list[ConfigObject]] = {}
    for obj in objects:
        by_kind.setdefault(obj.kind, []).append(obj)
    mesh = replace(previous, version=version, objects=tuple(objects), memo={})
    groups: set[str] = set()
    changed_endpoints: set[tuple[str, int]] = set()
    if changed & WORKLOAD_KINDS:
        groups.add("endpoints")
        mesh, changed_endpoints = _with_new_workloads(mesh, by_kind, namespaces)
    if changed & ROUTING_KINDS:
        groups.add("routing")
        routing = {kind: tuple(by_kind.get(kind, [])) for kind in ("VirtualService", "Gateway")}
        mesh = replace(mesh, virtual_services=routing["VirtualService"], gateways=routing["Gateway"])
    return MeshUpdate(mesh, frozenset(groups), frozenset(changed_endpoints))


def _with_new_workloads(
    mesh: Mesh, by_kind: Mapping[str, list[ConfigObject]], namespaces: Mapping[str, Mapping[str, str]]
) -> tuple[Mesh, set[tuple[str, int]]]:
    workloads = _workloads(by_kind, namespaces)
    k8s_services = [s for s in mesh.services if not s.from_service_entry]
    endpoints = _k8s_endpoints(k8s_services, by_kind.get("Endpoints", []), workloads)
    for key, eps in mesh.endpoints.items():  # ServiceEntry endpoints, as build_mesh merges them
        endpoints.setdefault(key, eps)
    changed = {
        k for k in mesh.endpoints.keys() | endpoints.keys() if mesh.endpoints.get(k) != endpoints.get(k)
    }
    updated = replace(
        mesh,
        endpoints=endpoints,
        workloads=tuple(sorted(workloads, key=lambda w: (w.namespace, w.name))),
        workloads_by_name={(w.namespace, w.name): w for w in workloads},
        workloads_by_ip={w.ip: w for w in workloads},
    )
    return updated, changed


def _changed_kinds(before: Sequence[ConfigObject], after: Sequence[ConfigObject]) -> set[str] | None:
    """The kinds of added, removed or modified objects; None when other objects changed their
    relative order (their `order` numbers may shift when an earlier file grew: that is no change).
    Objects of unchanged files are the same Python objects (`config.parse.ParseCache`), so most
    comparisons are `is`."""
    old = {obj.key: obj for obj in before}
    new = {obj.key: obj for obj in after}
    changed = {key[0] for key in old.keys() ^ new.keys()}
    for key in old.keys() & new.keys():
        a, b = old[key], new[key]
        if a is not b and not a.same_but_order(b):
            changed.add(key[0])
    stable_before = [obj.key for obj in before if obj.kind not in changed]
    stable_after = [obj.key for obj in after if obj.kind not in changed]
    return changed if stable_before == stable_after else None


def _duplicates(objects: Sequence[ConfigObject]) -> list[Diagnostic]:
    seen: dict[tuple[str, str, str], ConfigObject] = {}
    result = []
    for obj in objects:
        first = seen.setdefault(obj.key, obj)
        if first is not obj:
            message = (
                f"defined twice (first at {first.origin}); object names must be unique per kind and namespace"
            )
            result.append(error(DUPLICATE, message, obj.ref, obj.origin))
    return result


# --- mesh config ------------------------------------------------------------------------------------


def _mesh_config(by_kind: Mapping[str, list[ConfigObject]]) -> tuple[MeshConfig, list[Diagnostic]]:
    found: list[tuple[MeshConfig, ConfigObject]] = []
    diagnostics: list[Diagnostic] = []
    for obj in by_kind.get("ConfigMap", []):
        if obj.name == "istio" and obj.namespace == ISTIO_SYSTEM_NAMESPACE and "mesh" in obj.spec.data:
            line = obj.origin_of(("data", "mesh")).line
            documents, problems = parse_yaml(obj.spec.data["mesh"], f"{obj.origin.file}:{line} (data.mesh)")
            diagnostics.extend(problems)
            for document in documents[:1]:
                config, problems = parse_mesh_config(document)
                diagnostics.extend(problems)
                if config is not None:
                    found.append((config, obj))
    for obj in by_kind.get("MeshConfig", []):
        found.append((obj.spec, obj))
    if len(found) > 1:
        names = ", ".join(f"{o.ref} ({o.origin})" for _, o in found)
        diagnostics.append(warning(DUPLICATE, f"several mesh configs ({names}); the last one is used"))
    return (found[-1][0] if found else DEFAULT_MESH_CONFIG), diagnostics


def _istio_mutual_warnings(rules: Sequence[ConfigObject]) -> list[Diagnostic]:
    """ISTIO_MUTUAL needs workload certificates from a mesh CA, which pilotfish does not run yet:
    say so where it is used instead of failing the whole mesh."""
    result = []
    for rule in rules:
        for path in _tls_paths(rule.spec):
            result.append(
                warning(
                    UNSUPPORTED,
                    "tls mode ISTIO_MUTUAL is not supported yet (pilotfish has no certificate authority); "
                    "the connection stays plaintext",
                    rule.ref,
                    rule.origin_of(path),
                    ".".join(str(p) for p in path),
                )
            )
    return result


def _tls_paths(spec: istio.DestinationRuleSpec) -> list[tuple[str | int, ...]]:
    """Field paths of every `tls` block with mode ISTIO_MUTUAL."""
    policies: list[tuple[tuple[str | int, ...], istio.TrafficPolicy | None]] = [
        (("spec", "trafficPolicy"), spec.traffic_policy)
    ]
    policies += [
        (("spec", "subsets", i, "trafficPolicy"), s.traffic_policy) for i, s in enumerate(spec.subsets)
    ]
    paths = []
    for prefix, policy in policies:
        if policy is None:
            continue
        if policy.tls is not None and policy.tls.mode is istio.TLSMode.ISTIO_MUTUAL:
            paths.append((*prefix, "tls", "mode"))
        for i, port in enumerate(policy.port_level_settings):
            if port.tls is not None and port.tls.mode is istio.TLSMode.ISTIO_MUTUAL:
                paths.append((*prefix, "portLevelSettings", i, "tls", "mode"))
    return paths


def _namespaces(objects: Iterable[ConfigObject]) -> dict[str, Mapping[str, str]]:
    """Namespaces named by any object; a status report names its pod's, it makes none."""
    result: dict[str, Mapping[str, str]] = {}
    for obj in objects:
        if obj.kind == "Namespace":
            result[obj.name] = obj.labels
        elif obj.namespace and obj.kind != "PodStatus":
            result.setdefault(obj.namespace, {})
    return result


# --- workloads --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pod:
    """A pod before address assignment."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: k8s.PodSpec
    ip: str
    deployment: str
    source: ConfigObject
    ready: bool


def _pods(by_kind: Mapping[str, list[ConfigObject]]) -> list[_Pod]:
    """Pods as given plus Deployment replicas (Kubernetes-like names), with their readiness: a
    `PodStatus` report's, else the Pod's own status, else ready (`config.podstatus`)."""
    reported = {(obj.namespace, obj.name): obj.spec.status.ready for obj in by_kind.get("PodStatus", [])}
    pods = []
    for obj in by_kind.get("Pod", []):
        status = obj.spec.status
        ip = status.pod_ip if status is not None else ""
        ready = reported.get((obj.namespace, obj.name), status.ready if status is not None else True)
        pods.append(
            _Pod(obj.name, obj.namespace, obj.labels, obj.annotations, obj.spec.spec, ip, "", obj, ready)
        )
    for obj in by_kind.get("Deployment", []):
        spec: k8s.DeploymentSpec = obj.spec.spec
        template = obj.raw.get("spec", {}).get("template") if isinstance(obj.raw, dict) else None
        template_id = allocate.template_hash(obj.namespace, obj.name, template)
        meta = spec.template.metadata
        for index in range(spec.replicas):
            name = allocate.pod_name(obj.name, template_id, index)
            ready = reported.get((obj.namespace, name), True)
            pods.append(
                _Pod(
                    name,
                    obj.namespace,
                    meta.labels,
                    meta.annotations,
                    spec.template.spec,
                    "",
                    obj.name,
                    obj,
                    ready,
                )
            )
    return pods


def _workloads(
    by_kind: Mapping[str, list[ConfigObject]], namespaces: Mapping[str, Mapping[str, str]]
) -> list[Workload]:
    """Every pod as a `Workload`; pods without an IP get one from the pod range."""
    pods = _pods(by_kind)
    wanting = (f"{p.namespace}/{p.name}" for p in pods if not p.ip)
    assigned = allocate.allocate_addresses(wanting, allocate.POD_RANGE, [p.ip for p in pods if p.ip])
    workloads = []
    for pod in pods:
        proxy_type = _proxy_type(pod, namespaces.get(pod.namespace, {}))
        workloads.append(
            Workload(
                name=pod.name,
                namespace=pod.namespace,
                ip=pod.ip or assigned[f"{pod.namespace}/{pod.name}"],
                labels=pod.labels,
                service_account=pod.spec.service_account_name or pod.spec.service_account or "default",
                container_ports=tuple(
                    (p.name, p.container_port) for c in pod.spec.containers for p in c.ports
                ),
                injected=proxy_type is ProxyType.SIDECAR,
                proxy_type=proxy_type,
                deployment=pod.deployment,
                containers=tuple(pod.spec.containers),
                annotations=pod.annotations,
                origin=pod.source.origin,
                ready=pod.ready,
            )
        )
    return workloads


def _proxy_type(pod: _Pod, namespace_labels: Mapping[str, str]) -> ProxyType | None:
    """Router for gateway pods; sidecar when Istio's injector would inject one; else no proxy.

    Injection: the pod's `sidecar.istio.io/inject` label/annotation decides when present; else the
    namespace's `istio-injection` label; pilotfish injects namespaces that have neither (so plain
    manifests work), except Kubernetes' system namespaces and hostNetwork pods.
    """
    if pod.labels.get("istio") in GATEWAY_LABEL_VALUES:
        return ProxyType.ROUTER
    if pod.spec.host_network or pod.namespace in _NO_INJECT_NAMESPACES:
        return None
    choice = pod.labels.get("sidecar.istio.io/inject", pod.annotations.get("sidecar.istio.io/inject"))
    if choice is not None:
        return ProxyType.SIDECAR if choice.lower() in _TRUE else None
    namespace_choice = namespace_labels.get("istio-injection")
    if namespace_choice is not None:
        return ProxyType.SIDECAR if namespace_choice == "enabled" else None
    return ProxyType.SIDECAR


# --- Kubernetes services and endpoints ----------------------------------------------------------------


def _k8s_services(objects: Sequence[ConfigObject], domain_suffix: str) -> list[Service]:
    explicit = [o.spec.spec.cluster_ip for o in objects if _is_ip(o.spec.spec.cluster_ip)]
    wanting = [
        f"{o.namespace}/{o.name}"
        for o in objects
        if not o.spec.spec.cluster_ip and o.spec.spec.type != "ExternalName"
    ]
    vips = allocate.allocate_addresses(wanting, allocate.SERVICE_RANGE, explicit)
    services = []
    for obj in objects:
        spec: k8s.ServiceSpec = obj.spec.spec
        resolution = Resolution.CLIENT_SIDE_LB
        address = spec.cluster_ip or vips.get(f"{obj.namespace}/{obj.name}", "0.0.0.0")
        if spec.cluster_ip == "None":
            resolution, address = Resolution.PASSTHROUGH, "0.0.0.0"
        elif spec.type == "ExternalName":
            resolution, address = Resolution.DNS_LB, "0.0.0.0"
        ports = tuple(
            ServicePort(
                p.name, p.port, protocol_of_port(p.name, p.app_protocol, p.protocol, p.port), p.target_port
            )
            for p in spec.ports
        )
        export = obj.annotations.get("networking.istio.io/exportTo", "")
        services.append(
            Service(
                hostname=service_fqdn(obj.name, obj.namespace, domain_suffix),
                name=obj.name,
                namespace=obj.namespace,
                address=address,
                ports=ports,
                resolution=resolution,
                mesh_external=spec.type == "ExternalName",
                export_to=frozenset(e.strip() for e in export.split(",") if e.strip()),
                selector=spec.selector,
                labels=obj.labels,
                addresses=(address,) if address != "0.0.0.0" else (),
                origin=obj.origin,
                order=obj.order,
            )
        )
    return services


def _k8s_endpoints(
    services: Sequence[Service], endpoint_objects: Sequence[ConfigObject], workloads: Sequence[Workload]
) -> dict[tuple[str, int], tuple[Endpoint, ...]]:
    given = {(o.namespace, o.name): o.spec for o in endpoint_objects}
    by_ip = {w.ip: w for w in workloads}
    by_label = _label_index(workloads)
    result: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
    for service in services:
        explicit = given.get((service.namespace, service.name))
        for port in service.ports:
            if port.protocol is Protocol.UDP:
                continue
            if explicit is not None:
                eps = _from_endpoints_object(explicit, port, by_ip)
            elif service.resolution is Resolution.DNS_LB:
                eps = [Endpoint(service.hostname, port.port, port.name)]
            else:
                eps = _from_selector(service, port, by_label)
            result[(service.hostname, port.port)] = tuple(sorted(eps, key=_endpoint_order))
    return result


def _from_endpoints_object(
    spec: k8s.Endpoints, port: ServicePort, by_ip: Mapping[str, Workload]
) -> list[Endpoint]:
    eps = []
    for subset in spec.subsets:
        for ep_port in subset.ports:
            if ep_port.name != port.name and not (len(subset.ports) == 1 and not ep_port.name):
                continue
            for address, ready in [(a, True) for a in subset.addresses] + [
                (a, False) for a in subset.not_ready_addresses
            ]:
                workload = by_ip.get(address.ip)
                eps.append(_endpoint(address.ip, ep_port.port, port.name, workload, ready))
    return eps


def _label_index(workloads: Sequence[Workload]) -> dict[tuple[str, str, str], list[Workload]]:
    """(namespace, label, value) -> workloads: selector matching without scanning every pod."""
    index: dict[tuple[str, str, str], list[Workload]] = {}
    for workload in workloads:
        for key, value in workload.labels.items():
            index.setdefault((workload.namespace, key, value), []).append(workload)
    return index


def _from_selector(
    service: Service, port: ServicePort, by_label: Mapping[tuple[str, str, str], list[Workload]]
) -> list[Endpoint]:
    if not service.selector:
        return []
    key, value = next(iter(service.selector.items()))
    eps = []
    for workload in by_label.get((service.namespace, key, value), []):
        if not _selects(service.selector, workload.labels):
            continue
        target = _target_port(port, workload)
        if target is not None:
            eps.append(_endpoint(workload.ip, target, port.name, workload, workload.ready))
    return eps


def _target_port(port: ServicePort, workload: Workload) -> int | None:
    if isinstance(port.target_port, int):
        return port.target_port
    if isinstance(port.target_port, str) and port.target_port:
        return workload.container_port(port.target_port)
    return port.port


def _endpoint(ip: str, port: int, port_name: str, workload: Workload | None, ready: bool) -> Endpoint:
    if workload is None:
        return Endpoint(ip, port, port_name, ready=ready)
    return Endpoint(
        ip,
        port,
        port_name,
        labels=workload.labels,
        workload=workload.proxy_id,
        service_account=workload.service_account,
        ready=ready,
    )


def _endpoint_order(ep: Endpoint) -> tuple[int, int, str]:
    try:
        return (0, int(ipaddress.ip_address(ep.address)), str(ep.port))
    except ValueError:
        return (1, 0, f"{ep.address}:{ep.port}")


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- ServiceEntries ---------------------------------------------------------------------------------


_SE_RESOLUTION = {
    istio.Resolution.NONE: Resolution.PASSTHROUGH,
    istio.Resolution.STATIC: Resolution.CLIENT_SIDE_LB,
    istio.Resolution.DNS: Resolution.DNS_LB,
    istio.Resolution.DNS_ROUND_ROBIN: Resolution.DNS_LB,
}


def _service_entries(
    objects: Sequence[ConfigObject],
) -> tuple[list[Service], dict[tuple[str, int], tuple[Endpoint, ...]]]:
    services: list[Service] = []
    endpoints: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
    for obj in objects:
        spec: istio.ServiceEntrySpec = obj.spec
        ports = tuple(
            ServicePort(
                p.name, p.number, parse_protocol(p.protocol) if p.protocol else Protocol.TCP, p.target_port
            )
            for p in spec.ports
        )
        addresses = tuple(_plain_address(a) for a in spec.addresses)
        for host in spec.hosts:
            service = Service(
                hostname=host,
                name=host,
                namespace=obj.namespace,
                address=addresses[0] if addresses else "0.0.0.0",
                ports=ports,
                resolution=_SE_RESOLUTION[spec.resolution],
                mesh_external=spec.location is istio.Location.MESH_EXTERNAL,
                export_to=frozenset(spec.export_to),
                addresses=addresses,
                from_service_entry=True,
                origin=obj.origin,
                order=obj.order,
            )
            services.append(service)
            for port in ports:
                endpoints[(host, port.port)] = tuple(_se_endpoints(spec, service, port))
    return services, endpoints


def _se_endpoints(spec: istio.ServiceEntrySpec, service: Service, port: ServicePort) -> list[Endpoint]:
    if service.resolution is Resolution.PASSTHROUGH:
        return []
    target = port.target_port if isinstance(port.target_port, int) else port.port
    if not spec.endpoints:
        return (
            [Endpoint(service.hostname, target, port.name)] if service.resolution is Resolution.DNS_LB else []
        )
    return [
        Endpoint(
            e.address,
            e.ports.get(port.name, target),
            port.name,
            labels=e.labels,
            weight=e.weight or 1,
            locality=e.locality,
            service_account=e.service_account,
        )
        for e in spec.endpoints
    ]


def _plain_address(address: str) -> str:
    """A /32 (or /128) CIDR is a plain IP; other CIDRs stay CIDRs."""
    if "/" in address:
        network = ipaddress.ip_network(address, strict=False)
        if network.num_addresses == 1:
            return str(network.network_address)
    return address


def _merge_services(
    k8s_services: list[Service], se_services: list[Service]
) -> tuple[list[Service], list[Diagnostic]]:
    """One service per hostname: Kubernetes services first, then ServiceEntries in input order."""
    by_host: dict[str, Service] = {}
    diagnostics = []
    for service in [*k8s_services, *sorted(se_services, key=lambda s: s.order)]:
        first = by_host.setdefault(service.hostname, service)
        if first is not service:
            message = (
                f"host {service.hostname} is already defined at {first.origin}; this definition is ignored"
            )
            diagnostics.append(warning(DUPLICATE, message, origin=service.origin))
    return list(by_host.values()), diagnostics


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Every selector label present with the same value (Istio's `labels.SubsetOf`)."""
    return _selects(selector, labels)
