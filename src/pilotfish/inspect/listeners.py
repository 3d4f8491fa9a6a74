"""`proxy-config listener`: filter the dump's listeners and print istioctl's table or their JSON.

istioctl 1.3 prints one row per listener, `ADDRESS PORT TYPE`, in dump order, where TYPE is decided by the
*first* HTTP connection manager or TCP proxy met while scanning the chains (so a wildcard HTTP listener
whose first chain is the pod-IP blackhole TCP proxy reads `TCP`, as in the seed). Modern istioctl sorts
listeners by port, address and type, prints one row per filter chain with a MATCH description and a
DESTINATION (`ADDRESSES PORT MATCH DESTINATION`, tabwriter padding 1), and derives TYPE by counting
HTTP managers and non-blackhole TCP proxies (`HTTP`, `TCP`, `HTTP+TCP`, `UNKNOWN`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilotfish.inspect.configdump import ConfigDump, ConfigDumpError, JsonObject, get, get_list, get_obj
from pilotfish.inspect.profile import Profile
from pilotfish.inspect.protojson import normalize
from pilotfish.inspect.tabwriter import tabulate

LISTENER_TYPE = "envoy.config.listener.v3.Listener"
# Both the v3 names and the v2 names of Istio 1.3's Envoy are recognised, so either dump shape works.
HTTP_CONNECTION_MANAGER = frozenset(
    {"envoy.filters.network.http_connection_manager", "envoy.http_connection_manager"}
)
TCP_PROXY = frozenset({"envoy.filters.network.tcp_proxy", "envoy.tcp_proxy"})
BLACKHOLE_CLUSTER = "BlackHoleCluster"

# Application-protocol lists modern istioctl abbreviates in the MATCH column.
_APP_PROTOCOL_NAMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("App: HTTP TLS", ("http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2")),
    ("App: Istio HTTP Plain", ("istio", "istio-http/1.0", "istio-http/1.1", "istio-h2")),
    ("App: TCP TLS", ("istio-peer-exchange", "istio")),
    ("App: HTTP", ("http/1.0", "http/1.1", "h2c")),
)


@dataclass(frozen=True)
class ListenerFilter:
    """`--address`, `--port`, `--type`; `verbose` is modern istioctl's `--verbose` (default true)."""

    address: str = ""
    port: int = 0
    type: str = ""
    verbose: bool = True

    def is_empty(self) -> bool:
        return not self.address and not self.port and not self.type


def listener_address(listener: JsonObject) -> str:
    address = get_obj(listener, "address")
    socket = get(address, "socket_address")
    if isinstance(socket, dict):
        return str(get(socket, "address", ""))
    pipe = get(address, "pipe")
    if isinstance(pipe, dict):
        return str(get(pipe, "path", ""))
    return ""


def additional_addresses(listener: JsonObject) -> list[str]:
    out: list[str] = []
    for extra in get_list(listener, "additional_addresses"):
        socket = get_obj(get_obj(extra, "address"), "socket_address")
        out.append(str(get(socket, "address", "")))
    return out


def listener_port(listener: JsonObject) -> int:
    socket = get_obj(get_obj(listener, "address"), "socket_address")
    return _as_int(get(socket, "port_value", 0))


def filter_chains(listener: JsonObject, profile: Profile) -> list[JsonObject]:
    """The chains istioctl looks at: 1.3 predates `default_filter_chain`, modern appends it."""
    chains = [c for c in get_list(listener, "filter_chains") if isinstance(c, dict)]
    default = get(listener, "default_filter_chain")
    if profile == "modern" and isinstance(default, dict):
        chains.append(default)
    return chains


def listener_type(listener: JsonObject, profile: Profile) -> str:
    if profile == "1.3":
        for chain in filter_chains(listener, profile):
            for network_filter in get_list(chain, "filters"):
                name = get(network_filter, "name")
                if name in HTTP_CONNECTION_MANAGER:
                    return "HTTP"
                if name in TCP_PROXY:
                    return "TCP"
        return "UNKNOWN"
    n_http = n_tcp = 0
    for chain in filter_chains(listener, profile):
        for network_filter in get_list(chain, "filters"):
            name = get(network_filter, "name")
            if name in HTTP_CONNECTION_MANAGER:
                n_http += 1
            elif name in TCP_PROXY and not _mentions(get(network_filter, "typed_config"), BLACKHOLE_CLUSTER):
                n_tcp += 1
    if n_http:
        return "HTTP" if n_tcp == 0 else "HTTP+TCP"
    return "TCP" if n_tcp else "UNKNOWN"


def verify(flt: ListenerFilter, listener: JsonObject, profile: Profile) -> bool:
    """Whether a listener passes the filter (address and type compare case-insensitively)."""
    if flt.is_empty():
        return True
    if flt.address:
        candidates = [listener_address(listener)]
        if profile == "modern":
            candidates += additional_addresses(listener)
        if not any(candidate.lower() == flt.address.lower() for candidate in candidates):
            return False
    if flt.port and listener_port(listener) != flt.port:
        return False
    return not (flt.type and listener_type(listener, profile).lower() != flt.type.lower())


def selected(dump: ConfigDump, flt: ListenerFilter, profile: Profile) -> list[JsonObject]:
    """Matching listeners in istioctl's order (dump order for 1.3; port, address, type for modern)."""
    listeners = dump.listeners()
    if not listeners:
        raise ConfigDumpError("no listeners found")
    chosen = [listener for listener in listeners if verify(flt, listener, profile)]
    if profile == "modern":
        chosen.sort(
            key=lambda item: (listener_port(item), listener_address(item), listener_type(item, profile))
        )
    return chosen


def summary(dump: ConfigDump, flt: ListenerFilter, profile: Profile, *, name_column: bool = False) -> str:
    """The listener table; `name_column` adds modern `proxy-config all`'s `listener/<name>` column."""
    listeners = selected(dump, flt, profile)
    if profile == "1.3":
        rows = [["ADDRESS", "PORT", "TYPE"]]
        rows += [[listener_address(x), str(listener_port(x)), listener_type(x, profile)] for x in listeners]
        return tabulate(rows, padding=5)
    header = ["ADDRESSES", "PORT", *(["MATCH", "DESTINATION"] if flt.verbose else ["TYPE"])]
    rows = [["NAME", *header] if name_column else header]
    for listener in listeners:
        prefix = [f"listener/{get(listener, 'name', '')}"] if name_column else []
        addresses = ",".join([listener_address(listener), *additional_addresses(listener)])
        port = str(listener_port(listener))
        if not flt.verbose:
            rows.append([*prefix, addresses, port, listener_type(listener, profile)])
            continue
        chains = [
            (chain_match(chain), chain_destination(chain)) for chain in filter_chains(listener, profile)
        ]
        chains.sort(key=lambda chain: chain[1], reverse=True)
        rows += [[*prefix, addresses, port, match, destination] for match, destination in chains]
    return tabulate(rows, padding=1)


def objects(dump: ConfigDump, flt: ListenerFilter, profile: Profile) -> list[JsonObject]:
    """The matching Listener resources as istioctl's `-o json` prints them."""
    return [normalize(listener, LISTENER_TYPE) for listener in selected(dump, flt, profile)]


# ---------------------------------------------------------------- modern MATCH / DESTINATION


def chain_match(chain: JsonObject) -> str:
    """MATCH: `SNI: ..; Trans: ..; App: ..; Addr: ..`, or `ALL` when the chain matches everything."""
    match = get_obj(chain, "filter_chain_match")
    parts: list[str] = []
    server_names = [str(n) for n in get_list(match, "server_names")]
    if server_names:
        parts.append("SNI: " + ",".join(server_names))
    transport = get(match, "transport_protocol", "")
    if transport:
        parts.append(f"Trans: {transport}")
    protocols = tuple(str(p) for p in get_list(match, "application_protocols"))
    if protocols:
        named = next((name for name, known in _APP_PROTOCOL_NAMES if known == protocols), None)
        parts.append(named or "App: " + ",".join(protocols))
    port_value = get(match, "destination_port")
    port = f":{_as_int(_unwrap(port_value))}" if port_value is not None else ""
    prefixes = get_list(match, "prefix_ranges")
    if prefixes:
        ranges = [
            f"{get(p, 'address_prefix', '')}/{_as_int(_unwrap(get(p, 'prefix_len', 0)))}" for p in prefixes
        ]
        parts.append("Addr: " + ",".join(ranges) + port)
    elif port:
        parts.append(f"Addr: *{port}")
    return "; ".join(parts) if parts else "ALL"


def chain_destination(chain: JsonObject) -> str:
    """DESTINATION: the route or cluster a chain's HTTP manager or TCP proxy sends traffic to."""
    for network_filter in get_list(chain, "filters"):
        name = get(network_filter, "name")
        config = get_obj(network_filter, "typed_config")
        if name in HTTP_CONNECTION_MANAGER:
            route_config = get(config, "route_config")
            if isinstance(route_config, dict):
                return describe_route_config(route_config)
            rds_name = get(get_obj(config, "rds"), "route_config_name", "")
            return f"Route: {rds_name}" if rds_name else "HTTP"
        if name in TCP_PROXY and not _mentions(config, BLACKHOLE_CLUSTER):
            return cluster_destination(str(get(config, "cluster", "")))
    return "Non-HTTP/Non-TCP"


def cluster_destination(cluster: str) -> str:
    """Well-known clusters (`PassthroughCluster`, ...) print bare, others as `Cluster: <name>`."""
    return cluster if "Cluster" in cluster else f"Cluster: {cluster}"


def describe_route_config(route_config: JsonObject) -> str:
    everything = _match_all_cluster(route_config)
    if everything:
        return everything
    hosts: list[str] = []
    for vhost in get_list(route_config, "virtual_hosts"):
        domains = [str(d) for d in get_list(vhost, "domains")]
        described = "" if domains == ["*"] else "/".join(domains)
        routes = ", ".join(describe_match(get_obj(r, "match")) for r in get_list(vhost, "routes"))
        hosts.append(f"{described} {routes}" if described else routes)
    return "Inline Route: " + "; ".join(hosts)


def describe_match(match: JsonObject) -> str:
    """A route match as istioctl abbreviates it: `/prefix*`, `PathPrefix:/p`, `/exact`, `regex <re>`."""
    conditions: list[str] = []
    prefix = get(match, "prefix", "")
    if prefix:
        conditions.append(f"{prefix}*")
    separated = get(match, "path_separated_prefix", "")
    if separated:
        conditions.append(f"PathPrefix:{separated}")
    path = get(match, "path", "")
    if path:
        conditions.append(str(path))
    regex = get(match, "safe_regex")
    if isinstance(regex, dict):
        conditions.append(f"regex {get(regex, 'regex', '')}")
    return " ".join(conditions)


def _match_all_cluster(route_config: JsonObject) -> str:
    vhosts = get_list(route_config, "virtual_hosts")
    if len(vhosts) != 1 or get_list(vhosts[0], "domains") != ["*"]:
        return ""
    routes = get_list(vhosts[0], "routes")
    if len(routes) != 1 or get(get_obj(routes[0], "match"), "prefix") != "/":
        return ""
    action = get(routes[0], "route")
    if not isinstance(action, dict):
        return ""
    cluster = get(action, "cluster")
    return cluster_destination(cluster) if isinstance(cluster, str) else ""


def _mentions(value: Any, text: str) -> bool:
    """Whether any string inside `value` contains `text` (istioctl greps the serialized proto bytes)."""
    if isinstance(value, str):
        return text in value
    if isinstance(value, dict):
        return any(_mentions(item, text) for item in value.values())
    if isinstance(value, list):
        return any(_mentions(item, text) for item in value)
    return False


def _unwrap(value: Any) -> Any:
    """`UInt32Value` fields appear as plain numbers, or as `{"value": n}` in some encoders."""
    return value.get("value", 0) if isinstance(value, dict) else value


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
