"""DestinationRule traffic policy: merging (top level, port level, subset) and applying it to a cluster.

Istio 1.3 semantics (istio-reference.md §5.5): the top-level `trafficPolicy` applies first; a
`portLevelSettings` entry for the cluster's port replaces connectionPool, outlierDetection,
loadBalancer and tls as a whole; a subset's own policy (with its own port-level settings) is then
laid over that. Only positive connection-pool values override Envoy's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilotfish.config import istio
from pilotfish.xds.protos import (
    HTTP_PROTOCOL_OPTIONS,
    TLS_TRANSPORT,
    base_pb2,
    circuit_breaker_pb2,
    cluster_pb2,
    common_pb2,
    duration,
    http_protocol_options_pb2,
    pack,
    protocol_pb2,
    string_pb2,
    tls_pb2,
)


@dataclass(frozen=True, slots=True)
class Policy:
    """The four policy sections after merging; None = not set."""

    load_balancer: istio.LoadBalancerSettings | None = None
    connection_pool: istio.ConnectionPoolSettings | None = None
    outlier_detection: istio.OutlierDetection | None = None
    tls: istio.ClientTLSSettings | None = None

    def over(self, other: Policy) -> Policy:
        """`self` laid over `other`: each section set in `self` wins."""
        return Policy(
            self.load_balancer or other.load_balancer,
            self.connection_pool or other.connection_pool,
            self.outlier_detection or other.outlier_detection,
            self.tls or other.tls,
        )


def _from(policy: istio.TrafficPolicy | istio.PortTrafficPolicy | None) -> Policy:
    if policy is None:
        return Policy()
    return Policy(policy.load_balancer, policy.connection_pool, policy.outlier_detection, policy.tls)


def _for_port(policy: istio.TrafficPolicy | None, port: int) -> Policy:
    base = _from(policy)
    if policy is None:
        return base
    for entry in policy.port_level_settings:
        if entry.port is not None and entry.port.number == port:
            return _from(entry)  # the whole port-level block replaces the top level
    return base


def effective_policy(rule: istio.DestinationRuleSpec | None, port: int, subset: str = "") -> Policy:
    if rule is None:
        return Policy()
    policy = _for_port(rule.traffic_policy, port)
    if subset:
        for entry in rule.subsets:
            if entry.name == subset and entry.traffic_policy is not None:
                policy = _for_port(entry.traffic_policy, port).over(policy)
    return policy


# --- applying ---------------------------------------------------------------------------------------

_SIMPLE_LB = {
    istio.SimpleLB.ROUND_ROBIN: cluster_pb2.Cluster.ROUND_ROBIN,
    istio.SimpleLB.LEAST_CONN: cluster_pb2.Cluster.LEAST_REQUEST,
    istio.SimpleLB.LEAST_REQUEST: cluster_pb2.Cluster.LEAST_REQUEST,
    istio.SimpleLB.RANDOM: cluster_pb2.Cluster.RANDOM,
}


def apply_load_balancer(cluster: cluster_pb2.Cluster, lb: istio.LoadBalancerSettings | None) -> None:
    if lb is None:
        return
    if lb.consistent_hash is not None:
        cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
        ring = lb.consistent_hash.minimum_ring_size or 1024
        cluster.ring_hash_lb_config.minimum_ring_size.value = ring
    elif lb.simple is istio.SimpleLB.PASSTHROUGH:
        cluster.type = cluster_pb2.Cluster.ORIGINAL_DST
        cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
        cluster.ClearField("eds_cluster_config")
        cluster.ClearField("load_assignment")
    elif lb.simple in _SIMPLE_LB:
        cluster.lb_policy = _SIMPLE_LB[lb.simple]


def apply_connection_pool(cluster: cluster_pb2.Cluster, pool: istio.ConnectionPoolSettings | None) -> None:
    if pool is None:
        return
    threshold = cluster.circuit_breakers.thresholds[0] if cluster.circuit_breakers.thresholds else None
    if threshold is None:
        threshold = cluster.circuit_breakers.thresholds.add()
    if pool.tcp is not None:
        _apply_tcp(cluster, threshold, pool.tcp)
    if pool.http is not None:
        _apply_http(cluster, threshold, pool.http)


def _apply_tcp(
    cluster: cluster_pb2.Cluster,
    threshold: circuit_breaker_pb2.CircuitBreakers.Thresholds,
    tcp: istio.TCPSettings,
) -> None:
    if tcp.max_connections:
        threshold.max_connections.value = tcp.max_connections
    if tcp.connect_timeout is not None:
        cluster.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
    if tcp.tcp_keepalive is not None:
        keepalive = cluster.upstream_connection_options.tcp_keepalive
        if tcp.tcp_keepalive.probes:
            keepalive.keepalive_probes.value = tcp.tcp_keepalive.probes
        if tcp.tcp_keepalive.time is not None:
            keepalive.keepalive_time.value = int(tcp.tcp_keepalive.time.seconds)
        if tcp.tcp_keepalive.interval is not None:
            keepalive.keepalive_interval.value = int(tcp.tcp_keepalive.interval.seconds)


def _apply_http(
    cluster: cluster_pb2.Cluster,
    threshold: circuit_breaker_pb2.CircuitBreakers.Thresholds,
    http: istio.HTTPSettings,
) -> None:
    if http.http1_max_pending_requests:
        threshold.max_pending_requests.value = http.http1_max_pending_requests
    if http.http2_max_requests:
        threshold.max_requests.value = http.http2_max_requests
    if http.max_retries:
        threshold.max_retries.value = http.max_retries
    common = protocol_pb2.HttpProtocolOptions()
    if http.max_requests_per_connection:
        common.max_requests_per_connection.value = http.max_requests_per_connection
    if http.idle_timeout is not None:
        common.idle_timeout.CopyFrom(duration(http.idle_timeout))
    if common.ByteSize():
        options = http_protocol_options(cluster)
        options.common_http_protocol_options.CopyFrom(common)
        set_http_protocol_options(cluster, options)


def http_protocol_options(cluster: cluster_pb2.Cluster) -> http_protocol_options_pb2.HttpProtocolOptions:
    """The cluster's upstream HTTP options (typed extension), existing or new."""
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if HTTP_PROTOCOL_OPTIONS in cluster.typed_extension_protocol_options:
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Unpack(options)
    return options


def set_http_protocol_options(
    cluster: cluster_pb2.Cluster, options: http_protocol_options_pb2.HttpProtocolOptions
) -> None:
    if not options.HasField("upstream_http_protocol_options") and not options.HasField(
        "explicit_http_config"
    ):
        options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(options))


def apply_outlier_detection(
    cluster: cluster_pb2.Cluster, od: istio.OutlierDetection | None, modern: bool
) -> None:
    if od is None:
        return
    out = cluster.outlier_detection
    if od.consecutive_errors is not None:  # 1.3: counts gateway errors (502, 503, 504)
        out.consecutive_gateway_failure.value = od.consecutive_errors
        out.enforcing_consecutive_gateway_failure.value = 100
        out.enforcing_consecutive_5xx.value = 0
    if od.consecutive_5xx_errors is not None:
        out.consecutive_5xx.value = od.consecutive_5xx_errors
        out.enforcing_consecutive_5xx.value = 100 if od.consecutive_5xx_errors else 0
    if od.consecutive_gateway_errors is not None:
        out.consecutive_gateway_failure.value = od.consecutive_gateway_errors
        out.enforcing_consecutive_gateway_failure.value = 100 if od.consecutive_gateway_errors else 0
    if od.interval is not None:
        out.interval.CopyFrom(duration(od.interval))
    if od.base_ejection_time is not None:
        out.base_ejection_time.CopyFrom(duration(od.base_ejection_time))
    if od.max_ejection_percent:
        out.max_ejection_percent.value = od.max_ejection_percent
    if modern:
        out.enforcing_success_rate.value = 0
    # Istio emits minHealthPercent even when unset (0), which disables Envoy's panic mode.
    cluster.common_lb_config.healthy_panic_threshold.value = float(od.min_health_percent or 0)
    if not modern:
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()


def apply_tls(cluster: cluster_pb2.Cluster, tls: istio.ClientTLSSettings | None, http2: bool) -> None:
    """SIMPLE / MUTUAL origination with certificate files. ISTIO_MUTUAL needs a CA pilotfish does
    not have: the mesh builder warns about it and the cluster stays plaintext."""
    if tls is None or tls.mode not in (istio.TLSMode.SIMPLE, istio.TLSMode.MUTUAL):
        return
    context = tls_pb2.UpstreamTlsContext(sni=tls.sni)
    common = context.common_tls_context
    if http2:
        common.alpn_protocols.append("h2")
    if tls.ca_certificates:
        validation = common.validation_context
        validation.trusted_ca.filename = tls.ca_certificates
        for san in tls.subject_alt_names:
            validation.match_typed_subject_alt_names.add(
                san_type=common_pb2.SubjectAltNameMatcher.DNS, matcher=string_pb2.StringMatcher(exact=san)
            )
    if tls.mode is istio.TLSMode.MUTUAL:
        certificate = common.tls_certificates.add()
        certificate.certificate_chain.filename = tls.client_certificate
        certificate.private_key.filename = tls.private_key
    cluster.transport_socket.CopyFrom(
        base_pb2.TransportSocket(name=TLS_TRANSPORT, typed_config=pack(context))
    )
