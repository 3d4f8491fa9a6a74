"""Gateway analyzers: the selector finds a gateway workload, its ports reach it, servers do not collide,
and TLS credentials exist and are valid.

A Gateway whose selector matches no pod configures nothing; a server port the gateway's Service does
not expose cannot be reached from outside; two Gateways claiming the same port and host on one
workload leave the winner undefined.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping

from pilotfish.analyze import messages as msg
from pilotfish.analyze.analyzer import Analyzer, did_you_mean, finding
from pilotfish.analyze.context import AnalysisContext, selector_text
from pilotfish.analyze.inventory import Pod
from pilotfish.analyze.messages import quoted
from pilotfish.analyze.resource import CORE, Resource, items, labels, mapping, strings, text
from pilotfish.certificates import certificate_problem
from pilotfish.config.diagnostics import Diagnostic
from pilotfish.config.yamltext import Path
from pilotfish.model import hosts
from pilotfish.model.scope import labels_match

_CERT_KEYS = (("tls.crt", "tls.key"), ("cert", "key"))
"""Key pairs a gateway credential Secret may use (Kubernetes TLS secret, Istio generic secret)."""


def gateway_selector(gateway: Resource) -> dict[str, str]:
    return labels(gateway.spec.get("selector"))


def _selector_path(gateway: Resource) -> Path:
    selector = gateway_selector(gateway)
    return ("spec", "selector", next(iter(selector))) if selector else ("spec", "selector")


def _selector_not_found(ctx: AnalysisContext, gateway: Resource) -> Diagnostic:
    selector = gateway_selector(gateway)
    known = {f"{k}={v}" for pod in ctx.inventory.pods for k, v in pod.labels.items()}
    wanted = selector_text(selector)
    return finding(
        msg.REFERENCED_RESOURCE_NOT_FOUND,
        gateway,
        "selector",
        quoted(wanted),
        path=_selector_path(gateway),
        fix=f"{did_you_mean(wanted, known)}no pod has labels {wanted}: correct spec.selector to the "
        "gateway workload's labels (e.g. istio=ingressgateway), or deploy the gateway",
    )


# --- ports ------------------------------------------------------------------------------------------


def _ingress_ports(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    for gateway in ctx.of_kind("Gateway"):
        selector = gateway_selector(gateway)
        pods = ctx.inventory.pods_matching(selector)
        if not pods:
            yield _selector_not_found(ctx, gateway)
            continue
        offered = _service_ports(ctx, pods)
        for i, server in enumerate(items(gateway.spec.get("servers"))):
            number = mapping(mapping(server).get("port")).get("number")
            if not isinstance(number, int) or number in offered:
                continue
            shown = ", ".join(map(str, sorted(offered))) or "none"
            yield finding(
                msg.GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                gateway,
                number,
                selector_text(selector),
                path=("spec", "servers", i, "port", "number"),
                fix=f"the Services of the selected pods expose ports {shown}: use one of them, or add "
                f"port {number} to the gateway's Service",
            )


def _service_ports(ctx: AnalysisContext, pods: list[Pod]) -> set[int]:
    """TCP ports (and target ports: Istio translates a server port equal to a Service port to its
    targetPort) of the Services that select any of `pods`."""
    result: set[int] = set()
    for host in ctx.inventory.hosts:
        if host.from_service_entry or host.selector is None:
            continue
        if not any(p.namespace == host.namespace and labels_match(host.selector, p.labels) for p in pods):
            continue
        for port in host.ports:
            if port.protocol.upper() != "TCP":
                continue
            result.add(port.number)
            if isinstance(port.target_port, int):
                result.add(port.target_port)
    return result


INGRESS_GATEWAY_PORT = Analyzer(
    "gateway.IngressGatewayPortAnalyzer",
    "Checks that a Gateway selects a workload and that the workload's Service exposes its server ports",
    _ingress_ports,
)


# --- conflicts --------------------------------------------------------------------------------------


def _conflicts(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """Gateways that share a workload (selected pods overlap, or equal selectors) and offer the same
    host on the same port."""
    gateways = ctx.of_kind("Gateway")
    selected = {id(g): {id(p) for p in ctx.inventory.pods_matching(gateway_selector(g))} for g in gateways}
    for gateway in gateways:
        for i, server in enumerate(items(gateway.spec.get("servers"))):
            number = mapping(mapping(server).get("port")).get("number")
            if not isinstance(number, int):
                continue
            server_hosts = _plain_hosts(strings(mapping(server).get("hosts")))
            others = [
                other.full_name
                for other in gateways
                if other is not gateway
                and _same_workload(gateway, other, selected)
                and _offers(other, number, server_hosts)
            ]
            if others:
                yield finding(
                    msg.CONFLICTING_GATEWAYS,
                    gateway,
                    ",".join(others),
                    selector_text(gateway_selector(gateway)),
                    number,
                    ",".join(strings(mapping(server).get("hosts"))),
                    path=("spec", "servers", i),
                    fix="merge the servers into one Gateway, or give them different hosts or ports",
                )


def _same_workload(a: Resource, b: Resource, selected: Mapping[int, set[int]]) -> bool:
    return bool(selected[id(a)] & selected[id(b)]) or gateway_selector(a) == gateway_selector(b)


def _offers(gateway: Resource, number: int, wanted: list[str]) -> bool:
    for server in items(gateway.spec.get("servers")):
        if mapping(mapping(server).get("port")).get("number") != number:
            continue
        offered = _plain_hosts(strings(mapping(server).get("hosts")))
        if any(hosts.matches(a, b) for a in offered for b in wanted):
            return True
    return False


def _plain_hosts(entries: list[str]) -> list[str]:
    """Server hosts without their `namespace/` qualifier."""
    return [e.partition("/")[2] if "/" in e else e for e in entries]


CONFLICTING_GATEWAY = Analyzer(
    "gateway.ConflictingGatewayAnalyzer",
    "Checks that Gateways on the same workload do not claim the same port and host",
    _conflicts,
)


# --- credentials ------------------------------------------------------------------------------------


def _secrets(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    for gateway in ctx.of_kind("Gateway"):
        pods = ctx.inventory.pods_matching(gateway_selector(gateway))
        if not pods:
            yield _selector_not_found(ctx, gateway)
            continue
        namespace = pods[0].namespace  # credentials live with the gateway workload, not the Gateway
        for i, server in enumerate(items(gateway.spec.get("servers"))):
            name = text(mapping(mapping(server).get("tls")).get("credentialName"))
            if not name:
                continue
            path: Path = ("spec", "servers", i, "tls", "credentialName")
            secret_ns, _, secret_name = name.rpartition("/")
            secret = ctx.find("Secret", secret_ns or namespace, secret_name, CORE)
            if secret is None:
                known = [s.name for s in ctx.of_kind("Secret", CORE) if s.namespace == namespace]
                yield finding(
                    msg.REFERENCED_RESOURCE_NOT_FOUND,
                    gateway,
                    "credentialName",
                    quoted(name),
                    path=path,
                    fix=f"{did_you_mean(name, known)}create Secret {name} in namespace {namespace} "
                    "(the gateway workload's namespace)",
                )
                continue
            problem = _credential_problem(secret, ctx)
            if problem:
                yield finding(
                    msg.INVALID_GATEWAY_CREDENTIAL,
                    gateway,
                    gateway.name,
                    namespace,
                    path=path,
                    fix=f"Secret {secret.full_name}: {problem}",
                )


def _credential_problem(secret: Resource, ctx: AnalysisContext) -> str:
    data = mapping(secret.data.get("data"))
    for cert_key, key_key in _CERT_KEYS:
        if text(data.get(cert_key)) and text(data.get(key_key)):
            try:
                pem = base64.b64decode(text(data[cert_key]), validate=True)
            except binascii.Error:
                return f"data.{cert_key} is not base64"
            problem = certificate_problem(pem, ctx.now)
            return f"data.{cert_key}: {problem}" if problem else ""
    return "needs data keys tls.crt and tls.key (or cert and key)"


SECRET = Analyzer(
    "gateway.SecretAnalyzer",
    "Checks that the Secrets Gateway servers reference exist and hold a valid certificate",
    _secrets,
)


def _duplicate_certificates(ctx: AnalysisContext) -> Iterator[Diagnostic]:
    """One certificate on several Gateways of one workload: HTTP/2 connection reuse then sends
    requests for one host to the other Gateway's routes (404)."""
    gateways = ctx.of_kind("Gateway")
    for gateway in gateways:
        selector = gateway_selector(gateway)
        for other in gateways:
            if other is gateway or not _selector_subset(selector, gateway_selector(other)):
                continue
            for server in items(gateway.spec.get("servers")):
                for other_server in items(other.spec.get("servers")):
                    tls, other_tls = mapping(server).get("tls"), mapping(other_server).get("tls")
                    if (
                        isinstance(tls, dict)
                        and isinstance(other_tls, dict)
                        and _same_certificate(tls, other_tls)
                    ):
                        yield finding(
                            msg.GATEWAY_DUPLICATE_CERTIFICATE,
                            gateway,
                            f"[{gateway.full_name} {other.full_name}]",
                            path=("metadata", "name"),
                            fix="serve both hosts from one Gateway server, or give each its own certificate",
                        )


def _selector_subset(selector: Mapping[str, str], other: Mapping[str, str]) -> bool:
    """Istio's rule: an empty selector covers every gateway; else all its labels are in `other`."""
    return all(other.get(k) == v for k, v in selector.items())


def _same_certificate(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    name_a, name_b = text(a.get("credentialName")), text(b.get("credentialName"))
    if name_a or name_b:
        return bool(name_a and name_b) and name_a == name_b
    cert_a, cert_b = text(a.get("serverCertificate")), text(b.get("serverCertificate"))
    key_a, key_b = text(a.get("privateKey")), text(b.get("privateKey"))
    return bool(cert_a and cert_a == cert_b and key_a and key_a == key_b)


CERTIFICATE = Analyzer(
    "gateway.CertificateAnalyzer",
    "Checks that Gateways of one workload do not share a certificate",
    _duplicate_certificates,
)
