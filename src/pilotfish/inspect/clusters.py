"""`proxy-config cluster`: clusters split into Istio's subset-key parts, as istioctl prints them.

A name with more than three `|` is a subset key `direction|port|subset|fqdn` and prints as
`<fqdn> <port> <subset or -> <direction> <TYPE>`; any other name (BlackHoleCluster, the 1.3 DNS-SRV form
`outbound_.9080_._.<fqdn>`, static bootstrap clusters) prints as `<name> - - - <TYPE>`. Rows are sorted by
(fqdn, subset, port, direction). Filters are substring tests on the cluster name, `--port` looks for
`|<port>|`. Modern istioctl adds a DESTINATION RULE column (from `istio.config` metadata).
"""

from __future__ import annotations

from dataclasses import dataclass

from pilotfish.inspect.configdump import ConfigDump, ConfigDumpError, JsonObject, get, go_atoi
from pilotfish.inspect.profile import Profile
from pilotfish.inspect.protojson import normalize
from pilotfish.inspect.routes import describe_management
from pilotfish.inspect.tabwriter import tabulate

CLUSTER_TYPE = "envoy.config.cluster.v3.Cluster"


@dataclass(frozen=True)
class ClusterFilter:
    """`--fqdn`, `--port`, `--subset`, `--direction`."""

    fqdn: str = ""
    port: int = 0
    subset: str = ""
    direction: str = ""

    def verify(self, cluster: JsonObject) -> bool:
        name = cluster_name(cluster)
        if self.fqdn and self.fqdn not in name:
            return False
        if self.direction and self.direction not in name:
            return False
        if self.subset and self.subset not in name:
            return False
        return not (self.port and f"|{self.port}|" not in name)


@dataclass(frozen=True)
class SubsetKey:
    """The parts of a cluster name; a non-subset-key name is all `fqdn`."""

    direction: str
    port: int
    subset: str
    fqdn: str


def cluster_name(cluster: JsonObject) -> str:
    return str(get(cluster, "name", ""))


def is_subset_key(name: str) -> bool:
    return len(name.split("|")) > 3


def parse_subset_key(name: str) -> SubsetKey:
    """Split `direction|port|subset|fqdn`; other names sort as their own fqdn with no port or subset."""
    if not is_subset_key(name):
        return SubsetKey("", 0, "", name)
    direction, port, subset, rest = name.split("|", 3)
    return SubsetKey(direction, go_atoi(port) or 0, subset, "" if "|" in rest else rest)


def sort_key(name: str) -> tuple[str, str, int, str]:
    key = parse_subset_key(name)
    return (key.fqdn, key.subset, key.port, key.direction)


def discovery_type(cluster: JsonObject) -> str:
    """TYPE: the `type` enum, STATIC (its zero value) when unset, e.g. for `cluster_type` extensions."""
    value = get(cluster, "type")
    return str(value) if isinstance(value, str) and value else "STATIC"


def selected(dump: ConfigDump, flt: ClusterFilter) -> list[JsonObject]:
    clusters = dump.clusters()
    if not clusters:
        raise ConfigDumpError("no clusters found")
    ordered = sorted(clusters, key=lambda c: sort_key(cluster_name(c)))
    return [c for c in ordered if flt.verify(c)]


def summary(dump: ConfigDump, flt: ClusterFilter, profile: Profile, *, name_column: bool = False) -> str:
    header = ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"]
    if profile == "modern":
        header.append("DESTINATION RULE")
    rows = [["NAME", *header] if name_column else header]
    for cluster in selected(dump, flt):
        name = cluster_name(cluster)
        label = f"cluster/{name}" if name_column else name
        if is_subset_key(name):
            key = parse_subset_key(name)
            cells = [key.fqdn, str(key.port), key.subset or "-", key.direction, discovery_type(cluster)]
        else:
            cells = [label, "-", "-", "-", discovery_type(cluster)]
        if profile == "modern":
            cells.append(describe_management(cluster))
        rows.append([label, *cells] if name_column else cells)
    return tabulate(rows, padding=5)


def objects(dump: ConfigDump, flt: ClusterFilter) -> list[JsonObject]:
    return [normalize(cluster, CLUSTER_TYPE) for cluster in selected(dump, flt)]
