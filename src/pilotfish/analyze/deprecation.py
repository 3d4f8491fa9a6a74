"""Deprecation analyzer: fields and kinds Istio has deprecated (they may stop working on upgrade).

Each entry names the field as Istio's API does and what replaces it. Hand-written, like Istio's:
the API definitions carry no machine-readable deprecation list.
"""

from __future__ import annotations

from collections.abc import Iterator

from pilotfish.analyze import messages as msg
from pilotfish.analyze.analyzer import Analyzer, finding
from pilotfish.analyze.context import AnalysisContext
from pilotfish.analyze.resource import Resource, items, mapping, text
from pilotfish.config.diagnostics import Diagnostic

REMOVED_KINDS = (
    ("rbac.istio.io", "ClusterRbacConfig"),
    ("rbac.istio.io", "RbacConfig"),
    ("rbac.istio.io", "ServiceRole"),
    ("rbac.istio.io", "ServiceRoleBinding"),
)


def _deprecations(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    for vs in ctx.of_kind("VirtualService"):
        yield from _virtual_service(vs)
    for sidecar in ctx.of_kind("Sidecar"):
        if mapping(sidecar.spec.get("outboundTrafficPolicy")).get("egressProxy") is not None:
            yield finding(
                msg.DEPRECATED,
                sidecar,
                "OutboundTrafficPolicy.EgressProxy ignored",
                path=("spec", "outboundTrafficPolicy", "egressProxy"),
                fix="remove egressProxy; route egress traffic with a VirtualService and an egress Gateway",
            )
    for dr in ctx.of_kind("DestinationRule"):
        yield from _destination_rule(dr)
    for crd in ctx.of_kind("CustomResourceDefinition", "apiextensions.k8s.io"):
        group = text(crd.at("spec", "group"))
        kind = text(crd.at("spec", "names", "kind"))
        if (group, kind) in REMOVED_KINDS:
            yield finding(msg.DEPRECATED, crd, f"Custom resource type {group} {kind} is removed")


def _virtual_service(vs: Resource) -> Iterator[Diagnostic]:
    for i, rule in enumerate(items(vs.spec.get("http"))):
        rule = mapping(rule)
        percent = mapping(mapping(rule.get("fault")).get("delay")).get("percent")
        if isinstance(percent, int | float) and percent > 0:
            yield _replaced(
                vs,
                "HTTPRoute.fault.delay.percent",
                "HTTPRoute.fault.delay.percentage",
                ("http", i, "fault", "delay", "percent"),
            )
        if rule.get("mirrorPercent") is not None:
            yield _replaced(
                vs, "HTTPRoute.mirrorPercent", "HTTPRoute.mirrorPercentage", ("http", i, "mirrorPercent")
            )
        if mapping(rule.get("corsPolicy")).get("allowOrigin") is not None:
            yield _replaced(
                vs,
                "CorsPolicy.allowOrigin",
                "CorsPolicy.allowOrigins",
                ("http", i, "corsPolicy", "allowOrigin"),
            )


def _destination_rule(dr: Resource) -> Iterator[Diagnostic]:
    policies: list[tuple[tuple[str | int, ...], object]] = [
        (("trafficPolicy",), dr.spec.get("trafficPolicy"))
    ]
    for i, subset in enumerate(items(dr.spec.get("subsets"))):
        policies.append((("subsets", i, "trafficPolicy"), mapping(subset).get("trafficPolicy")))
    for path, policy in policies:
        detection = mapping(mapping(policy).get("outlierDetection"))
        if detection.get("consecutiveErrors") is not None:
            yield _replaced(
                dr,
                "OutlierDetection.consecutiveErrors",
                "OutlierDetection.consecutive5xxErrors",
                (*path, "outlierDetection", "consecutiveErrors"),
            )


def _replaced(resource: Resource, old: str, new: str, path: tuple[str | int, ...]) -> Diagnostic:
    return finding(
        msg.DEPRECATED,
        resource,
        f"{old} is deprecated; use {new}",
        path=("spec", *path),
        fix=f"replace {path[-1]} with {new.rsplit('.', 1)[-1]}",
    )


DEPRECATION = Analyzer(
    "deprecation.DeprecationAnalyzer",
    "Checks for deprecated Istio fields and kinds",
    _deprecations,
)
