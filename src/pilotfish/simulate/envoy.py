"""How Envoy matches a connection and a request against its configuration (pure, no pilotfish model).

Facts from Envoy's documentation (and Istio's `pilot/pkg/simulation`, which follows them):

* Listener: a connection arrives on the listener bound to its address (exact IP, then the wildcard);
  a listener with `use_original_dst` hands it to the listener of the *original* destination
  (exact IP:port, then `0.0.0.0:port`, bound or not), else keeps it.
* Filter chain: the chains are pruned criterion by criterion - destination port, destination IP
  (longest prefix), server name (exact, then longest `*.` suffix), transport protocol, application
  protocols, source type, source IP, source port - keeping at each step only the chains that match
  the connection *most specifically* (chains that do not set the criterion are the fallback). No
  chain left: the listener's `default_filter_chain`, else the connection is closed.
* Virtual host (by the lower-cased Host header, port stripped with `ignore_port_in_host_matching`):
  exact domain, then the longest suffix wildcard `*.foo`, then the longest prefix wildcard `foo.*`,
  then `*`.
* Route: the first whose path (prefix / exact path / full regex on the path without the query,
  honouring `case_sensitive`), headers and query parameters all match.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from pilotfish.xds.protos import (
    FAULT,
    HCM,
    HTTP_INSPECTOR,
    ORIGINAL_DST,
    TCP_PROXY,
    TLS_INSPECTOR,
    fault_pb2,
    http_connection_manager_pb2,
    percent_pb2,
    tcp_proxy_pb2,
)

Listener: TypeAlias = Any
FilterChain: TypeAlias = Any
RouteConfiguration: TypeAlias = Any
VirtualHost: TypeAlias = Any
Route: TypeAlias = Any
Manager: TypeAlias = Any
TcpProxy: TypeAlias = Any

WILDCARDS = ("0.0.0.0", "::")


# --- listeners ----------------------------------------------------------------------------------------


def address_of(listener: Listener) -> tuple[str, int]:
    socket = listener.address.socket_address
    return str(socket.address), int(socket.port_value)


def is_bound(listener: Listener) -> bool:
    return not listener.HasField("bind_to_port") or bool(listener.bind_to_port.value)


def uses_original_dst(listener: Listener) -> bool:
    return listener.HasField("use_original_dst") and bool(listener.use_original_dst.value)


def listener_filter_names(listener: Listener) -> list[str]:
    return [str(f.name) for f in listener.listener_filters]


def restores_original_dst(listener: Listener) -> bool:
    """The `original_dst` listener filter makes chain matching see the pre-REDIRECT destination."""
    return ORIGINAL_DST in listener_filter_names(listener)


def find_listener(listeners: Iterable[Listener], ip: str, port: int, bound_only: bool) -> Listener | None:
    """The listener for ip:port: exact address first, then the wildcard of the same port."""
    candidates = [li for li in listeners if not bound_only or is_bound(li)]
    for listener in candidates:
        if address_of(listener) == (ip, port):
            return listener
    for listener in candidates:
        address, lport = address_of(listener)
        if lport == port and address in WILDCARDS:
            return listener
    return None


# --- filter chains --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connection:
    """What filter-chain matching can know about a connection once the listener filters have run."""

    dst_ip: str
    dst_port: int
    src_ip: str
    src_port: int = 0
    sni: str = ""
    transport: str = "raw_buffer"
    alpn: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainChoice:
    chain: FilterChain
    """None when no chain matched."""
    index: int
    """Position in `filter_chains`; -1 for the default filter chain or no chain."""
    is_default: bool
    reasons: tuple[str, ...]
    """The criteria that decided, in Envoy's order."""
    ambiguous: tuple[int, ...] = ()

    @property
    def found(self) -> bool:
        return self.chain is not None and not self.ambiguous


def detect(listener: Listener, conn: Connection, tls: bool, http: str) -> Connection:
    """Apply the listener filters: tls_inspector reveals TLS (SNI, ALPN); http_inspector sets the
    ALPN `http/1.1` or `h2c` for plaintext HTTP. Without inspectors Envoy sees a raw_buffer
    connection with no server name and no application protocol."""
    names = listener_filter_names(listener)
    transport, sni, alpn = "raw_buffer", "", tuple[str, ...]()
    if TLS_INSPECTOR in names and tls:
        transport, sni, alpn = "tls", conn.sni, conn.alpn
    if HTTP_INSPECTOR in names and not tls and http:
        alpn = (http,)
    return Connection(conn.dst_ip, conn.dst_port, conn.src_ip, conn.src_port, sni, transport, alpn)


Scorer = Callable[[Any], int | None]
"""For one chain's match: None = does not match; otherwise a specificity (higher wins)."""


def select_filter_chain(listener: Listener, conn: Connection) -> ChainChoice:
    chains = list(enumerate(listener.filter_chains))
    reasons: list[str] = []
    for label, scorer in _criteria(conn):
        if not chains:
            break
        scores = [(scorer(chain.filter_chain_match), (index, chain)) for index, chain in chains]
        if all(score == -1 for score, _ in scores):
            continue  # no remaining chain sets this criterion
        matching = [(score, pair) for score, pair in scores if score is not None]
        if not matching:
            reasons.append(f"{label}: no chain matches")
            chains = []
            break
        best = max(score for score, _ in matching)
        chains = [pair for score, pair in matching if score == best]
        verdict = "only chains without this criterion match" if best == -1 else "matches"
        reasons.append(f"{label}: {verdict}")
    if len(chains) == 1:
        index, chain = chains[0]
        return ChainChoice(chain, index, False, tuple(reasons))
    if len(chains) > 1:
        return ChainChoice(chains[0][1], chains[0][0], False, tuple(reasons), tuple(i for i, _ in chains))
    if listener.HasField("default_filter_chain"):
        return ChainChoice(listener.default_filter_chain, -1, True, (*reasons, "default_filter_chain"))
    return ChainChoice(None, -1, False, tuple(reasons))


def _criteria(conn: Connection) -> list[tuple[str, Scorer]]:
    def port(m: Any) -> int | None:
        if not m.HasField("destination_port"):
            return -1
        return 0 if int(m.destination_port.value) == conn.dst_port else None

    def prefix(m: Any) -> int | None:
        return _prefix_score(m.prefix_ranges, conn.dst_ip)

    def server_name(m: Any) -> int | None:
        if not m.server_names:
            return -1
        return _sni_score([str(s) for s in m.server_names], conn.sni)

    def transport(m: Any) -> int | None:
        if not m.transport_protocol:
            return -1
        return 0 if m.transport_protocol == conn.transport else None

    def alpn(m: Any) -> int | None:
        if not m.application_protocols:
            return -1
        return 0 if set(m.application_protocols) & set(conn.alpn) else None

    def source_type(m: Any) -> int | None:
        if m.source_type == 0:  # ANY
            return -1
        local = conn.src_ip == conn.dst_ip or _is_loopback(conn.src_ip)
        wanted_local = m.source_type == 1  # SAME_IP_OR_LOOPBACK
        return 0 if local == wanted_local else None

    def source_prefix(m: Any) -> int | None:
        return _prefix_score(m.source_prefix_ranges, conn.src_ip)

    def source_port(m: Any) -> int | None:
        if not m.source_ports:
            return -1
        return 0 if conn.src_port in m.source_ports else None

    return [
        (f"destination port {conn.dst_port}", port),
        (f"destination IP {conn.dst_ip}", prefix),
        (f"server name {conn.sni or '(none)'}", server_name),
        (f"transport {conn.transport}", transport),
        (f"application protocol {','.join(conn.alpn) or '(none)'}", alpn),
        ("source type", source_type),
        (f"source IP {conn.src_ip}", source_prefix),
        ("source port", source_port),
    ]


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _prefix_score(ranges: Sequence[Any], ip: str) -> int | None:
    if not ranges:
        return -1
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    best: int | None = None
    for r in ranges:
        length = int(r.prefix_len.value) if r.HasField("prefix_len") else 0
        try:
            network = ipaddress.ip_network(f"{r.address_prefix}/{length}", strict=False)
        except ValueError:
            continue
        if address.version == network.version and address in network:
            best = length if best is None else max(best, length)
    return best


def _sni_score(names: list[str], sni: str) -> int | None:
    if not sni:
        return None
    if sni in names:
        return 10_000
    best: int | None = None
    for name in names:
        if name.startswith("*.") and sni.endswith(name[1:]) and len(sni) > len(name) - 1:
            best = len(name) if best is None else max(best, len(name))
    return best


def describe_chain_match(chain: FilterChain) -> str:
    """A short text of a chain's match criteria (`{}` when it matches anything)."""
    m = chain.filter_chain_match
    parts = []
    if m.HasField("destination_port"):
        parts.append(f"port {m.destination_port.value}")
    if m.prefix_ranges:
        parts.append("prefix " + _ranges_text(m.prefix_ranges))
    if m.server_names:
        parts.append("sni " + ",".join(m.server_names))
    if m.transport_protocol:
        parts.append(f"transport {m.transport_protocol}")
    if m.application_protocols:
        parts.append("alpn " + ",".join(m.application_protocols))
    if m.source_prefix_ranges:
        parts.append("source " + _ranges_text(m.source_prefix_ranges))
    return "{" + ", ".join(parts) + "}"


def _ranges_text(ranges: Sequence[Any]) -> str:
    return ",".join(f"{r.address_prefix}/{r.prefix_len.value}" for r in ranges)


def chain_label(chain: FilterChain, index: int) -> str:
    if chain is not None and chain.name:
        return str(chain.name)
    return "default_filter_chain" if index < 0 else f"filter_chains[{index}]"


# --- network filters -------------------------------------------------------------------------------


def network_filter(chain: FilterChain) -> tuple[str, Any]:
    """The chain's terminal network filter: ("hcm", HttpConnectionManager), ("tcp", TcpProxy), or
    (its name, None) for a filter this simulator does not model."""
    last: tuple[str, Any] = ("", None)
    for f in chain.filters:
        if f.name == HCM:
            manager = http_connection_manager_pb2.HttpConnectionManager()
            f.typed_config.Unpack(manager)
            return "hcm", manager
        if f.name == TCP_PROXY:
            proxy = tcp_proxy_pb2.TcpProxy()
            f.typed_config.Unpack(proxy)
            return "tcp", proxy
        last = (str(f.name), None)
    return last


def http_filter_names(manager: Manager) -> list[str]:
    return [str(f.name) for f in manager.http_filters]


def tcp_clusters(proxy: TcpProxy) -> list[tuple[str, int]]:
    if proxy.HasField("weighted_clusters"):
        return [(str(c.name), int(c.weight)) for c in proxy.weighted_clusters.clusters]
    return [(str(proxy.cluster), 1)]


# --- virtual hosts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostMatch:
    vhost: VirtualHost | None
    domain: str = ""
    kind: str = ""
    """exact, suffix wildcard, prefix wildcard or any (`*`)."""
    host: str = ""
    """The host value compared (lower-cased, port stripped when the config says so)."""


def find_virtual_host(config: RouteConfiguration, authority: str) -> HostMatch:
    host = authority.lower()
    if bool(config.ignore_port_in_host_matching):
        host = _strip_port(host)
    vhosts = list(config.virtual_hosts)
    for vhost in vhosts:
        for domain in vhost.domains:
            if str(domain).lower() == host:
                return HostMatch(vhost, str(domain), "exact", host)
    for kind, test in (("suffix wildcard", _suffix_wildcard), ("prefix wildcard", _prefix_wildcard)):
        best: tuple[int, VirtualHost, str] | None = None
        for vhost in vhosts:
            for domain in vhost.domains:
                d = str(domain).lower()
                if d != "*" and test(d, host) and (best is None or len(d) > best[0]):
                    best = (len(d), vhost, str(domain))
        if best is not None:
            return HostMatch(best[1], best[2], kind, host)
    for vhost in vhosts:
        if "*" in vhost.domains:
            return HostMatch(vhost, "*", "any", host)
    return HostMatch(None, host=host)


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host.split("]")[0] + "]"
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


def _suffix_wildcard(domain: str, host: str) -> bool:
    return domain.startswith("*") and host.endswith(domain[1:]) and len(host) > len(domain) - 1


def _prefix_wildcard(domain: str, host: str) -> bool:
    return domain.endswith("*") and host.startswith(domain[:-1]) and len(host) > len(domain) - 1


# --- routes ---------------------------------------------------------------------------------------


class RequestView:
    """The request as route matching sees it (normalized path, headers by lower-case name)."""

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        authority: str,
        scheme: str,
        headers: Sequence[tuple[str, str]],
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.authority = authority
        self.scheme = scheme
        self.headers = headers

    def header(self, name: str) -> str | None:
        lower = name.lower()
        pseudo = {
            ":method": self.method,
            ":authority": self.authority,
            "host": self.authority,
            ":scheme": self.scheme,
            ":path": self.path + (f"?{self.query}" if self.query else ""),
        }
        if lower in pseudo:
            return pseudo[lower]
        values = [v for k, v in self.headers if k.lower() == lower]
        return ",".join(values) if values else None

    def query_param(self, name: str) -> str | None:
        for key, value in parse_qsl(self.query, keep_blank_values=True):
            if key == name:
                return value
        return None


def normalize_path(path: str) -> str:
    """RFC 3986 dot-segment removal, as `normalize_path: true` does before routing."""
    if not path.startswith("/"):
        path = "/" + path
    normalized = posixpath.normpath(path)
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    if path.endswith("/") and not normalized.endswith("/"):
        normalized += "/"
    return normalized


@dataclass(frozen=True, slots=True)
class RouteChoice:
    route: Route
    """None when no route matched."""
    index: int
    skipped: tuple[str, ...] = field(default=())
    """Why each earlier route did not match (`#i: reason`)."""


def find_route(vhost: VirtualHost, request: RequestView) -> RouteChoice:
    skipped: list[str] = []
    for index, route in enumerate(vhost.routes):
        reason = route_mismatch(route.match, request)
        if reason is None:
            return RouteChoice(route, index, tuple(skipped))
        skipped.append(f"#{index} {describe_route_match(route.match)}: {reason}")
    return RouteChoice(None, -1, tuple(skipped))


def route_mismatch(match: Any, request: RequestView) -> str | None:
    """None when the route matches; otherwise the first criterion that fails."""
    sensitive = not match.HasField("case_sensitive") or bool(match.case_sensitive.value)
    path = request.path if sensitive else request.path.lower()
    kind = match.WhichOneof("path_specifier")
    if kind == "prefix":
        prefix = str(match.prefix) if sensitive else str(match.prefix).lower()
        if not path.startswith(prefix):
            return f"path {request.path} does not start with {match.prefix}"
    elif kind == "path":
        wanted = str(match.path) if sensitive else str(match.path).lower()
        if path != wanted:
            return f"path {request.path} is not {match.path}"
    elif kind == "safe_regex":
        # Envoy ignores case_sensitive for regex paths (Istio's ignoreUriCase does nothing here);
        # checked against the real Envoy by `pilotfish trace --verify`.
        if not _full_match(str(match.safe_regex.regex), request.path, False):
            note = "" if sensitive else " (case-sensitive: Envoy ignores case_sensitive for a regex)"
            return f"path {request.path} does not match regex {match.safe_regex.regex}{note}"
    elif kind == "path_separated_prefix":
        prefix = str(match.path_separated_prefix)
        if not (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
            return f"path {request.path} is not under {prefix}"
    elif kind is not None:
        return f"path matcher {kind} is not simulated"
    for header in match.headers:
        reason = _header_mismatch(header, request)
        if reason is not None:
            return reason
    for param in match.query_parameters:
        value = request.query_param(str(param.name))
        if param.HasField("present_match"):
            if (value is not None) != bool(param.present_match):
                return f"query parameter {param.name} {'missing' if value is None else 'present'}"
        elif value is None:
            return f"query parameter {param.name} missing"
        elif param.HasField("string_match") and not string_matches(param.string_match, value):
            wanted = describe_string(param.string_match)
            return f"query parameter {param.name}={value} does not match {wanted}"
    return None


def _header_mismatch(header: Any, request: RequestView) -> str | None:
    value = request.header(str(header.name))
    kind = header.WhichOneof("header_match_specifier")
    if kind == "present_match":
        result = (value is not None) == bool(header.present_match)
    elif value is None:
        result = False
    elif kind == "string_match":
        result = string_matches(header.string_match, value)
    elif kind == "exact_match":
        result = value == header.exact_match
    elif kind == "prefix_match":
        result = value.startswith(header.prefix_match)
    elif kind == "suffix_match":
        result = value.endswith(header.suffix_match)
    elif kind == "contains_match":
        result = header.contains_match in value
    elif kind == "safe_regex_match":
        result = _full_match(str(header.safe_regex_match.regex), value, False)
    else:
        result = True  # no matcher: presence is enough
    if bool(header.invert_match):
        result = not result
    if result:
        return None
    shown = "missing" if value is None else f"is {value!r}"
    return f"header {header.name} {shown}, wanted {describe_header(header)}"


def string_matches(matcher: Any, value: str) -> bool:
    ignore = bool(matcher.ignore_case)
    text = value.lower() if ignore else value
    kind = matcher.WhichOneof("match_pattern")

    def norm(s: str) -> str:
        return s.lower() if ignore else s

    if kind == "exact":
        return text == norm(str(matcher.exact))
    if kind == "prefix":
        return text.startswith(norm(str(matcher.prefix)))
    if kind == "suffix":
        return text.endswith(norm(str(matcher.suffix)))
    if kind == "contains":
        return norm(str(matcher.contains)) in text
    if kind == "safe_regex":
        return _full_match(str(matcher.safe_regex.regex), value, ignore)
    return False


def _full_match(pattern: str, value: str, ignore_case: bool) -> bool:
    try:
        return re.fullmatch(pattern, value, re.IGNORECASE if ignore_case else 0) is not None
    except re.error:
        return False


def describe_string(matcher: Any) -> str:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "safe_regex":
        return f"regex {matcher.safe_regex.regex}"
    return f"{kind} {getattr(matcher, kind or 'exact')!r}" if kind else "anything"


def describe_header(header: Any) -> str:
    kind = header.WhichOneof("header_match_specifier")
    if kind == "present_match":
        text = "present" if header.present_match else "absent"
    elif kind == "string_match":
        text = describe_string(header.string_match)
    elif kind is None:
        text = "present"
    else:
        text = f"{kind} {getattr(header, kind)!r}"
    return ("not " if header.invert_match else "") + text


def describe_route_match(match: Any) -> str:
    """`prefix /` `path /productpage` `regex ^/x` plus headers and query parameters."""
    kind = match.WhichOneof("path_specifier")
    if kind == "safe_regex":
        parts = [f"regex {match.safe_regex.regex}"]
    elif kind:
        parts = [f"{kind} {getattr(match, kind)}"]
    else:
        parts = []
    if match.HasField("case_sensitive") and not match.case_sensitive.value:
        parts.append("(any case)")
    parts += [f"{h.name} {describe_header(h)}" for h in match.headers]
    parts += [f"?{q.name} {describe_string(q.string_match)}" for q in match.query_parameters]
    return " ".join(parts)


def route_clusters(route: Route) -> list[tuple[str, int]]:
    """(cluster, weight) of a route's action: one entry for a single cluster."""
    action = route.route
    kind = action.WhichOneof("cluster_specifier")
    if kind == "weighted_clusters":
        return [(str(c.name), int(c.weight.value)) for c in action.weighted_clusters.clusters]
    if kind == "cluster":
        return [(str(action.cluster), 1)]
    return []


def route_label(route: Route, index: int) -> str:
    return f"#{index} {route.name}" if route.name else f"#{index}"


def route_fault(route: Route, vhost: VirtualHost, manager: Manager) -> Any | None:
    """The fault filter config that applies to this route (route, then vhost), when the HCM runs
    the fault filter at all."""
    if FAULT not in http_filter_names(manager):
        return None
    for holder in (route, vhost):
        if FAULT in holder.typed_per_filter_config:
            fault = fault_pb2.HTTPFault()
            holder.typed_per_filter_config[FAULT].Unpack(fault)
            return fault
    return None


def fraction_percent(value: Any) -> float:
    denominators = {
        percent_pb2.FractionalPercent.HUNDRED: 100,
        percent_pb2.FractionalPercent.TEN_THOUSAND: 10_000,
        percent_pb2.FractionalPercent.MILLION: 1_000_000,
    }
    denominator = denominators.get(value.denominator, 100)
    return 100.0 * int(value.numerator) / denominator


def inline_or_rds(manager: Manager) -> tuple[str, RouteConfiguration | None]:
    """(route config name, the inline config or None when it comes from RDS)."""
    if manager.HasField("route_config"):
        return str(manager.route_config.name), manager.route_config
    return str(manager.rds.route_config_name), None
