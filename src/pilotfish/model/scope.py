"""What one proxy can see: its Sidecar scope, visible services, VirtualServices and DestinationRules.

Istio's `SidecarScope` + `PushContext` lookups (istio-reference.md §8.2, §5.5): `exportTo` limits
visibility; a `Sidecar` resource (selected by workload labels, else the namespace default, else the
root namespace default) narrows egress to listed hosts and may override the outbound traffic
policy; a DestinationRule applies by most specific host, preferring the proxy's namespace, then the
service's, then the root namespace.

Scopes are cached in `mesh.memo` keyed by what they depend on (namespace and the chosen Sidecar).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pilotfish.config import istio
from pilotfish.config.objects import ConfigObject
from pilotfish.model import hosts
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import MESH_GATEWAY, resolve_short_host
from pilotfish.model.proxy import Proxy
from pilotfish.model.service import Service


def visible(export_to: Sequence[str] | frozenset[str], owner_namespace: str, viewer_namespace: str) -> bool:
    """Istio's exportTo: empty or `*` = everyone, `.` = the owner's namespace, else listed namespaces."""
    if not export_to or "*" in export_to:
        return True
    if "." in export_to and owner_namespace == viewer_namespace:
        return True
    return viewer_namespace in export_to


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True, slots=True)
class EgressListener:
    """One egress listener of the Sidecar scope: which services and VirtualServices it imports."""

    port: istio.SidecarPort | None
    bind: str
    capture_mode: istio.CaptureMode
    services: tuple[Service, ...]
    virtual_services: tuple[ConfigObject, ...]


@dataclass(frozen=True, slots=True)
class Scope:
    namespace: str
    sidecar: ConfigObject | None
    egress: tuple[EgressListener, ...]
    ingress: tuple[istio.IstioIngressListener, ...]
    registry_only: bool

    @property
    def services(self) -> tuple[Service, ...]:
        """Every service any egress listener imports (for CDS/EDS), in hostname order, once each."""
        seen: dict[str, Service] = {}
        for listener in self.egress:
            for service in listener.services:
                seen.setdefault(service.hostname, service)
        return tuple(sorted(seen.values(), key=lambda s: s.hostname))


def scope_for(mesh: Mesh, proxy: Proxy) -> Scope:
    sidecar = _select_sidecar(mesh, proxy)
    key = ("scope", proxy.namespace, sidecar.key if sidecar is not None else None)
    cached = mesh.memo.get(key)
    if cached is None:
        cached = mesh.memo[key] = _build_scope(mesh, proxy.namespace, sidecar)
    assert isinstance(cached, Scope)
    return cached


def _select_sidecar(mesh: Mesh, proxy: Proxy) -> ConfigObject | None:
    labels = proxy.label_map
    root = mesh.mesh_config.root_namespace
    local = [s for s in mesh.sidecars if s.namespace == proxy.namespace]
    for sidecar in local:
        selector = _selector(sidecar)
        if selector and labels_match(selector, labels):
            return sidecar
    for sidecar in local:
        if not _selector(sidecar):
            return sidecar
    for sidecar in mesh.sidecars:
        if sidecar.namespace == root and not _selector(sidecar):
            return sidecar
    return None


def _selector(sidecar: ConfigObject) -> Mapping[str, str]:
    selector = sidecar.spec.workload_selector
    return selector.labels if selector is not None else {}


def _build_scope(mesh: Mesh, namespace: str, sidecar: ConfigObject | None) -> Scope:
    services = [s for s in mesh.services if visible(s.export_to, s.namespace, namespace)]
    vses = [v for v in mesh_virtual_services(mesh) if visible(v.spec.export_to, v.namespace, namespace)]
    registry_only = _is_registry_only(mesh.mesh_config.outbound_traffic_policy)
    if sidecar is None:
        catch_all = EgressListener(None, "", istio.CaptureMode.DEFAULT, tuple(services), tuple(vses))
        return Scope(namespace, None, (catch_all,), (), registry_only)
    spec: istio.SidecarSpec = sidecar.spec
    if spec.outbound_traffic_policy is not None:
        registry_only = _is_registry_only(spec.outbound_traffic_policy)
    listeners = spec.egress or [istio.IstioEgressListener.model_validate({"hosts": ["*/*"]})]
    egress = tuple(_egress(mesh, sidecar.namespace, listener, services, vses) for listener in listeners)
    return Scope(namespace, sidecar, egress, tuple(spec.ingress), registry_only)


def _is_registry_only(policy: istio.OutboundTrafficPolicy) -> bool:
    return policy.mode is istio.OutboundTrafficPolicyMode.REGISTRY_ONLY


def _egress(
    mesh: Mesh,
    sidecar_namespace: str,
    listener: istio.IstioEgressListener,
    services: list[Service],
    vses: list[ConfigObject],
) -> EgressListener:
    """An egress listener with the services and VirtualServices its `hosts` import."""
    imported = tuple(
        s for s in services if _imports(listener.hosts, sidecar_namespace, s.namespace, s.hostname)
    )
    imported_vses = tuple(
        v
        for v in vses
        if any(
            _imports(listener.hosts, sidecar_namespace, v.namespace, h)
            for h in vs_hosts(v, mesh.domain_suffix)
        )
    )
    return EgressListener(listener.port, listener.bind, listener.capture_mode, imported, imported_vses)


def _imports(egress_hosts: Sequence[str], sidecar_namespace: str, namespace: str, hostname: str) -> bool:
    """Sidecar `egress.hosts` entries are `<namespace>/<dnsName>`; `.` is the Sidecar's namespace."""
    for entry in egress_hosts:
        ns, _, name = entry.partition("/")
        if ns == ".":
            ns = sidecar_namespace
        if ns not in ("*", namespace):
            continue
        if name == "*" or hosts.covers(name, hostname):
            return True
    return False


# --- VirtualServices -----------------------------------------------------------------------------


def mesh_virtual_services(mesh: Mesh) -> list[ConfigObject]:
    """VirtualServices that apply to sidecars (gateways empty or containing `mesh`), by creation order."""
    return [v for v in mesh.virtual_services if not v.spec.gateways or MESH_GATEWAY in v.spec.gateways]


def vs_hosts(vs: ConfigObject, domain_suffix: str) -> list[str]:
    return [resolve_short_host(h, vs.namespace, domain_suffix) for h in vs.spec.hosts]


def gateway_ref(name: str, namespace: str) -> str:
    """Resolve a VirtualService's `gateways` entry: `name` and `./name` are in the VS's namespace."""
    if name == MESH_GATEWAY or ("/" in name and not name.startswith("./")):
        return name
    return f"{namespace}/{name.removeprefix('./')}"


def vs_gateways(vs: ConfigObject) -> set[str]:
    """The VS's gateway set as `<namespace>/<name>` (plus `mesh` when it applies to sidecars)."""
    names = vs.spec.gateways or [MESH_GATEWAY]
    return {gateway_ref(g, vs.namespace) for g in names}


# --- DestinationRules ----------------------------------------------------------------------------


def destination_rule(mesh: Mesh, proxy: Proxy, service: Service) -> ConfigObject | None:
    """The DestinationRule that applies to `service` for this proxy (Istio 1.3 lookup order)."""
    key = ("dr", proxy.namespace, proxy.labels, service.hostname)
    if key in mesh.memo:
        cached: ConfigObject | None = mesh.memo[key]
        return cached
    result = _find_destination_rule(mesh, proxy, service)
    mesh.memo[key] = result
    return result


def _find_destination_rule(mesh: Mesh, proxy: Proxy, service: Service) -> ConfigObject | None:
    labels = proxy.label_map
    candidates = []
    for dr in mesh.destination_rules:
        if not visible(dr.spec.export_to, dr.namespace, proxy.namespace):
            continue
        selector = dr.spec.workload_selector
        if selector is not None and selector.match_labels and not labels_match(selector.match_labels, labels):
            continue
        host = resolve_short_host(dr.spec.host, dr.namespace, mesh.domain_suffix)
        if hosts.covers(host, service.hostname):
            candidates.append((dr, host))
    if not candidates:
        return None
    root = mesh.mesh_config.root_namespace
    for namespace in (proxy.namespace, service.namespace, root):
        scoped = [(dr, host) for dr, host in candidates if dr.namespace == namespace]
        if scoped:
            return min(scoped, key=lambda c: (hosts.specificity(c[1]), c[0].order))[0]
    return min(candidates, key=lambda c: (hosts.specificity(c[1]), c[0].order))[0]
