"""Envoy's matching rules as `simulate.envoy` implements them, on hand-built v3 messages."""

from __future__ import annotations

from typing import Any

import pytest

from pilotfish.simulate import envoy
from pilotfish.xds.protos import (
    TLS_INSPECTOR,
    base_pb2,
    cidr,
    listener_components_pb2,
    listener_filter,
    listener_pb2,
    percent_pb2,
    regex_pb2,
    route_components_pb2,
    route_pb2,
    socket_address,
    string_pb2,
    tls_inspector_pb2,
)


def _listener(*chains: Any, default: Any = None, tls_inspector: bool = False) -> Any:
    listener = listener_pb2.Listener(name="l", address=socket_address("0.0.0.0", 443))
    listener.filter_chains.extend(chains)
    if default is not None:
        listener.default_filter_chain.CopyFrom(default)
    if tls_inspector:
        listener.listener_filters.append(listener_filter(TLS_INSPECTOR, tls_inspector_pb2.TlsInspector()))
    return listener


def _chain(
    name: str,
    port: int | None = None,
    prefixes: tuple[str, ...] = (),
    sni: tuple[str, ...] = (),
    transport: str = "",
    alpn: tuple[str, ...] = (),
) -> Any:
    chain = listener_components_pb2.FilterChain(name=name)
    match = chain.filter_chain_match
    if port is not None:
        match.destination_port.value = port
    match.prefix_ranges.extend(cidr(p) for p in prefixes)
    match.server_names.extend(sni)
    match.transport_protocol = transport
    match.application_protocols.extend(alpn)
    return chain


def _conn(
    ip: str = "10.0.0.5",
    port: int = 443,
    sni: str = "",
    transport: str = "raw_buffer",
    alpn: tuple[str, ...] = (),
) -> envoy.Connection:
    return envoy.Connection(ip, port, "10.0.0.9", 0, sni, transport, alpn)


def _chosen(listener: Any, conn: envoy.Connection) -> str:
    choice = envoy.select_filter_chain(listener, conn)
    assert choice.found, choice.reasons
    return str(choice.chain.name)


def test_destination_port_before_prefix() -> None:
    listener = _listener(_chain("ip", prefixes=("10.0.0.5/32",)), _chain("port", port=443))
    assert _chosen(listener, _conn()) == "port"


def test_no_backtracking_after_a_port_match() -> None:
    """Chains matching the port win even when none of them matches later criteria."""
    listener = _listener(_chain("port-ip", port=443, prefixes=("10.9.0.0/16",)), _chain("any"))
    choice = envoy.select_filter_chain(listener, _conn())
    assert not choice.found
    assert any("no chain matches" in r for r in choice.reasons)


def test_most_specific_prefix_wins_and_empty_is_fallback() -> None:
    listener = _listener(
        _chain("wide", prefixes=("10.0.0.0/8",)), _chain("narrow", prefixes=("10.0.0.0/24",)), _chain("none")
    )
    assert _chosen(listener, _conn("10.0.0.5")) == "narrow"
    assert _chosen(listener, _conn("10.1.0.5")) == "wide"
    assert _chosen(listener, _conn("192.168.0.1")) == "none"


def test_server_names_exact_then_longest_wildcard_then_none() -> None:
    listener = _listener(
        _chain("exact", sni=("www.example.com",)),
        _chain("wild", sni=("*.example.com",)),
        _chain("wilder", sni=("*.com",)),
        _chain("none"),
        tls_inspector=True,
    )
    assert _chosen(listener, _conn(sni="www.example.com", transport="tls")) == "exact"
    assert _chosen(listener, _conn(sni="api.example.com", transport="tls")) == "wild"
    assert _chosen(listener, _conn(sni="example.org.com", transport="tls")) == "wilder"
    assert _chosen(listener, _conn(sni="example.org", transport="tls")) == "none"


def test_transport_and_alpn_come_from_listener_filters() -> None:
    tls = _chain("tls", transport="tls")
    raw_http = _chain("http", transport="raw_buffer", alpn=("http/1.1", "h2c"))
    listener = _listener(tls, raw_http, default=_chain("default"))
    plain = envoy.detect(listener, _conn(), tls=False, http="http/1.1")
    assert plain.alpn == () and plain.transport == "raw_buffer"  # no http_inspector: no ALPN
    assert str(envoy.select_filter_chain(listener, plain).chain.name) == "default"
    hidden = envoy.detect(listener, _conn(sni="x"), tls=True, http="")
    assert hidden.transport == "raw_buffer" and hidden.sni == ""  # no tls_inspector: TLS is not seen


def test_default_filter_chain_and_ambiguity() -> None:
    listener = _listener(_chain("a", port=80), default=_chain("fallback"))
    choice = envoy.select_filter_chain(listener, _conn(port=443))
    assert choice.is_default and str(choice.chain.name) == "fallback"
    twins = _listener(_chain("a"), _chain("b"))
    assert envoy.select_filter_chain(twins, _conn()).ambiguous == (0, 1)


def _config(*vhosts: tuple[str, list[str]], ignore_port: bool = False) -> Any:
    config = route_pb2.RouteConfiguration(name="80", ignore_port_in_host_matching=ignore_port)
    for name, domains in vhosts:
        config.virtual_hosts.add(name=name, domains=domains)
    return config


@pytest.mark.parametrize(
    ("host", "vhost", "kind"),
    [
        ("www.foo.com", "exact", "exact"),
        ("WWW.Foo.COM", "exact", "exact"),
        ("api.foo.com", "longest-suffix", "suffix wildcard"),
        ("x.bar.com", "short-suffix", "suffix wildcard"),
        ("foo.org", "prefix", "prefix wildcard"),
        ("other", "any", "any"),
    ],
)
def test_virtual_host_order(host: str, vhost: str, kind: str) -> None:
    config = _config(
        ("any", ["*"]),
        ("short-suffix", ["*.com"]),
        ("longest-suffix", ["*.foo.com"]),
        ("prefix", ["foo.*"]),
        ("exact", ["www.foo.com"]),
    )
    found = envoy.find_virtual_host(config, host)
    assert (found.vhost.name, found.kind) == (vhost, kind)


def test_virtual_host_port_handling() -> None:
    config = _config(("reviews", ["reviews"]))
    assert envoy.find_virtual_host(config, "reviews:9080").vhost is None
    stripped = envoy.find_virtual_host(_config(("reviews", ["reviews"]), ignore_port=True), "reviews:9080")
    assert stripped.vhost.name == "reviews" and stripped.host == "reviews"


def _view(
    path: str = "/", query: str = "", headers: tuple[tuple[str, str], ...] = (), method: str = "GET"
) -> envoy.RequestView:
    return envoy.RequestView(method, path, query, "reviews:9080", "http", headers)


def _route(**match: Any) -> Any:
    route = route_components_pb2.Route()
    route.match.CopyFrom(route_components_pb2.RouteMatch(**match))
    return route


def test_route_path_matchers() -> None:
    assert envoy.route_mismatch(_route(prefix="/api").match, _view("/api/v1")) is None
    assert envoy.route_mismatch(_route(path="/api").match, _view("/api/v1")) is not None
    regex = _route(safe_regex=regex_pb2.RegexMatcher(regex="/r/[0-9]+"))
    assert envoy.route_mismatch(regex.match, _view("/r/12")) is None
    assert envoy.route_mismatch(regex.match, _view("/r/12/x")) is not None  # full match only
    insensitive = _route(prefix="/API")
    insensitive.match.case_sensitive.value = False
    assert envoy.route_mismatch(insensitive.match, _view("/api/x")) is None


def test_route_headers_and_query() -> None:
    route = _route(prefix="/")
    route.match.headers.add(name="end-user", string_match=string_pb2.StringMatcher(exact="jason"))
    route.match.headers.add(name=":method", string_match=string_pb2.StringMatcher(exact="POST"))
    route.match.query_parameters.add(name="debug", present_match=True)
    ok = _view(query="debug=", headers=(("End-User", "jason"),), method="POST")
    assert envoy.route_mismatch(route.match, ok) is None
    assert "end-user" in (envoy.route_mismatch(route.match, _view(query="debug=1", method="POST")) or "")
    assert "debug" in (
        envoy.route_mismatch(route.match, _view(headers=(("end-user", "jason"),), method="POST")) or ""
    )
    inverted = _route(prefix="/")
    inverted.match.headers.add(name="x-canary", present_match=True, invert_match=True)
    assert envoy.route_mismatch(inverted.match, _view()) is None
    assert envoy.route_mismatch(inverted.match, _view(headers=(("x-canary", "1"),))) is not None


def test_first_matching_route_and_skipped_reasons() -> None:
    vhost = route_components_pb2.VirtualHost(name="v", domains=["*"])
    vhost.routes.append(_route(path="/a"))
    vhost.routes.append(_route(prefix="/"))
    choice = envoy.find_route(vhost, _view("/b"))
    assert choice.index == 1 and len(choice.skipped) == 1 and "/b is not /a" in choice.skipped[0]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("/a/./b", "/a/b"), ("/a/../b", "/b"), ("/../x", "/x"), ("/a/b/", "/a/b/"), ("/", "/")],
)
def test_normalize_path(raw: str, normalized: str) -> None:
    assert envoy.normalize_path(raw) == normalized


def test_fraction_percent() -> None:
    million = percent_pb2.FractionalPercent(
        numerator=500000, denominator=percent_pb2.FractionalPercent.MILLION
    )
    hundred = percent_pb2.FractionalPercent(numerator=10)
    assert envoy.fraction_percent(million) == 50.0
    assert envoy.fraction_percent(hundred) == 10.0


def test_listener_lookup_exact_then_wildcard_bound_only() -> None:
    wildcard = listener_pb2.Listener(name="0.0.0.0_9080", address=socket_address("0.0.0.0", 9080))
    wildcard.bind_to_port.value = False
    exact = listener_pb2.Listener(
        name="10.96.0.5_9080", address=socket_address("10.96.0.5", 9080), traffic_direction=base_pb2.OUTBOUND
    )
    exact.bind_to_port.value = False
    listeners = [wildcard, exact]
    assert envoy.find_listener(listeners, "10.96.0.5", 9080, bound_only=False) is exact
    assert envoy.find_listener(listeners, "10.96.0.6", 9080, bound_only=False) is wildcard
    assert envoy.find_listener(listeners, "10.96.0.5", 9080, bound_only=True) is None
