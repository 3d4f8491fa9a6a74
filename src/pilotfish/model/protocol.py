"""Port protocols: Istio's protocol selection from port names and appProtocol (istio-reference.md §2)."""

from __future__ import annotations

import enum


class Protocol(enum.StrEnum):
    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    UDP = "UDP"
    MONGO = "Mongo"
    REDIS = "Redis"
    MYSQL = "MySQL"
    UNSUPPORTED = "UnsupportedProtocol"

    @property
    def is_http(self) -> bool:
        return self in _HTTP

    @property
    def is_http2(self) -> bool:
        return self in (Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB)

    @property
    def is_tcp(self) -> bool:
        return self in _TCP

    @property
    def is_tls(self) -> bool:
        return self in (Protocol.HTTPS, Protocol.TLS)


_HTTP = frozenset({Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB})
_TCP = frozenset({Protocol.TCP, Protocol.HTTPS, Protocol.TLS, Protocol.MONGO, Protocol.REDIS, Protocol.MYSQL})

_BY_NAME = {
    "tcp": Protocol.TCP,
    "udp": Protocol.UDP,
    "grpc": Protocol.GRPC,
    "grpc-web": Protocol.GRPC_WEB,
    "http": Protocol.HTTP,
    "http2": Protocol.HTTP2,
    "https": Protocol.HTTPS,
    "tls": Protocol.TLS,
    "mongo": Protocol.MONGO,
    "redis": Protocol.REDIS,
    "mysql": Protocol.MYSQL,
}

_APP_PROTOCOL_SPECIAL = {
    "kubernetes.io/h2c": Protocol.HTTP2,
    "kubernetes.io/ws": Protocol.HTTP,
    "kubernetes.io/wss": Protocol.HTTPS,
}

_WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})


def parse_protocol(text: str) -> Protocol:
    """Istio's `protocol.Parse`: case-insensitive name -> protocol, else UnsupportedProtocol."""
    return _BY_NAME.get(text.lower(), Protocol.UNSUPPORTED)


def protocol_of_port(name: str, app_protocol: str = "", k8s_protocol: str = "TCP", port: int = 0) -> Protocol:
    """Istio's `ConvertProtocol` for a Kubernetes Service port (appProtocol wins, then the name prefix)."""
    if k8s_protocol.upper() == "UDP":
        return Protocol.UDP
    if app_protocol:
        special = _APP_PROTOCOL_SPECIAL.get(app_protocol.lower())
        result = special if special is not None else parse_protocol(app_protocol)
    elif name.lower().startswith("grpc-web"):
        result = Protocol.GRPC_WEB
    else:
        result = parse_protocol(name.split("-", 1)[0])
    if result is Protocol.UNSUPPORTED and port in _WELL_KNOWN_TCP_PORTS:
        return Protocol.TCP
    return result
