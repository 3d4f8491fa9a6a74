"""Sidecar analyzer: each Sidecar resource applies to some workload, and to only one per workload.

A Sidecar whose selector matches no pod in its namespace does nothing; two Sidecars for one pod (or
two without selector in one namespace) leave it undefined which one the proxy gets.
"""

from __future__ import annotations

from collections.abc import Iterator

from pilotfish.analyze import messages as msg
from pilotfish.analyze.analyzer import Analyzer, did_you_mean, finding
from pilotfish.analyze.context import AnalysisContext, selector_text
from pilotfish.analyze.inventory import Pod
from pilotfish.analyze.messages import golist, quoted
from pilotfish.analyze.resource import CORE, Resource, labels, mapping
from pilotfish.config.diagnostics import Diagnostic

AMBIENT_LABEL = "istio.io/dataplane-mode"
AMBIENT_REDIRECTION = "ambient.istio.io/redirection"


def sidecar_selector(sidecar: Resource) -> dict[str, str]:
    return labels(mapping(sidecar.spec.get("workloadSelector")).get("labels"))


def _selectors(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    pod_sidecars: dict[int, list[Resource]] = {}
    pods: dict[int, Pod] = {}
    namespace_wide: dict[str, list[Resource]] = {}
    for sidecar in ctx.of_kind("Sidecar"):
        selector = sidecar_selector(sidecar)
        if not selector:
            namespace_wide.setdefault(sidecar.namespace, []).append(sidecar)
            continue
        selected = ctx.inventory.pods_matching(selector, sidecar.namespace)
        if not selected:
            yield _selects_nothing(ctx, sidecar, selector)
        for pod in selected:
            pods[id(pod)] = pod
            pod_sidecars.setdefault(id(pod), []).append(sidecar)
    reported: set[int] = set()
    for key, sidecars in pod_sidecars.items():
        pod = pods[key]
        if pod.annotations.get(AMBIENT_REDIRECTION) == "enabled":
            for sidecar in sidecars:
                if id(sidecar) not in reported:
                    reported.add(id(sidecar))
                    yield _ineffective(
                        sidecar, "selected workload is in ambient mode, the policy has no impact"
                    )
            continue
        if len(sidecars) < 2:
            continue
        names = golist(s.full_name for s in sidecars)
        for sidecar in sidecars:
            if id(sidecar) in reported:  # one report per Sidecar, even when many pods overlap
                continue
            reported.add(id(sidecar))
            yield finding(
                msg.CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                sidecar,
                names,
                quoted(pod.namespace),
                quoted(pod.name),
                path=("metadata", "name"),
                fix="make the workload selectors disjoint, or merge the Sidecars",
            )
    for namespace, sidecars in namespace_wide.items():
        if _ambient_namespace(ctx, namespace):
            for sidecar in sidecars:
                if id(sidecar) not in reported:
                    reported.add(id(sidecar))
                    yield _ineffective(sidecar, "namespace is in ambient mode, the policy has no impact")
            continue
        if len(sidecars) > 1:
            names = golist(s.full_name for s in sidecars)
            for sidecar in sidecars:
                yield finding(
                    msg.MULTIPLE_SIDECARS_WITHOUT_SELECTORS,
                    sidecar,
                    names,
                    quoted(namespace),
                    path=("metadata", "name"),
                    fix="keep one namespace-wide Sidecar; give the others a workloadSelector",
                )


def _selects_nothing(ctx: AnalysisContext, sidecar: Resource, selector: dict[str, str]) -> Diagnostic:
    wanted = selector_text(selector)
    known = {f"{k}={v}" for p in ctx.inventory.pods_in(sidecar.namespace) for k, v in p.labels.items()}
    first = next(iter(selector))
    return finding(
        msg.REFERENCED_RESOURCE_NOT_FOUND,
        sidecar,
        "selector",
        quoted(wanted),
        path=("spec", "workloadSelector", "labels", first),
        fix=f"{did_you_mean(wanted, known)}no pod in namespace {sidecar.namespace} has labels {wanted}: "
        "correct the selector (a Sidecar only selects pods of its own namespace)",
    )


def _ineffective(sidecar: Resource, reason: str) -> Diagnostic:
    return finding(
        msg.INEFFECTIVE_POLICY, sidecar, reason, fix="delete it, or take the workload out of ambient mode"
    )


def _ambient_namespace(ctx: AnalysisContext, namespace: str) -> bool:
    resource = ctx.find("Namespace", "", namespace, CORE)
    if resource is None:
        return False
    ns_labels = resource.labels
    injected = "istio-injection" in ns_labels or "istio.io/rev" in ns_labels
    return ns_labels.get(AMBIENT_LABEL) == "ambient" and not injected


SELECTOR = Analyzer(
    "sidecar.SelectorAnalyzer",
    "Checks that Sidecars select workloads, and that no workload (or namespace) has two of them",
    _selectors,
)
