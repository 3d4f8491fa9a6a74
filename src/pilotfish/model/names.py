"""The one place where pilotfish builds and parses every structured name (ARCHITECTURE.md principle 3).

Cluster keys, listener and route names, node ids and well-known ports follow Istio exactly
(istio-reference.md §0.1, §4.1, §5.1, §10.1), so that `pilotfish proxy-config` output reads like the
seed's `istioctl proxy-config`. Every other module imports these helpers instead of formatting strings.

Examples::

    >>> ClusterKey.outbound(9080, "reviews.default.svc.cluster.local", "v1").name
    'outbound|9080|v1|reviews.default.svc.cluster.local'
    >>> ClusterKey.parse("outbound|9080||reviews.default.svc.cluster.local").subset
    ''
    >>> NodeId.parse("sidecar~10.44.0.5~reviews-v1-abc.default~default.svc.cluster.local").pod_name
    'reviews-v1-abc'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# --- well-known ports and identities (istio-reference.md §0.1) -------------------------------------

OUTBOUND_CAPTURE_PORT = 15001
INBOUND_CAPTURE_PORT = 15006
ENVOY_ADMIN_PORT = 15000
PROMETHEUS_PORT = 15090
AGENT_STATUS_PORT = 15020
ENVOY_READINESS_PORT = 15021
PROXY_UID = 1337
PROXY_GID = 1337
INBOUND_PASSTHROUGH_SOURCE_V4 = "127.0.0.6"
INBOUND_PASSTHROUGH_SOURCE_V6 = "::6"

DEFAULT_DOMAIN_SUFFIX = "cluster.local"
ISTIO_SYSTEM_NAMESPACE = "istio-system"
MESH_GATEWAY = "mesh"
"""The pseudo-gateway name that means "all sidecars" in VirtualService `gateways`."""

# --- special clusters, listeners, virtual hosts ------------------------------------------------------

BLACKHOLE_CLUSTER = "BlackHoleCluster"
PASSTHROUGH_CLUSTER = "PassthroughCluster"
INBOUND_PASSTHROUGH_CLUSTER_V4 = "InboundPassthroughClusterIpv4"
INBOUND_PASSTHROUGH_CLUSTER_V6 = "InboundPassthroughClusterIpv6"
INBOUND_PASSTHROUGH_CLUSTER_MODERN = "InboundPassthroughCluster"

VIRTUAL_OUTBOUND_LISTENER = "virtualOutbound"
VIRTUAL_INBOUND_LISTENER = "virtualInbound"

ALLOW_ANY_VHOST = "allow_any"
BLOCK_ALL_VHOST = "block_all"
DEFAULT_ROUTE_NAME = "default"


class Direction(enum.StrEnum):
    """Traffic direction of a cluster key."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True)
class ClusterKey:
    """`<direction>|<port>|<subset>|<hostname>`: Istio's `BuildSubsetKey`.

    For inbound clusters the third field is the port *name* in Istio 1.3
    (`inbound|9080|http|reviews.default.svc.cluster.local`) and empty in modern Istio
    (`inbound|9080||`); `subset` holds whichever the profile uses.
    """

    direction: Direction
    port: int
    subset: str
    hostname: str

    @classmethod
    def outbound(cls, port: int, hostname: str, subset: str = "") -> ClusterKey:
        return cls(Direction.OUTBOUND, port, subset, hostname)

    @classmethod
    def inbound(cls, port: int, port_name: str = "", hostname: str = "") -> ClusterKey:
        return cls(Direction.INBOUND, port, port_name, hostname)

    @property
    def name(self) -> str:
        return f"{self.direction.value}|{self.port}|{self.subset}|{self.hostname}"

    @property
    def sni(self) -> str:
        """The DNS-SRV form `outbound_.<port>_.<subset>_.<hostname>` (default mTLS SNI)."""
        return f"{self.direction.value}_.{self.port}_.{self.subset}_.{self.hostname}"

    @classmethod
    def parse(cls, name: str) -> ClusterKey | None:
        """Parse either the `|` form or the SNI `_.` form; None if `name` is not a subset key."""
        if name.count("|") == 3:
            direction, port, subset, hostname = name.split("|")
        else:
            parts = name.split("_.", 3)
            if len(parts) != 4:
                return None
            direction, port, subset, hostname = parts
        if direction not in ("inbound", "outbound") or not port.isdigit():
            return None
        return cls(Direction(direction), int(port), subset, hostname)


def is_subset_key(name: str) -> bool:
    """Istio's rule: a cluster name is a subset key iff it has exactly three `|`."""
    return name.count("|") == 3


# --- hostnames -----------------------------------------------------------------------------------------


def service_fqdn(name: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    """`reviews` in `default` -> `reviews.default.svc.cluster.local`."""
    return f"{name}.{namespace}.svc.{domain_suffix}"


def namespace_dns_domain(namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    """The 4th field of a node id: `default.svc.cluster.local`."""
    return f"{namespace}.svc.{domain_suffix}"


def resolve_short_host(host: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    """Resolve a VirtualService/DestinationRule host the way Istio does.

    A name without dots (`reviews`) is relative to the config's namespace; wildcards and names with
    dots are taken as given.
    """
    if "." in host or host.startswith("*"):
        return host
    return service_fqdn(host, namespace, domain_suffix)


# --- listeners and routes ---------------------------------------------------------------------------


def listener_name(bind: str, port: int) -> str:
    """`0.0.0.0_9080`, `10.96.0.10_53`."""
    return f"{bind}_{port}"


def outbound_http_route_name(port: int) -> str:
    """Sidecar outbound HTTP listeners on the wildcard address use RDS named after the port."""
    return str(port)


def sniffed_route_name(hostname: str, port: int) -> str:
    """Sidecar outbound listeners on a service VIP with protocol sniffing use `<fqdn>:<port>`."""
    return f"{hostname}:{port}"


def gateway_http_route_name(port: int, bind: str = "") -> str:
    """Gateway plain-HTTP servers: `http.<port>` (modern adds `.<bind>`)."""
    return f"http.{port}" + (f".{bind}" if bind else "")


def gateway_https_route_name(port: int, port_name: str, gateway_name: str, gateway_namespace: str) -> str:
    """Gateway TLS-terminated servers: `https.<port>.<portName>.<gwName>.<gwNamespace>`."""
    return f"https.{port}.{port_name}.{gateway_name}.{gateway_namespace}"


def vhost_name(host: str, port: int) -> str:
    """`reviews.default.svc.cluster.local:9080`; also `*:80` on gateways."""
    return f"{host}:{port}"


def inbound_vhost_name(port_name: str, port: int) -> str:
    """The 1.3 inbound inline route's virtual host: `inbound|http|9080`."""
    return f"inbound|{port_name}|{port}"


# --- node ids (istio-reference.md §10.1) --------------------------------------------------------------


class ProxyType(enum.StrEnum):
    SIDECAR = "sidecar"
    ROUTER = "router"


@dataclass(frozen=True, slots=True)
class NodeId:
    """`<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>`."""

    proxy_type: ProxyType
    ip: str
    pod_name: str
    namespace: str
    dns_domain: str

    @classmethod
    def for_pod(
        cls,
        proxy_type: ProxyType,
        ip: str,
        pod_name: str,
        namespace: str,
        domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
    ) -> NodeId:
        return cls(proxy_type, ip, pod_name, namespace, namespace_dns_domain(namespace, domain_suffix))

    @property
    def proxy_id(self) -> str:
        """`<pod>.<namespace>`: how istioctl names a proxy."""
        return f"{self.pod_name}.{self.namespace}"

    def __str__(self) -> str:
        return f"{self.proxy_type.value}~{self.ip}~{self.proxy_id}~{self.dns_domain}"

    @classmethod
    def parse(cls, text: str) -> NodeId:
        """Parse a node id; raises ValueError with the reason when it is malformed."""
        parts = text.split("~")
        if len(parts) != 4:
            raise ValueError(f"node id {text!r} must have 4 '~'-separated parts (type~ip~pod.ns~domain)")
        kind, ip, proxy_id, domain = parts
        try:
            proxy_type = ProxyType(kind)
        except ValueError:
            raise ValueError(f"node id {text!r}: unknown proxy type {kind!r} (sidecar or router)") from None
        pod, dot, namespace = proxy_id.rpartition(".")
        if not dot or not pod or not namespace:
            raise ValueError(f"node id {text!r}: third part {proxy_id!r} must be <pod>.<namespace>")
        return cls(proxy_type, ip, pod, namespace, domain)


def split_pod_ref(ref: str, default_namespace: str = "default") -> tuple[str, str]:
    """`productpage-v1-abc.default` or `productpage-v1-abc` (+ `-n`) -> (pod, namespace)."""
    pod, dot, namespace = ref.partition(".")
    return (pod, namespace) if dot and namespace else (ref, default_namespace)


# --- bootstrap: static clusters and node metadata (istio-reference.md §10.2) ------------------------

XDS_CLUSTER = "xds-grpc"
"""The bootstrap's static cluster that carries ADS to the discovery server."""
PROMETHEUS_STATS_CLUSTER = "prometheus_stats"
"""The bootstrap's static cluster pointing at Envoy's own admin (serves 15090 and 15021)."""
DEFAULT_CLUSTER_ID = "Kubernetes"


class NodeMeta(enum.StrEnum):
    """Keys of the Envoy node metadata that `pilotfish agent` sends (modern Istio's NodeMetadata names).

    The discovery server reads these from the first xDS request to build the `Proxy`.
    """

    ISTIO_VERSION = "ISTIO_VERSION"
    """The pilotfish version of the agent (istioctl shows it as the proxy version)."""
    NAMESPACE = "NAMESPACE"
    CONFIG_NAMESPACE = "CONFIG_NAMESPACE"
    POD_NAME = "POD_NAME"
    LABELS = "LABELS"
    """A JSON object (protobuf Struct) of the pod's labels."""
    INSTANCE_IPS = "INSTANCE_IPS"
    """Comma-separated pod IPs; the first is the node id's IP."""
    SERVICE_ACCOUNT = "SERVICE_ACCOUNT"
    INTERCEPTION_MODE = "INTERCEPTION_MODE"
    """REDIRECT, TPROXY or NONE; sent for sidecars only."""
    CLUSTER_ID = "CLUSTER_ID"
    POD_PORTS = "POD_PORTS"
    """A JSON *string* `[{"containerPort": 9080, "protocol": "TCP"}]`, as Istio's ISTIO_META_POD_PORTS."""
