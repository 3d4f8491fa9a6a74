"""`proxy-config route`: route configurations as istioctl prints them.

istioctl 1.3 prints a `NOTE:` line, then `NAME VIRTUAL HOSTS` with each configuration's virtual-host
count. Modern istioctl (verbose by default) prints one row per route, `NAME VHOST NAME DOMAINS MATCH
VIRTUAL SERVICE`, skipping routes to PassthroughCluster and printing `/*` + `404` for a virtual host without
routes; DOMAINS is abbreviated (no port forms, no expanded `.svc.cluster.local` duplicates, at most two).
Both order dynamic (RDS) configurations before static ones and then "sort" names numerically, with a
comparator that treats any non-numeric name as not-less; `_istioctl_route_order` reproduces the order Go's
sort produces with it (exactly for up to 12 configurations, where Go uses insertion sort).
"""

from __future__ import annotations

from dataclasses import dataclass

from pilotfish.inspect.configdump import (
    ConfigDump,
    ConfigDumpError,
    JsonObject,
    get,
    get_list,
    get_obj,
    go_atoi,
)
from pilotfish.inspect.listeners import describe_match
from pilotfish.inspect.profile import Profile
from pilotfish.inspect.protojson import normalize
from pilotfish.inspect.tabwriter import tabulate

ROUTE_CONFIGURATION_TYPE = "envoy.config.route.v3.RouteConfiguration"
RDS_NOTE = "NOTE: This output only contains routes loaded via RDS.\n"
PASSTHROUGH_CLUSTER = "PassthroughCluster"
_MAX_DOMAINS = 2


@dataclass(frozen=True)
class RouteFilter:
    """`--name` (exact); `verbose` is modern istioctl's `--verbose` (default true)."""

    name: str = ""
    verbose: bool = True


def selected(dump: ConfigDump, flt: RouteFilter) -> list[JsonObject]:
    configs = dump.route_configs()
    if not configs:
        raise ConfigDumpError("no routes found")
    ordered = _istioctl_route_order(configs)
    return [c for c in ordered if not flt.name or str(get(c, "name", "")) == flt.name]


def summary(dump: ConfigDump, flt: RouteFilter, profile: Profile, *, name_column: bool = False) -> str:
    configs = selected(dump, flt)
    if profile == "1.3":
        rows = [["NAME", "VIRTUAL HOSTS"]]
        rows += [[str(get(c, "name", "")), str(len(get_list(c, "virtual_hosts")))] for c in configs]
        return RDS_NOTE + tabulate(rows, padding=5)

    def label(config: JsonObject) -> str:
        name = str(get(config, "name", ""))
        return f"route/{name}" if name_column else name

    if not flt.verbose:
        rows = [["NAME", "VIRTUAL HOSTS"]]
        rows += [[label(c), str(len(get_list(c, "virtual_hosts")))] for c in configs]
        return tabulate(rows, padding=5)
    rows = [["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]]
    for config in configs:
        for vhost in get_list(config, "virtual_hosts"):
            vhost_name = str(get(vhost, "name", ""))
            domains = describe_route_domains([str(d) for d in get_list(vhost, "domains")])
            routes = get_list(vhost, "routes")
            for route in routes:
                if _is_passthrough(route):
                    continue
                match = describe_match(get_obj(route, "match"))
                rows.append([label(config), vhost_name, domains, match, describe_management(route)])
            if not routes:
                rows.append([label(config), vhost_name, domains, "/*", "404"])
    return tabulate(rows, padding=5)


def objects(dump: ConfigDump, flt: RouteFilter) -> list[JsonObject]:
    return [normalize(config, ROUTE_CONFIGURATION_TYPE) for config in selected(dump, flt)]


def describe_route_domains(domains: list[str]) -> str:
    """Modern DOMAINS column: drop port forms and expanded duplicates, show at most two."""
    if not domains:
        return ""
    if len(domains) == 1:
        return domains[0]
    without_port = [d for d in domains if ":" not in d or (d.count(":") > 2 and d.endswith("]"))]
    shown = _unexpand_domains(without_port)
    if len(shown) > _MAX_DOMAINS:
        return ", ".join(shown[:_MAX_DOMAINS]) + f" + {len(shown) - _MAX_DOMAINS} more..."
    return ", ".join(shown)


def _unexpand_domains(domains: list[str]) -> list[str]:
    """Drop `x.ns.svc.cluster.local` / `x.ns.svc` when the shorter `x.ns` is also listed."""
    present = set(domains)
    redundant = set()
    for domain in domains:
        for suffix in (".svc.cluster.local", ".svc"):
            stripped = domain.removesuffix(suffix)
            if stripped != domain and stripped in present:
                redundant.add(domain)
    return [d for d in domains if d not in redundant]


def describe_management(item: JsonObject) -> str:
    """`<name>.<namespace>` of the Istio config a route or cluster came from (`istio.config` metadata)."""
    istio = get_obj(get_obj(get_obj(item, "metadata"), "filter_metadata"), "istio")
    config = istio.get("config")
    if not isinstance(config, str):
        return ""
    return render_config_path(config)


def render_config_path(path: str) -> str:
    """`/apis/networking.istio.io/<version>/namespaces/<ns>/<kind>/<name>` -> `<name>.<ns>`."""
    pieces = path.split("/")
    if len(pieces) > 5 and pieces[:3] == ["", "apis", "networking.istio.io"] and pieces[4] == "namespaces":
        return f"{pieces[7]}.{pieces[5]}" if len(pieces) == 8 else ""
    return "<unknown>"


def _is_passthrough(route: JsonObject) -> bool:
    action = get(route, "route")
    return isinstance(action, dict) and get(action, "cluster") == PASSTHROUGH_CLUSTER


def _istioctl_route_order(configs: list[JsonObject]) -> list[JsonObject]:
    """Insertion sort with istioctl's less(): both names numeric and i < j; anything else is not less.

    A numeric name therefore moves left past larger numeric names but stops at any non-numeric one.
    """
    ordered = list(configs)
    for i in range(1, len(ordered)):
        j = i
        while j > 0 and _route_less(ordered[j], ordered[j - 1]):
            ordered[j], ordered[j - 1] = ordered[j - 1], ordered[j]
            j -= 1
    return ordered


def _route_less(a: JsonObject, b: JsonObject) -> bool:
    left, right = go_atoi(str(get(a, "name", ""))), go_atoi(str(get(b, "name", "")))
    return left is not None and right is not None and left < right
