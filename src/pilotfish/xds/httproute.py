"""VirtualService HTTP rules -> Envoy routes (Istio's `route.go` translateRoute; istio-reference.md §4.4-4.5).

Rules are translated in order. A rule without `match` gives one route and ends the list; each
`match` gives a route, and a catch-all match (prefix `/` with nothing else) ends the list too.
Matches for another port, another gateway or other source labels are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from pilotfish.config import istio
from pilotfish.config.meshconfig import Profile
from pilotfish.config.objects import ConfigObject
from pilotfish.model import names
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import resolve_short_host
from pilotfish.model.proxy import Proxy
from pilotfish.model.scope import destination_rule, label_key, labels_match
from pilotfish.xds.protos import (
    CORS,
    FAULT,
    PREVIOUS_HOSTS,
    ZERO,
    base_pb2,
    cors_pb2,
    duration,
    fault_pb2,
    fraction,
    istio_metadata,
    pack,
    previous_hosts_pb2,
    regex_pb2,
    route_components_pb2,
    string_pb2,
    u32,
)

Route: TypeAlias = route_components_pb2.Route

_RETRY_ON_13 = (
    "connect-failure,refused-stream,unavailable,cancelled,resource-exhausted,retriable-status-codes"
)
_RETRY_ON_MODERN = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
_REDIRECT_CODES = {
    301: route_components_pb2.RedirectAction.MOVED_PERMANENTLY,
    302: route_components_pb2.RedirectAction.FOUND,
    303: route_components_pb2.RedirectAction.SEE_OTHER,
    307: route_components_pb2.RedirectAction.TEMPORARY_REDIRECT,
    308: route_components_pb2.RedirectAction.PERMANENT_REDIRECT,
}


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What route translation may depend on besides the VirtualService itself."""

    mesh: Mesh
    proxy: Proxy
    gateways: frozenset[str]
    """`{"mesh"}` for sidecars; the gateway's `<namespace>/<name>` for routers."""
    port: int
    """The listener port the routes are for."""
    modern: bool = field(init=False)
    """The modern profile (read per route: a field, not a property chain)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "modern", self.mesh.profile is Profile.MODERN)


# --- default route ----------------------------------------------------------------------------------


def default_route(ctx: RouteContext, hostname: str, port: int, route: Route | None = None) -> Route:
    """The route of a service no VirtualService covers: everything to its default cluster. Built
    into `route` when given (an empty route already in its virtual host: not copied again)."""
    route = plain_default_route(
        ctx.modern, names.outbound_cluster_name(port, hostname), f"{hostname}:{port}/*", route
    )
    _hash_policy(ctx, route.route, hostname, "")
    return route


def plain_default_route(modern: bool, cluster: str, operation: str, route: Route | None = None) -> Route:
    """A default route without hash policy (`has_plain_default_route`): the profile's template with
    its cluster and decorator (`xds.routes` also builds its encoding template from this)."""
    if route is None:
        route = Route()
    route.CopyFrom(_DEFAULT_ROUTES[modern])
    route.route.cluster = cluster
    route.decorator.operation = operation
    return route


def has_plain_default_route(ctx: RouteContext, hostname: str) -> bool:
    """Whether `hostname`'s default route is a `plain_default_route` (no consistent hash applies)."""
    return _consistent_hash_for(ctx, hostname, "") is None


def _default_route_template(modern: bool) -> Route:
    """Everything of a default route but its cluster, hash policy and decorator."""
    route = Route(name=names.DEFAULT_ROUTE_NAME)
    route.match.prefix = "/"
    action = route.route
    action.timeout.CopyFrom(ZERO)
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(ZERO)
    action.retry_policy.CopyFrom(_build_retry_policy(modern))
    return route


def _build_retry_policy(modern: bool) -> route_components_pb2.RetryPolicy:
    policy = route_components_pb2.RetryPolicy(
        retry_on=_RETRY_ON_MODERN if modern else _RETRY_ON_13,
        num_retries=u32(2),
        host_selection_retry_max_attempts=5,
    )
    policy.retry_host_predicate.add(
        name=PREVIOUS_HOSTS, typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate())
    )
    if not modern:
        policy.retriable_status_codes.append(503)
    return policy


_DEFAULT_ROUTES = {modern: _default_route_template(modern) for modern in (False, True)}
"""Prebuilt per profile and copied: a default route per service is the bulk of a sidecar's RDS, and
copying a message costs a fraction of building it (and of packing its retry predicate). Never mutated."""


# --- VirtualService rules ---------------------------------------------------------------------------


def translate_virtual_service(ctx: RouteContext, vs: ConfigObject) -> list[Route]:
    """The VirtualService's routes for this context. Cached per what they depend on, so the servers
    of a gateway on one port, and proxies of one shape, translate each VirtualService once; the
    list is shared (callers copy the routes into their messages and never mutate them)."""
    key = ("vs-routes", vs.key, ctx.gateways, ctx.port, ctx.proxy.namespace, label_key(ctx.mesh, ctx.proxy))
    return ctx.mesh.cached(key, lambda: _translate(ctx, vs))


def _translate(ctx: RouteContext, vs: ConfigObject) -> list[Route]:
    spec: istio.VirtualServiceSpec = vs.spec
    routes: list[Route] = []
    for rule in spec.http:
        if not rule.match:
            routes.append(_route(ctx, vs, rule, None))
            break
        for match in rule.match:
            if not _match_applies(ctx, match):
                continue
            route = _route(ctx, vs, rule, match)
            routes.append(route)
            if _is_catch_all(route) if ctx.modern else _is_catch_all_match(match):
                return routes
    return routes


def _is_catch_all_match(match: istio.HTTPMatchRequest) -> bool:
    """Istio 1.3 `isCatchAllMatch`: only an explicit `uri.prefix: /` (or regex `*`) without header or
    query matches ends the list; a match without `uri` does not."""
    uri = match.uri
    catch_all = uri is not None and (uri.prefix == "/" or uri.regex == "*")
    return catch_all and not match.headers and not match.query_params


def _match_applies(ctx: RouteContext, match: istio.HTTPMatchRequest) -> bool:
    if match.port is not None and ctx.port and match.port != ctx.port:
        return False
    if match.gateways:
        return any(_gateway_name(g) in ctx.gateways for g in match.gateways)
    if match.source_labels and not labels_match(match.source_labels, ctx.proxy.label_map):
        return False
    return not (match.source_namespace and match.source_namespace != ctx.proxy.namespace)


def _gateway_name(name: str) -> str:
    return name.removeprefix("./")


def _is_catch_all(route: Route) -> bool:
    match = route.match
    has_extra = match.headers or match.query_parameters
    catch_all_path = match.prefix == "/" or (
        match.HasField("safe_regex") and match.safe_regex.regex in ("*", ".*")
    )
    return bool(catch_all_path and not has_extra)


def _route(
    ctx: RouteContext, vs: ConfigObject, rule: istio.HTTPRoute, match: istio.HTTPMatchRequest | None
) -> Route:
    route = Route()
    name = rule.name + (f".{match.name}" if match is not None and match.name else "")
    if name:
        route.name = name
    set_route_match(route.match, match)
    if rule.redirect is not None:
        _set_redirect(route, rule.redirect)
    elif rule.direct_response is not None:
        route.direct_response.status = rule.direct_response.status
        if rule.direct_response.body:
            route.direct_response.body.inline_string = next(iter(rule.direct_response.body.values()))
    else:
        _set_action(ctx, vs, rule, route)
    _set_headers(route, rule.headers)
    if rule.fault is not None:
        route.typed_per_filter_config[FAULT].CopyFrom(pack(_fault(rule.fault)))
    if rule.cors_policy is not None:
        route.typed_per_filter_config[CORS].CopyFrom(pack(_cors(rule.cors_policy)))
    route.metadata.CopyFrom(istio_metadata(vs.config_path()))
    route.decorator.operation = _operation(ctx, vs, route)
    return route


# --- match --------------------------------------------------------------------------------------------


def set_route_match(out: route_components_pb2.RouteMatch, match: istio.HTTPMatchRequest | None) -> None:
    """The Envoy match of one VirtualService `match` (None: a rule without match). Public because
    `simulate` uses it to find which rule, and so which `file:line`, produced a matched route."""
    if match is None or match.uri is None:
        out.prefix = "/"
    elif match.uri.exact is not None:
        out.path = match.uri.exact
    elif match.uri.prefix is not None:
        out.prefix = match.uri.prefix
    else:
        out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=match.uri.regex or ""))
    if match is None:
        return
    out.case_sensitive.value = not match.ignore_uri_case
    for header, value in sorted(match.headers.items()):
        out.headers.append(_header_matcher(header, value))
    for header, value in sorted(match.without_headers.items()):
        out.headers.append(_header_matcher(header, value, invert=True))
    pseudo = ((":method", match.method), (":authority", match.authority), (":scheme", match.scheme))
    for header, special in pseudo:
        if special is not None:
            out.headers.append(_header_matcher(header, special))
    for param, value in sorted(match.query_params.items()):
        out.query_parameters.add(name=param, string_match=_string_matcher(value))


def _header_matcher(
    name: str, value: istio.StringMatch, invert: bool = False
) -> route_components_pb2.HeaderMatcher:
    matcher = route_components_pb2.HeaderMatcher(name=name, invert_match=invert)
    if value.regex is not None and value.regex in ("*", ""):
        matcher.present_match = True
    else:
        matcher.string_match.CopyFrom(_string_matcher(value))
    return matcher


def _string_matcher(value: istio.StringMatch) -> string_pb2.StringMatcher:
    if value.exact is not None:
        return string_pb2.StringMatcher(exact=value.exact)
    if value.prefix is not None:
        return string_pb2.StringMatcher(prefix=value.prefix)
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=value.regex or ""))


# --- actions ------------------------------------------------------------------------------------------


def _set_redirect(route: Route, redirect: istio.HTTPRedirect) -> None:
    out = route.redirect
    if redirect.authority:
        out.host_redirect = redirect.authority
    if redirect.uri:
        out.path_redirect = redirect.uri
    if redirect.scheme:
        out.scheme_redirect = redirect.scheme
    if redirect.port is not None:
        out.port_redirect = redirect.port
    out.response_code = _REDIRECT_CODES[redirect.redirect_code]


def _set_action(ctx: RouteContext, vs: ConfigObject, rule: istio.HTTPRoute, route: Route) -> None:
    action = route.route
    weighted = (
        [d for d in rule.route if d.weight is None or d.weight > 0] if len(rule.route) > 1 else rule.route
    )
    if len(weighted) == 1:
        only = weighted[0]
        action.cluster = destination_cluster(ctx, vs, only.destination)
        _set_headers(route, only.headers)
        _hash_policy(ctx, action, _dest_host(ctx, vs, only.destination), only.destination.subset)
    else:
        for dest in weighted:
            cluster = action.weighted_clusters.clusters.add(
                name=destination_cluster(ctx, vs, dest.destination), weight=u32(dest.weight or 0)
            )
            _set_headers(cluster, dest.headers)
    timeout = duration(rule.timeout) if rule.timeout is not None else ZERO
    action.timeout.CopyFrom(timeout)
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(timeout)
    if rule.timeout is not None and timeout != ZERO:
        # A route with `max_stream_duration` uses Envoy's "new timeouts": `timeout` is then ignored
        # for plain HTTP, so the VirtualService timeout must be the stream's maximum duration too
        # (modern Istio sets both).
        action.max_stream_duration.max_stream_duration.CopyFrom(timeout)
    _set_retry_policy(ctx, action, rule.retries)
    if rule.rewrite is not None:
        if rule.rewrite.uri:
            action.prefix_rewrite = rule.rewrite.uri
        if rule.rewrite.authority:
            action.host_rewrite_literal = rule.rewrite.authority
    if rule.mirror is not None:
        mirror = action.request_mirror_policies.add(cluster=destination_cluster(ctx, vs, rule.mirror))
        percent = _mirror_percent(rule)
        mirror.runtime_fraction.default_value.CopyFrom(fraction(percent))


def _mirror_percent(rule: istio.HTTPRoute) -> float:
    if rule.mirror_percentage is not None:
        return rule.mirror_percentage.value
    if rule.mirror_percent is not None:
        return float(rule.mirror_percent)
    return 100.0


def _dest_host(ctx: RouteContext, vs: ConfigObject, dest: istio.Destination) -> str:
    return resolve_short_host(dest.host, vs.namespace, ctx.mesh.domain_suffix)


def destination_cluster(ctx: RouteContext, vs: ConfigObject, dest: istio.Destination) -> str:
    """`outbound|<port>|<subset>|<host>`: the port is the destination's, else the service's only port,
    else the listener's."""
    host = _dest_host(ctx, vs, dest)
    port = dest.port.number if dest.port is not None else 0
    if not port:
        service = ctx.mesh.service(host)
        port = service.ports[0].port if service is not None and len(service.ports) == 1 else ctx.port
    return names.outbound_cluster_name(port, host, dest.subset)


def _set_retry_policy(
    ctx: RouteContext, action: route_components_pb2.RouteAction, retries: istio.HTTPRetry | None
) -> None:
    """Istio's default policy unless the rule sets `retries` (`attempts: 0` turns retries off)."""
    if retries is not None and retries.attempts <= 0:
        return
    policy = action.retry_policy
    policy.CopyFrom(_DEFAULT_ROUTES[ctx.modern].route.retry_policy)
    if retries is None:
        return
    policy.num_retries.value = retries.attempts
    if retries.retry_on:
        reasons = [r.strip() for r in retries.retry_on.split(",") if r.strip()]
        codes = [int(r) for r in reasons if r.isdigit()]
        words = [r for r in reasons if not r.isdigit()]
        if codes and ctx.modern and "retriable-status-codes" not in words:
            words.append("retriable-status-codes")
        policy.retry_on = ",".join(words)
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    if retries.per_try_timeout is not None:
        policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))


def _hash_policy(ctx: RouteContext, action: route_components_pb2.RouteAction, host: str, subset: str) -> None:
    """Consistent-hash DestinationRules need a matching route `hash_policy`."""
    lb = _consistent_hash_for(ctx, host, subset)
    if lb is None:
        return
    policy = action.hash_policy.add()
    if lb.http_header_name is not None:
        policy.header.header_name = lb.http_header_name
    elif lb.http_cookie is not None:
        policy.cookie.name = lb.http_cookie.name
        policy.cookie.path = lb.http_cookie.path
        if lb.http_cookie.ttl is not None:
            policy.cookie.ttl.CopyFrom(duration(lb.http_cookie.ttl))
    elif lb.use_source_ip:
        policy.connection_properties.source_ip = True
    elif lb.http_query_parameter_name is not None:
        policy.query_parameter.name = lb.http_query_parameter_name


def _consistent_hash_for(ctx: RouteContext, host: str, subset: str) -> istio.ConsistentHash | None:
    """The consistent hash the DestinationRule of `host` asks for (for `subset`), if any."""
    if not ctx.mesh.destination_rules:
        return None
    service = ctx.mesh.service(host)
    if service is None:
        return None
    rule = destination_rule(ctx.mesh, ctx.proxy, service)
    if rule is None:
        return None
    spec: istio.DestinationRuleSpec = rule.spec
    return _consistent_hash(spec, subset)


def _consistent_hash(spec: istio.DestinationRuleSpec, subset: str) -> istio.ConsistentHash | None:
    found = None
    if spec.traffic_policy is not None and spec.traffic_policy.load_balancer is not None:
        found = spec.traffic_policy.load_balancer.consistent_hash
    for entry in spec.subsets:
        tp = entry.traffic_policy
        if entry.name == subset and tp is not None and tp.load_balancer is not None:
            found = tp.load_balancer.consistent_hash
    return found


# --- headers, fault, cors, decorator ------------------------------------------------------------------


_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_APPEND = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD


def _header_options(ops: istio.HeaderOperations) -> list[base_pb2.HeaderValueOption]:
    options = [(k, v, _OVERWRITE) for k, v in ops.set.items()] + [(k, v, _APPEND) for k, v in ops.add.items()]
    return [
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=k, value=v), append_action=action)
        for k, v, action in sorted(options, key=lambda o: o[0])
    ]


def _set_headers(
    target: Route | route_components_pb2.WeightedCluster.ClusterWeight, headers: istio.Headers | None
) -> None:
    """Header operations on a route, or on one weighted cluster (both messages have the same fields)."""
    if headers is None:
        return
    if headers.request is not None:
        target.request_headers_to_add.extend(_header_options(headers.request))
        target.request_headers_to_remove.extend(headers.request.remove)
    if headers.response is not None:
        target.response_headers_to_add.extend(_header_options(headers.response))
        target.response_headers_to_remove.extend(headers.response.remove)


def _fault(fault: istio.HTTPFaultInjection) -> fault_pb2.HTTPFault:
    out = fault_pb2.HTTPFault()
    if fault.delay is not None:
        out.delay.fixed_delay.CopyFrom(duration(fault.delay.fixed_delay))
        out.delay.percentage.CopyFrom(fraction(_fault_percent(fault.delay.percentage, fault.delay.percent)))
    if fault.abort is not None:
        out.abort.http_status = fault.abort.http_status
        out.abort.percentage.CopyFrom(fraction(_fault_percent(fault.abort.percentage, None)))
    return out


def _fault_percent(percentage: istio.Percentage | None, percent: int | None) -> float:
    if percentage is not None:
        return percentage.value
    return float(percent) if percent is not None else 100.0


def _cors(policy: istio.CorsPolicy) -> cors_pb2.CorsPolicy:
    out = cors_pb2.CorsPolicy()
    for origin in policy.allow_origin:
        out.allow_origin_string_match.add(exact=origin)
    for match in policy.allow_origins:
        out.allow_origin_string_match.append(_string_matcher(match))
    out.allow_methods = ",".join(policy.allow_methods)
    out.allow_headers = ",".join(policy.allow_headers)
    out.expose_headers = ",".join(policy.expose_headers)
    if policy.max_age is not None:
        out.max_age = str(int(policy.max_age.seconds))
    if policy.allow_credentials is not None:
        out.allow_credentials.value = policy.allow_credentials
    out.filter_enabled.default_value.CopyFrom(fraction(100.0))
    return out


def _operation(ctx: RouteContext, vs: ConfigObject, route: Route) -> str:
    """`<host>:<port><path>` of the single destination, else `<vsName>:<listenerPort><path>`."""
    match = route.match
    if match.HasField("safe_regex"):
        path = match.safe_regex.regex
    elif match.path:
        path = match.path
    else:
        path = (match.prefix or "/") + "*"
    if route.HasField("route") and route.route.cluster:
        key = names.ClusterKey.parse(route.route.cluster)
        if key is not None:
            return f"{key.hostname}:{key.port}{path}"
    return f"{vs.name}:{ctx.port}{path}"


def merge_catch_all_last(routes: Sequence[Route]) -> list[Route]:
    """Gateways concatenate the routes of several VirtualServices for one host; catch-all routes
    move to the end so they do not shadow the others (Istio's CombineVHostRoutes)."""
    specific: list[Route] = []
    catch_all: list[Route] = []
    for route in routes:
        (catch_all if _is_catch_all(route) else specific).append(route)
    return specific + catch_all
