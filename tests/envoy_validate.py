"""Check generated resources with the real Envoy: `envoy --mode validate` on a bootstrap that holds
them as static resources.

Envoy has no static RDS or EDS, so route configurations are inlined into the listeners that name
them and EDS clusters become STATIC clusters carrying their ClusterLoadAssignment. Everything else
is validated exactly as generated.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import envoy
from google.protobuf import json_format

from pilotfish.xds.protos import cluster_pb2, http_connection_manager_pb2, listener_pb2, pack
from pilotfish.xds.resources import ProxyResources

ENVOY = Path(envoy.__file__).parent / "_bin" / "envoy"
_HCM = http_connection_manager_pb2.HttpConnectionManager


def _listener(listener: listener_pb2.Listener, routes: dict[str, Any]) -> dict[str, Any]:
    copy = listener_pb2.Listener()
    copy.CopyFrom(listener)
    for chain in [*copy.filter_chains, copy.default_filter_chain]:
        for network_filter in chain.filters:
            if not network_filter.typed_config.Is(_HCM.DESCRIPTOR):
                continue
            manager = _HCM()
            network_filter.typed_config.Unpack(manager)
            if manager.HasField("rds"):
                name = manager.rds.route_config_name
                route = routes.get(name)
                manager.ClearField("rds")
                if route is not None:
                    manager.route_config.CopyFrom(route)
                else:
                    manager.route_config.name = name
                network_filter.typed_config.CopyFrom(pack(manager))
    result: dict[str, Any] = json_format.MessageToDict(copy)
    return result


def _cluster(cluster: cluster_pb2.Cluster, endpoints: dict[str, Any]) -> dict[str, Any]:
    copy = cluster_pb2.Cluster()
    copy.CopyFrom(cluster)
    if copy.type == cluster_pb2.Cluster.EDS:
        name = copy.eds_cluster_config.service_name or copy.name
        copy.ClearField("eds_cluster_config")
        copy.type = cluster_pb2.Cluster.STATIC
        cla = endpoints.get(name)
        if cla is not None:
            copy.load_assignment.CopyFrom(cla)
        else:
            copy.load_assignment.cluster_name = copy.name
    result: dict[str, Any] = json_format.MessageToDict(copy)
    return result


def validation_bootstrap(resources: ProxyResources) -> dict[str, Any]:
    routes = {r.name: r.message for r in resources.routes}
    endpoints = {r.name: r.message for r in resources.endpoints}
    return {
        "node": {"id": "sidecar~127.0.0.1~validate.default~default.svc.cluster.local", "cluster": "validate"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [_listener(r.message, routes) for r in resources.listeners],  # type: ignore[arg-type]
            "clusters": [_cluster(r.message, endpoints) for r in resources.clusters],  # type: ignore[arg-type]
        },
    }


def envoy_validate(resources: ProxyResources) -> tuple[bool, str]:
    """(accepted, Envoy's output) for the given resources."""
    with tempfile.TemporaryDirectory(prefix="pf-validate-") as tmp:
        path = Path(tmp) / "bootstrap.json"
        path.write_text(json.dumps(validation_bootstrap(resources)))
        result = subprocess.run(
            [str(ENVOY), "--mode", "validate", "-c", str(path), "-l", "error", "--disable-hot-restart"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    return result.returncode == 0, (result.stdout + result.stderr)[-4000:]
