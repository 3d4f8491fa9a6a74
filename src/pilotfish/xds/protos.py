"""The Envoy v3 protobuf modules pilotfish uses, imported in one place, and small constructors.

Importing every `typed_config` message module here registers its type in the default descriptor
pool, which `google.protobuf.json_format` needs to render `Any` fields (config dumps, goldens).
"""

from __future__ import annotations

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2  # noqa: F401  (registers types)
from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    config_source_pb2,
    protocol_pb2,
    substitution_format_string_pb2,
)
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import (  # noqa: F401  (registers the type)
    downstream_connections_pb2,
)
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2, wrappers_pb2
from google.protobuf.message import Message

from pilotfish.config.types import Duration

__all__ = [
    "accesslog_pb2",
    "address_pb2",
    "base_pb2",
    "circuit_breaker_pb2",
    "cluster_pb2",
    "common_pb2",
    "config_source_pb2",
    "cors_pb2",
    "endpoint_components_pb2",
    "endpoint_pb2",
    "fault_pb2",
    "file_pb2",
    "http_connection_manager_pb2",
    "http_inspector_pb2",
    "http_protocol_options_pb2",
    "listener_components_pb2",
    "listener_pb2",
    "original_dst_pb2",
    "outlier_detection_pb2",
    "percent_pb2",
    "previous_hosts_pb2",
    "protocol_pb2",
    "regex_pb2",
    "route_components_pb2",
    "route_pb2",
    "router_pb2",
    "stream_pb2",
    "string_pb2",
    "struct_pb2",
    "substitution_format_string_pb2",
    "tcp_proxy_pb2",
    "tls_inspector_pb2",
    "tls_pb2",
    "wrappers_pb2",
]

# Filter names (v3), istio-reference.md §0.
HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"
ROUTER = "envoy.filters.http.router"
FAULT = "envoy.filters.http.fault"
CORS = "envoy.filters.http.cors"
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
TLS_TRANSPORT = "envoy.transport_sockets.tls"


def pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def duration(value: Duration | float | int) -> duration_pb2.Duration:
    """A protobuf Duration from our `Duration` or from seconds."""
    if isinstance(value, Duration):
        seconds, nanos = value.split()
    else:
        seconds = int(value)
        nanos = round((value - seconds) * 1e9)
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


ZERO = duration_pb2.Duration()


def u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def ads_source(initial_fetch_timeout_zero: bool = True) -> config_source_pb2.ConfigSource:
    """`{ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}` as Istio sets it."""
    source = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )
    if initial_fetch_timeout_zero:
        source.initial_fetch_timeout.CopyFrom(ZERO)
    return source


ADS_SOURCE = ads_source()
"""The config source of every EDS cluster and RDS listener: prebuilt, copied (never mutate it)."""


def socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def cidr(prefix: str) -> address_pb2.CidrRange:
    """`10.44.0.5` -> 10.44.0.5/32; `10.0.0.0/8` as given."""
    address, _, length = prefix.partition("/")
    if not length:
        length = "128" if ":" in address else "32"
    return address_pb2.CidrRange(
        address_prefix=address, prefix_len=wrappers_pb2.UInt32Value(value=int(length))
    )


def fraction(percent: float) -> percent_pb2.FractionalPercent:
    """A percentage as Istio encodes it: `value * 10000` out of a MILLION."""
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def network_filter(name: str, message: Message) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(name=name, typed_config=pack(message))


def listener_filter(name: str, message: Message) -> listener_components_pb2.ListenerFilter:
    return listener_components_pb2.ListenerFilter(name=name, typed_config=pack(message))


def http_filter(name: str, message: Message) -> http_connection_manager_pb2.HttpFilter:
    return http_connection_manager_pb2.HttpFilter(name=name, typed_config=pack(message))


def istio_metadata(config_path: str) -> base_pb2.Metadata:
    """`filter_metadata.istio.config = <path of the Istio object>`: lets istioctl name the source."""
    metadata = base_pb2.Metadata()
    metadata.filter_metadata["istio"].fields["config"].string_value = config_path  # not update(): 3x faster
    return metadata
