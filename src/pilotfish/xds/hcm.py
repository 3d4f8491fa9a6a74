"""The HTTP connection manager as Istio configures it for outbound, inbound and gateway listeners
(istio-reference.md §3.4, §3.6, §7.1), with its HTTP filter chain listed explicitly."""

from __future__ import annotations

import enum
from typing import TypeAlias

from pilotfish.config.meshconfig import MeshConfig, Profile
from pilotfish.xds.accesslog import access_logs
from pilotfish.xds.protos import (
    CORS,
    FAULT,
    HCM,
    ROUTER,
    ZERO,
    ads_source,
    cors_pb2,
    fault_pb2,
    http_connection_manager_pb2,
    http_filter,
    listener_components_pb2,
    network_filter,
    route_pb2,
    router_pb2,
)

Manager: TypeAlias = http_connection_manager_pb2.HttpConnectionManager


class Side(enum.Enum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"
    GATEWAY = "gateway"


def http_filters(profile: Profile) -> list[http_connection_manager_pb2.HttpFilter]:
    """1.3: cors, fault, router. Modern: fault, cors, router."""
    cors = http_filter(CORS, cors_pb2.Cors())
    fault = http_filter(FAULT, fault_pb2.HTTPFault())
    router = http_filter(ROUTER, router_pb2.Router())
    return [fault, cors, router] if profile is Profile.MODERN else [cors, fault, router]


def connection_manager(
    mesh_config: MeshConfig,
    side: Side,
    stat_prefix: str,
    rds: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
    http2: bool = False,
) -> Manager:
    manager = Manager(codec_type=Manager.AUTO, stat_prefix=stat_prefix)
    if rds is not None:
        manager.rds.route_config_name = rds
        manager.rds.config_source.CopyFrom(ads_source())
    elif route_config is not None:
        manager.route_config.CopyFrom(route_config)
    manager.http_filters.extend(http_filters(mesh_config.profile))
    manager.stream_idle_timeout.CopyFrom(ZERO)
    manager.normalize_path.value = True
    manager.upgrade_configs.add(upgrade_type="websocket")
    manager.access_log.extend(access_logs(mesh_config))
    manager.use_remote_address.value = side is Side.GATEWAY
    if side is not Side.OUTBOUND:
        manager.server_name = "istio-envoy"
        details = manager.set_current_client_cert_details
        details.subject.value = True
        details.uri = True
        details.dns = True
        if side is Side.GATEWAY:
            manager.forward_client_cert_details = Manager.SANITIZE_SET
            details.cert = True
        else:
            manager.forward_client_cert_details = Manager.APPEND_FORWARD
    if http2:
        manager.http2_protocol_options.SetInParent()
    return manager


def hcm_filter(manager: Manager) -> listener_components_pb2.Filter:
    return network_filter(HCM, manager)
