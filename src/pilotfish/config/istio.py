"""Strict models of the Istio networking fields pilotfish implements (networking.istio.io, all versions).

Each model lists exactly the fields we translate. A valid Istio field that is missing here is
reported as "not supported yet" by the loader (it knows Istio's full field list), so nothing is
ever dropped silently. Cross-field rules that Istio's webhook enforces (weights summing to 100,
exactly one of exact/prefix/regex, ...) are model validators here.
"""

from __future__ import annotations

import enum
from typing import Annotated, Self

from pydantic import Field, model_validator

from pilotfish.config.types import (
    DurationField,
    Labels,
    Lax,
    NonNegativeInt,
    Percent,
    PortNumber,
    PositiveDuration,
    Regex,
    Strict,
    UInt32,
    Weight,
)

# --- shared ---------------------------------------------------------------------------------------


class StringMatch(Strict):
    """Exactly one of exact, prefix, regex."""

    exact: str | None = None
    prefix: str | None = None
    regex: Regex | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if sum(v is not None for v in (self.exact, self.prefix, self.regex)) != 1:
            raise ValueError("set exactly one of exact, prefix, regex")
        return self


class PortSelector(Strict):
    number: PortNumber


class Destination(Strict):
    host: str = Field(min_length=1)
    subset: str = ""
    port: PortSelector | None = None


class WorkloadSelector(Strict):
    """Sidecar's selector: `labels`."""

    labels: Labels = Field(default_factory=dict)


class MatchLabelsSelector(Strict):
    """DestinationRule's selector (istio.type.v1beta1.WorkloadSelector): `matchLabels`."""

    match_labels: Labels = Field(default_factory=dict)


class Percentage(Strict):
    value: Percent


# --- VirtualService -------------------------------------------------------------------------------


class HTTPMatchRequest(Strict):
    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    port: PortNumber | None = None
    source_labels: Labels = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    query_params: dict[str, StringMatch] = Field(default_factory=dict)
    ignore_uri_case: bool = False
    without_headers: dict[str, StringMatch] = Field(default_factory=dict)
    source_namespace: str = ""


class HeaderOperations(Strict):
    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class Headers(Strict):
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class HTTPRouteDestination(Strict):
    destination: Destination
    weight: Weight | None = None
    headers: Headers | None = None


class HTTPRedirect(Strict):
    uri: str = ""
    authority: str = ""
    port: PortNumber | None = None
    scheme: str = ""
    redirect_code: int = 301

    @model_validator(mode="after")
    def _code(self) -> Self:
        if self.redirect_code not in (301, 302, 303, 307, 308):
            raise ValueError("redirectCode must be one of 301, 302, 303, 307, 308")
        return self


class HTTPDirectResponse(Strict):
    status: int = Field(ge=200, le=599)
    body: dict[str, str] | None = None


class HTTPRewrite(Strict):
    uri: str = ""
    authority: str = ""


class HTTPRetry(Strict):
    attempts: NonNegativeInt = 0
    per_try_timeout: PositiveDuration | None = None
    retry_on: str = ""
    retry_remote_localities: bool | None = None


class FaultDelay(Strict):
    fixed_delay: PositiveDuration
    percentage: Percentage | None = None
    percent: Weight | None = None


class FaultAbort(Strict):
    http_status: int = Field(ge=200, le=599)
    percentage: Percentage | None = None


class HTTPFaultInjection(Strict):
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None

    @model_validator(mode="after")
    def _some(self) -> Self:
        if self.delay is None and self.abort is None:
            raise ValueError("fault needs a delay or an abort")
        return self


class CorsPolicy(Strict):
    allow_origin: list[str] = Field(default_factory=list)
    allow_origins: list[StringMatch] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: DurationField | None = None
    allow_credentials: bool | None = None


class HTTPRoute(Strict):
    name: str = ""
    match: list[HTTPMatchRequest] = Field(default_factory=list)
    route: list[HTTPRouteDestination] = Field(default_factory=list)
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    rewrite: HTTPRewrite | None = None
    timeout: DurationField | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirror_percent: Weight | None = None
    mirror_percentage: Percentage | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None

    @model_validator(mode="after")
    def _action(self) -> Self:
        actions = [
            n
            for n, v in (
                ("route", self.route),
                ("redirect", self.redirect),
                ("directResponse", self.direct_response),
            )
            if v
        ]
        if len(actions) != 1:
            raise ValueError(
                "an HTTP route needs exactly one of route, redirect, directResponse"
                + (f" (has {', '.join(actions)})" if actions else "")
            )
        if self.rewrite is not None and not self.route:
            raise ValueError("rewrite can only be used with route")
        _check_weights([d.weight for d in self.route])
        return self


class L4MatchAttributes(Strict):
    destination_subnets: list[str] = Field(default_factory=list)
    port: PortNumber | None = None
    source_labels: Labels = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    source_namespace: str = ""


class TLSMatchAttributes(Strict):
    sni_hosts: list[str] = Field(min_length=1)
    destination_subnets: list[str] = Field(default_factory=list)
    port: PortNumber | None = None
    source_labels: Labels = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    source_namespace: str = ""


class RouteDestination(Strict):
    destination: Destination
    weight: Weight | None = None


class TCPRoute(Strict):
    match: list[L4MatchAttributes] = Field(default_factory=list)
    route: list[RouteDestination] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights(self) -> Self:
        _check_weights([d.weight for d in self.route])
        return self


class TLSRoute(Strict):
    match: list[TLSMatchAttributes] = Field(min_length=1)
    route: list[RouteDestination] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights(self) -> Self:
        _check_weights([d.weight for d in self.route])
        return self


class VirtualServiceSpec(Strict):
    hosts: list[str] = Field(default_factory=list)
    gateways: list[str] = Field(default_factory=list)
    http: list[HTTPRoute] = Field(default_factory=list)
    tcp: list[TCPRoute] = Field(default_factory=list)
    tls: list[TLSRoute] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _hosts(self) -> Self:
        if not self.hosts:
            raise ValueError("hosts: a VirtualService needs at least one host")
        if not (self.http or self.tcp or self.tls):
            raise ValueError("a VirtualService needs at least one http, tcp or tls route")
        return self


def _check_weights(weights: list[int | None]) -> None:
    """Istio's webhook rule: with more than one destination, the weights must add up to 100."""
    if len(weights) > 1 or any(w is not None for w in weights):
        total = sum(w or 0 for w in weights)
        if len(weights) > 1 and total != 100:
            raise ValueError(f"total destination weight {total} != 100")


# --- DestinationRule ------------------------------------------------------------------------------


class SimpleLB(enum.StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_CONN = "LEAST_CONN"
    LEAST_REQUEST = "LEAST_REQUEST"
    RANDOM = "RANDOM"
    PASSTHROUGH = "PASSTHROUGH"


class HTTPCookie(Strict):
    name: str = Field(min_length=1)
    path: str = ""
    ttl: DurationField | None = None


class ConsistentHash(Strict):
    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    minimum_ring_size: UInt32 | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        keys = (self.http_header_name, self.http_cookie, self.use_source_ip, self.http_query_parameter_name)
        if sum(k is not None for k in keys) != 1:
            raise ValueError(
                "set exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName"
            )
        return self


class LoadBalancerSettings(Strict):
    simple: Annotated[SimpleLB, Lax] | None = None
    consistent_hash: ConsistentHash | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.simple is None) == (self.consistent_hash is None):
            raise ValueError("set exactly one of simple, consistentHash")
        return self


class TcpKeepalive(Strict):
    probes: UInt32 | None = None
    time: DurationField | None = None
    interval: DurationField | None = None


class TCPSettings(Strict):
    max_connections: NonNegativeInt | None = None
    connect_timeout: PositiveDuration | None = None
    tcp_keepalive: TcpKeepalive | None = None


class H2UpgradePolicy(enum.StrEnum):
    DEFAULT = "DEFAULT"
    DO_NOT_UPGRADE = "DO_NOT_UPGRADE"
    UPGRADE = "UPGRADE"


class HTTPSettings(Strict):
    http1_max_pending_requests: NonNegativeInt | None = Field(default=None, alias="http1MaxPendingRequests")
    http2_max_requests: NonNegativeInt | None = Field(default=None, alias="http2MaxRequests")
    max_requests_per_connection: NonNegativeInt | None = None
    max_retries: NonNegativeInt | None = None
    idle_timeout: PositiveDuration | None = None
    h2_upgrade_policy: Annotated[H2UpgradePolicy, Lax] | None = Field(default=None, alias="h2UpgradePolicy")


class ConnectionPoolSettings(Strict):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(Strict):
    consecutive_errors: NonNegativeInt | None = None
    consecutive_5xx_errors: NonNegativeInt | None = Field(default=None, alias="consecutive5xxErrors")
    consecutive_gateway_errors: NonNegativeInt | None = None
    interval: PositiveDuration | None = None
    base_ejection_time: PositiveDuration | None = None
    max_ejection_percent: Weight | None = None
    min_health_percent: Weight | None = None


class TLSMode(enum.StrEnum):
    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


class ClientTLSSettings(Strict):
    mode: Annotated[TLSMode, Lax] = TLSMode.DISABLE
    client_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    subject_alt_names: list[str] = Field(default_factory=list)
    sni: str = ""

    @model_validator(mode="after")
    def _mutual(self) -> Self:
        if self.mode is TLSMode.MUTUAL and not (self.client_certificate and self.private_key):
            raise ValueError("mode MUTUAL needs clientCertificate and privateKey")
        return self


class PortTrafficPolicy(Strict):
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TrafficPolicy(Strict):
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: list[PortTrafficPolicy] = Field(default_factory=list)


class Subset(Strict):
    name: str = Field(min_length=1)
    labels: Labels = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class DestinationRuleSpec(Strict):
    host: str = Field(min_length=1)
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
    workload_selector: MatchLabelsSelector | None = None

    @model_validator(mode="after")
    def _unique_subsets(self) -> Self:
        names = [s.name for s in self.subsets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate subset names: {', '.join(duplicates)}")
        return self


# --- Gateway --------------------------------------------------------------------------------------


class ServerProtocol(enum.StrEnum):
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    GRPC = "GRPC"
    HTTP2 = "HTTP2"
    MONGO = "MONGO"
    TCP = "TCP"
    TLS = "TLS"


class ServerTLSMode(enum.StrEnum):
    PASSTHROUGH = "PASSTHROUGH"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    AUTO_PASSTHROUGH = "AUTO_PASSTHROUGH"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"
    OPTIONAL_MUTUAL = "OPTIONAL_MUTUAL"


class ServerPort(Strict):
    number: PortNumber
    protocol: str = Field(min_length=1)
    name: str = ""
    target_port: PortNumber | None = None

    @model_validator(mode="after")
    def _protocol(self) -> Self:
        if self.protocol.upper() not in ServerProtocol.__members__:
            valid = ", ".join(ServerProtocol.__members__)
            raise ValueError(f"unknown protocol {self.protocol!r} (one of {valid})")
        return self


class ServerTLSSettings(Strict):
    https_redirect: bool = False
    mode: Annotated[ServerTLSMode, Lax] = ServerTLSMode.SIMPLE
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    credential_name: str = ""
    subject_alt_names: list[str] = Field(default_factory=list)


class Server(Strict):
    port: ServerPort
    hosts: list[str] = Field(min_length=1)
    tls: ServerTLSSettings | None = None
    bind: str = ""
    name: str = ""
    default_endpoint: str = ""


class GatewaySpec(Strict):
    selector: Labels = Field(default_factory=dict)
    servers: list[Server] = Field(min_length=1)


# --- ServiceEntry ---------------------------------------------------------------------------------


class Location(enum.StrEnum):
    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


class Resolution(enum.StrEnum):
    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"


class ServiceEntryPort(Strict):
    number: PortNumber
    protocol: str = ""
    name: str = Field(min_length=1)
    target_port: PortNumber | None = None


class WorkloadEntrySpec(Strict):
    address: str = ""
    ports: dict[str, PortNumber] = Field(default_factory=dict)
    labels: Labels = Field(default_factory=dict)
    network: str = ""
    locality: str = ""
    weight: UInt32 | None = None
    service_account: str = ""


class ServiceEntrySpec(Strict):
    hosts: list[str] = Field(min_length=1)
    addresses: list[str] = Field(default_factory=list)
    ports: list[ServiceEntryPort] = Field(default_factory=list)
    location: Annotated[Location, Lax] = Location.MESH_EXTERNAL
    resolution: Annotated[Resolution, Lax] = Resolution.NONE
    endpoints: list[WorkloadEntrySpec] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
    subject_alt_names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.resolution is Resolution.STATIC and not self.endpoints:
            raise ValueError("resolution STATIC needs endpoints")
        if self.resolution is Resolution.NONE and self.endpoints:
            raise ValueError("resolution NONE cannot have endpoints")
        names = [p.name for p in self.ports]
        if len(names) != len(set(names)):
            raise ValueError("port names must be unique")
        return self


# --- Sidecar --------------------------------------------------------------------------------------


class CaptureMode(enum.StrEnum):
    DEFAULT = "DEFAULT"
    IPTABLES = "IPTABLES"
    NONE = "NONE"


class SidecarPort(Strict):
    number: PortNumber
    protocol: str = ""
    name: str = ""


class IstioIngressListener(Strict):
    port: SidecarPort
    bind: str = ""
    capture_mode: Annotated[CaptureMode, Lax] = CaptureMode.DEFAULT
    default_endpoint: str = ""


class IstioEgressListener(Strict):
    port: SidecarPort | None = None
    bind: str = ""
    capture_mode: Annotated[CaptureMode, Lax] = CaptureMode.DEFAULT
    hosts: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _hosts(self) -> Self:
        for host in self.hosts:
            namespace, slash, name = host.partition("/")
            if not slash or not namespace or not name:
                raise ValueError(
                    f"egress host {host!r} must be <namespace>/<dnsName> (e.g. './*', 'istio-system/*')"
                )
        return self


class OutboundTrafficPolicyMode(enum.StrEnum):
    REGISTRY_ONLY = "REGISTRY_ONLY"
    ALLOW_ANY = "ALLOW_ANY"


class OutboundTrafficPolicy(Strict):
    mode: Annotated[OutboundTrafficPolicyMode, Lax] = OutboundTrafficPolicyMode.ALLOW_ANY


class SidecarSpec(Strict):
    workload_selector: WorkloadSelector | None = None
    ingress: list[IstioIngressListener] = Field(default_factory=list)
    egress: list[IstioEgressListener] = Field(default_factory=list)
    outbound_traffic_policy: OutboundTrafficPolicy | None = None

    @model_validator(mode="after")
    def _catch_all_last(self) -> Self:
        for i, listener in enumerate(self.egress[:-1]):
            if listener.port is None:
                raise ValueError(
                    f"egress[{i}]: an egress listener without a port (catch-all) must be the last one"
                )
        return self
