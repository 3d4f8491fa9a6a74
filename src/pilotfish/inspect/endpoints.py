"""`proxy-config endpoint` (from `/clusters?format=json`) and modern `eds` (from the config dump's EDS).

`endpoint` lists every live host Envoy knows: `ENDPOINT STATUS OUTLIER CHECK CLUSTER`, sorted by address,
port and cluster; STATUS is the EDS health status, OUTLIER CHECK whether outlier detection ejected the host.
`eds` (and the endpoint part of modern `proxy-config all`) reads the ClusterLoadAssignments of a dump taken
with `?include_eds`: `NAME STATUS LOCALITY CLUSTER`, assignments sorted like clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilotfish.inspect.clusters import sort_key
from pilotfish.inspect.configdump import ClustersStatus, ConfigDump, JsonObject, get, get_list, get_obj
from pilotfish.inspect.protojson import normalize
from pilotfish.inspect.tabwriter import tabulate

CLUSTER_STATUS_TYPE = "envoy.admin.v3.ClusterStatus"
CLUSTER_LOAD_ASSIGNMENT_TYPE = "envoy.config.endpoint.v3.ClusterLoadAssignment"


@dataclass(frozen=True)
class EndpointFilter:
    """`--address`, `--port`, `--cluster`, `--status` (address, cluster, status case-insensitive)."""

    address: str = ""
    port: int = 0
    cluster: str = ""
    status: str = ""

    def is_empty(self) -> bool:
        return not (self.address or self.port or self.cluster or self.status)


@dataclass(frozen=True)
class HostRow:
    address: str
    port: int
    cluster: str
    status: str
    failed_outlier_check: bool

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}" if self.port else self.address


def host_row(host: JsonObject, cluster: str) -> HostRow:
    address = get_obj(host, "address")
    health = get_obj(host, "health_status")
    return HostRow(
        address=_host_address(address),
        port=_port(address),
        cluster=cluster,
        status=str(get(health, "eds_health_status", "") or "UNKNOWN"),
        failed_outlier_check=bool(get(health, "failed_outlier_check", False)),
    )


def _host_address(address: JsonObject) -> str:
    socket = get(address, "socket_address")
    if isinstance(socket, dict):
        return str(get(socket, "address", ""))
    pipe = get(address, "pipe")
    if isinstance(pipe, dict):
        return "unix://" + str(get(pipe, "path", ""))
    internal = get(address, "envoy_internal_address")
    if isinstance(internal, dict):
        return f"envoy://{get(internal, 'server_listener_name', '')}/{get(internal, 'endpoint_id', '')}"
    return ""


def _port(address: JsonObject) -> int:
    socket = get_obj(address, "socket_address")
    try:
        return int(get(socket, "port_value", 0))
    except (TypeError, ValueError):
        return 0


def verify_host(flt: EndpointFilter, row: HostRow) -> bool:
    if flt.is_empty():
        return True
    if flt.address and row.address.lower() != flt.address.lower():
        return False
    if flt.port and row.port != flt.port:
        return False
    if flt.cluster and row.cluster.lower() != flt.cluster.lower():
        return False
    return not (flt.status and row.status.lower() != flt.status.lower())


def summary(status: ClustersStatus, flt: EndpointFilter) -> str:
    rows_out: list[HostRow] = []
    for cluster in status.cluster_statuses():
        name = str(get(cluster, "name", ""))
        for host in get_list(cluster, "host_statuses"):
            row = host_row(host, name)
            if verify_host(flt, row):
                rows_out.append(row)
    rows_out.sort(key=lambda r: (r.address, r.port, r.cluster))
    table = [["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]]
    table += [
        [r.endpoint, r.status, "FAILED" if r.failed_outlier_check else "OK", r.cluster] for r in rows_out
    ]
    return tabulate(table, padding=5)


def objects(status: ClustersStatus, flt: EndpointFilter) -> list[JsonObject]:
    """Whole ClusterStatus objects of clusters with at least one matching host (istioctl's `-o json`)."""
    chosen: list[JsonObject] = []
    for cluster in status.cluster_statuses():
        name = str(get(cluster, "name", ""))
        if any(verify_host(flt, host_row(h, name)) for h in get_list(cluster, "host_statuses")):
            chosen.append(normalize(cluster, CLUSTER_STATUS_TYPE))
    return chosen


# ---------------------------------------------------------------- EDS (config dump)


def eds_address(lb_endpoint: JsonObject) -> str:
    """`ip:port`, a pipe path, `envoy://<listener>/<id>`, or `unknown`."""
    address = get_obj(get_obj(lb_endpoint, "endpoint"), "address")
    socket = get(address, "socket_address")
    if isinstance(socket, dict):
        return f"{get(socket, 'address', '')}:{_port(address)}"
    pipe = get(address, "pipe")
    if isinstance(pipe, dict):
        return str(get(pipe, "path", ""))
    internal = get(address, "envoy_internal_address")
    if isinstance(internal, dict) and get(internal, "server_listener_name") is not None:
        return f"envoy://{get(internal, 'server_listener_name', '')}/{get(internal, 'endpoint_id', '')}"
    return "unknown"


def _verify_lb_endpoint(flt: EndpointFilter, lb_endpoint: JsonObject, cluster: str) -> bool:
    if flt.is_empty():
        return True
    if flt.address and eds_address(lb_endpoint).lower() != flt.address.lower():
        return False
    if flt.port and _port(get_obj(get_obj(lb_endpoint, "endpoint"), "address")) != flt.port:
        return False
    if flt.cluster and cluster.lower() != flt.cluster.lower():
        return False
    return not (flt.status and _eds_status(lb_endpoint).lower() != flt.status.lower())


def _eds_status(lb_endpoint: JsonObject) -> str:
    return str(get(lb_endpoint, "health_status", "") or "UNKNOWN")


def eds_selected(dump: ConfigDump, flt: EndpointFilter) -> list[JsonObject]:
    """ClusterLoadAssignments keeping only matching endpoints; assignments left empty are dropped."""
    chosen: list[JsonObject] = []
    for cla in dump.endpoint_configs():
        cluster = str(get(cla, "cluster_name", ""))
        kept = 0
        groups: list[Any] = []
        for group in get_list(cla, "endpoints"):
            lb_endpoints = [
                e for e in get_list(group, "lb_endpoints") if _verify_lb_endpoint(flt, e, cluster)
            ]
            kept += len(lb_endpoints)
            rest = {k: v for k, v in group.items() if k not in ("lb_endpoints", "lbEndpoints")}
            groups.append({**rest, "lb_endpoints": lb_endpoints} if lb_endpoints else rest)
        if kept:
            chosen.append({**cla, "endpoints": groups})
    chosen.sort(key=lambda c: sort_key(str(get(c, "cluster_name", ""))))
    return chosen


def eds_summary(dump: ConfigDump, flt: EndpointFilter, *, name_column: bool = False) -> str:
    rows = [["NAME", "STATUS", "LOCALITY", "CLUSTER"]]
    for cla in eds_selected(dump, flt):
        cluster = str(get(cla, "cluster_name", ""))
        for group in get_list(cla, "endpoints"):
            locality = _locality(get_obj(group, "locality"))
            for lb_endpoint in get_list(group, "lb_endpoints"):
                address = eds_address(lb_endpoint)
                rows.append(
                    [
                        f"endpoint/{address}" if name_column else address,
                        _eds_status(lb_endpoint),
                        locality,
                        cluster,
                    ]
                )
    return tabulate(rows, padding=5)


def eds_objects(dump: ConfigDump, flt: EndpointFilter) -> list[JsonObject]:
    return [normalize(cla, CLUSTER_LOAD_ASSIGNMENT_TYPE) for cla in eds_selected(dump, flt)]


def _locality(locality: JsonObject) -> str:
    """`region/zone/subzone`, stopping at the first empty part after the region."""
    text = str(get(locality, "region", ""))
    zone = str(get(locality, "zone", ""))
    if not zone:
        return text
    text += "/" + zone
    sub_zone = str(get(locality, "sub_zone", ""))
    return text + "/" + sub_zone if sub_zone else text
