"""How the sandbox starts the control plane and the proxies: the one place that knows their commands.

`pilotfish discovery` (the xDS server, root namespace, ADS on a unix socket the pods reach through the
file system) and `pilotfish agent sidecar|router` (bootstrap + Envoy as uid 1337, admin on a unix
socket) are separate commands; the sandbox only builds their argument lists here (pure) and checks
that they exist (`missing_commands`), so a change of their flags touches this module alone.
"""

from __future__ import annotations

from pilotfish.model.service import Workload
from pilotfish.sandbox.plan import (
    PROXY_PORTS,
    ProcessPlan,
    Settings,
    container_spec,
    labels_args,
    pilotfish_argv,
    pilotfish_env,
)

REQUIRED_COMMANDS = ("discovery", "agent")
ENVOY_CONCURRENCY = 1
"""One worker per Envoy: 2 cores run about ten of them, and connection limits behave predictably."""
DRAIN_SECONDS = 0
"""Pods of the local mesh are stopped on purpose (down, pod removed): no connection draining."""


def missing_commands(available: list[str]) -> list[str]:
    """The commands the full mesh needs that this pilotfish does not have yet."""
    return [name for name in REQUIRED_COMMANDS if name not in available]


def discovery_argv(settings: Settings, manifests: list[str], xds_socket: str, http: str) -> tuple[str, ...]:
    """The control plane: serves (and hot-reloads) the manifests over ADS on `xds_socket`."""
    args = ["discovery"]
    for path in manifests:
        args += ["--manifests", path]
    args += ["--grpc", f"unix:{xds_socket}", "--http", http]
    return pilotfish_argv(settings, *args)


def discovery_process(settings: Settings, run_id: str, manifests: list[str], xds_socket: str, http: str,
                      log: str) -> ProcessPlan:
    return ProcessPlan("discovery", "discovery", discovery_argv(settings, manifests, xds_socket, http), "/",
                       pilotfish_env(settings, run_id), None, log)


def proxy_process(settings: Settings, run_id: str, workload: Workload, xds_socket: str, admin: str,
                  log: str) -> ProcessPlan:
    """`pilotfish agent sidecar|router` for one pod: it runs as root in the pod namespace (so it can
    write its bootstrap and drop Envoy to `--uid`), Envoy as the proxy uid that the capture rules exempt."""
    assert workload.proxy_type is not None
    ports = sorted({p for c in workload.containers for p in container_spec(c).ports} - PROXY_PORTS)
    args = [
        "agent", workload.proxy_type.value,
        "--discovery", f"unix:{xds_socket}",
        "--pod", workload.name, "--namespace", workload.namespace, "--ip", workload.ip,
        *labels_args(workload.labels),
        "--service-account", workload.service_account,
        "--admin", f"unix:{admin}",
        "--uid", str(settings.proxy_uid),
        "--log-file", log,
        "--concurrency", str(ENVOY_CONCURRENCY),
        "--drain-duration", str(DRAIN_SECONDS),
        *[arg for port in ports for arg in ("--pod-port", str(port))],
    ]
    return ProcessPlan("proxy", "proxy", pilotfish_argv(settings, *args), "/",
                       pilotfish_env(settings, run_id), None, log)
