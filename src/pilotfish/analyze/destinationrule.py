"""DestinationRule analyzers: hosts that exist, subsets that select pods, verified TLS, one rule per host.

A subset whose labels match no pod gives 503 UH (no healthy upstream) as soon as a route uses it; a
DestinationRule for a host nobody defines does nothing; TLS origination without `caCertificates`
does not check who answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pilotfish.analyze import messages as msg
from pilotfish.analyze.analyzer import Analyzer, did_you_mean, finding
from pilotfish.analyze.context import AnalysisContext, selector_text
from pilotfish.analyze.inventory import Host, Inventory, Pod
from pilotfish.analyze.resource import Resource, items, labels, mapping, strings, text
from pilotfish.config.diagnostics import Diagnostic
from pilotfish.model import hosts
from pilotfish.model.names import resolve_short_host
from pilotfish.model.scope import labels_match

_VERIFYING_MODES = ("SIMPLE", "MUTUAL")
TOPOLOGY_REGION = "topology.kubernetes.io/region"
TOPOLOGY_ZONE = "topology.kubernetes.io/zone"
TOPOLOGY_SUBZONE = "topology.istio.io/subzone"
HOSTNAME_LABEL = "kubernetes.io/hostname"


# --- TLS without server verification ----------------------------------------------------------------


def _ca_certificates(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    for dr in ctx.of_kind("DestinationRule"):
        host = text(dr.spec.get("host"))
        has_selector = dr.spec.get("workloadSelector") is not None
        policy = mapping(dr.spec.get("trafficPolicy"))
        tls = mapping(policy.get("tls"))
        if _unverified(tls, has_selector):
            yield finding(
                msg.NO_SERVER_CERT_VERIFICATION_DESTINATION,
                dr,
                dr.full_name,
                dr.namespace,
                text(tls.get("mode")),
                host,
                path=("spec", "trafficPolicy", "tls", "mode"),
                fix="set trafficPolicy.tls.caCertificates to the CA that signs the server's certificate",
            )
        for i, setting in enumerate(items(policy.get("portLevelSettings"))):
            tls = mapping(mapping(setting).get("tls"))
            if _unverified(tls, has_selector):
                port = mapping(mapping(setting).get("port")).get("number")
                yield finding(
                    msg.NO_SERVER_CERT_VERIFICATION_PORT,
                    dr,
                    dr.full_name,
                    dr.namespace,
                    text(tls.get("mode")),
                    host,
                    port,
                    path=("spec", "trafficPolicy", "portLevelSettings", i, "tls", "mode"),
                    fix=f"set caCertificates in portLevelSettings[{i}].tls",
                )


def _unverified(tls: Mapping[str, object], has_selector: bool) -> bool:
    """SIMPLE/MUTUAL origination without a CA; a `credentialName` counts as one when the rule is
    scoped to workloads (the secret then carries the CA)."""
    if text(tls.get("mode")) not in _VERIFYING_MODES or text(tls.get("caCertificates")):
        return False
    return not (text(tls.get("credentialName")) and has_selector)


CA_CERTIFICATE = Analyzer(
    "destinationrule.CaCertificateAnalyzer",
    "Checks that DestinationRules originating TLS (SIMPLE/MUTUAL) set caCertificates",
    _ca_certificates,
)


# --- hosts and subsets ------------------------------------------------------------------------------


def _subsets_select_pods(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    inventory = ctx.inventory
    for dr in ctx.of_kind("DestinationRule"):
        host_text = text(dr.spec.get("host"))
        host = _rule_host(inventory, dr, host_text)
        if host is None:
            candidates = inventory.hostnames() + [
                h.resource.name for h in inventory.hosts if h.namespace == dr.namespace
            ]
            yield finding(
                msg.UNKNOWN_DESTINATION_RULE_HOST,
                dr,
                host_text,
                path=("spec", "host"),
                fix=f"{did_you_mean(host_text, candidates)}correct the host, or define it with a Service or "
                "ServiceEntry (this DestinationRule does nothing until then)",
            )
            continue
        targets = _targets(inventory, host)
        if targets is None:
            continue
        for i, subset in enumerate(items(dr.spec.get("subsets"))):
            subset = mapping(subset)
            selector = labels(subset.get("labels"))
            if not any(labels_match(selector, t) for t in targets):
                yield finding(
                    msg.SUBSET_NOT_SELECT_PODS,
                    dr,
                    text(subset.get("name")),
                    path=("spec", "subsets", i, "labels"),
                    fix=f"no pod of {host.hostname} has labels {selector_text(selector) or '(none)'}: "
                    "correct the subset labels or deploy that version",
                )


def _rule_host(inventory: Inventory, dr: Resource, host: str) -> Host | None:
    """The host a DestinationRule is for; a wildcard rule counts when it covers some host."""
    found = inventory.destination_host(host, dr.namespace, strings(dr.spec.get("exportTo")))
    if found is None and hosts.is_wildcard(host):
        covered = inventory.covered_hosts(host, dr.namespace)
        found = covered[0] if covered else None
    return found


def _targets(inventory: Inventory, host: Host) -> list[Mapping[str, str]] | None:
    """Label sets of the endpoints behind a host (pods with node topology labels, or a
    ServiceEntry's endpoints); None when they cannot be known."""
    if host.from_service_entry and host.endpoint_labels:
        return list(host.endpoint_labels)
    pods = inventory.pods_of(host)
    if pods is None:
        return None
    return [_with_topology(pod, inventory.node_labels) for pod in pods]


def _with_topology(pod: Pod, node_labels: Mapping[str, Mapping[str, str]]) -> Mapping[str, str]:
    """Pod labels plus its node's topology labels, as Istio's registry adds them to endpoints."""
    if not pod.node_name:
        return pod.labels
    result = dict(pod.labels)
    node = node_labels.get(pod.node_name, {})
    for key in (TOPOLOGY_REGION, TOPOLOGY_ZONE, TOPOLOGY_SUBZONE):
        if node.get(key):
            result[key] = node[key]
    result[HOSTNAME_LABEL] = pod.node_name
    return result


SUBSET_SELECT_POD = Analyzer(
    "destinationrule.SubsetSelectPodAnalyzer",
    "Checks that DestinationRule hosts exist and that each subset selects at least one pod",
    _subsets_select_pods,
)


def workload_selector(dr: Resource) -> dict[str, str]:
    """A DestinationRule's `workloadSelector.matchLabels`."""
    return labels(mapping(dr.spec.get("workloadSelector")).get("matchLabels"))


# --- several rules for one host (pilotfish) ---------------------------------------------------------


def _conflicting_rules(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """pilotfish applies one DestinationRule per host and workload selector (the first, as Istio 1.3
    did); Istio merges some of them. Either way the user meant one rule: the ignored ones are reported."""
    groups: dict[tuple[str, str, frozenset[tuple[str, str]]], list[Resource]] = {}
    for dr in ctx.of_kind("DestinationRule"):
        host = resolve_short_host(text(dr.spec.get("host")), dr.namespace, ctx.domain_suffix)
        selector = workload_selector(dr)
        groups.setdefault((dr.namespace, host, frozenset(selector.items())), []).append(dr)
    for (namespace, host, _), rules in groups.items():
        distinct = list(dict.fromkeys(r.name for r in rules))
        if len(distinct) < 2:  # one name defined twice is schema.InputAnalyzer's duplicate
            continue
        names = ", ".join(distinct)
        for dr in rules[1:]:  # the first one is used; the others are the ones to fix
            yield finding(
                msg.CONFLICTING_DESTINATION_RULES,
                dr,
                names,
                namespace,
                host,
                rules[0].name,
                path=("spec", "host"),
                fix="merge their subsets and traffic policies into one DestinationRule",
            )


CONFLICTING_DESTINATION_RULES = Analyzer(
    "destinationrule.ConflictingDestinationRulesAnalyzer",
    "Checks that one host has one DestinationRule per namespace and workload selector (pilotfish)",
    _conflicting_rules,
)
