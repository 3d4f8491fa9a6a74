"""`pilotfish trace` against the running local mesh (IO): live config from the Envoys' admin sockets,
and `--verify` (send the real request, read the proxies' access logs, compare).

The live config goes through the same dump source as `proxy-config` (`cli.dump_sources.AdminSource`:
`/config_dump?include_eds` over the pod's admin unix socket) into the walk's pluggable config source
(`simulate.source.DumpedSource`). The mesh model the walk needs besides Envoy config (pods, their IPs
and annotations, Services for name resolution, VirtualService origins) is read from the manifests the
running mesh was started from (the state file's directories), which the discovery server follows live.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pilotfish.cli.dump_sources import AdminSource
from pilotfish.inspect.configdump import ConfigDump
from pilotfish.model.mesh import Mesh
from pilotfish.model.service import Workload
from pilotfish.sandbox import probe
from pilotfish.sandbox.plan import DEFAULT_APP_UID, ingress_pod_port, ingress_workload
from pilotfish.sandbox.state import MeshState, PodState
from pilotfish.simulate.logline import CORRELATION, NEEDED, LogFormat, log_format
from pilotfish.simulate.request import IngressSource, PodSource, Protocol, Request
from pilotfish.simulate.result import Trace
from pilotfish.simulate.source import DumpedSource
from pilotfish.simulate.verify import Observed, Sent, Start, Verification, compare, correlate, written

ETC_NETNS = Path("/etc/netns")
LIVE_DESCRIPTION = "live config of the running mesh's Envoys, /config_dump over their admin sockets"


class LiveError(Exception):
    """The running mesh cannot answer what was asked (the message says what to do)."""


def state_pod(state: MeshState, workload: Workload) -> PodState:
    for pod in state.pods:
        if (pod.name, pod.namespace) == (workload.name, workload.namespace):
            return pod
    raise LiveError(
        f"pod {workload.proxy_id} is in the manifests but not (yet) in the running mesh; "
        "wait for `pilotfish up` to create it, or trace offline with --manifests"
    )


def live_source(state: MeshState | None, admins: Mapping[str, str]) -> DumpedSource:
    """Each pod's config from its Envoy: `admins` (by `<pod>.<namespace>`, from `--admin POD=ADDRESS`)
    first, else the running mesh's admin socket."""

    def fetch(workload: Workload) -> ConfigDump:
        address = _admin_for(workload, admins)
        if address is None:
            if state is None:
                raise LiveError(f"no --admin address for {workload.proxy_id} and no local mesh is running")
            pod = state_pod(state, workload)
            if not pod.admin:
                raise LiveError(f"pod {workload.proxy_id} runs no proxy in the running mesh")
            address = f"unix:{pod.admin}"
        return AdminSource(address).config_dump()

    description = LIVE_DESCRIPTION if state is not None else "live config from the --admin addresses"
    return DumpedSource(fetch, description)


def _admin_for(workload: Workload, admins: Mapping[str, str]) -> str | None:
    return admins.get(workload.proxy_id)


def parse_admins(values: Sequence[str]) -> dict[str, str]:
    """`--admin POD=ADDRESS` (POD as `name` or `name.namespace`) -> {POD: ADDRESS}."""
    result: dict[str, str] = {}
    for value in values:
        pod, equals, address = value.partition("=")
        if not equals or not pod or not address:
            raise LiveError(
                f"--admin {value!r}: expected POD=ADDRESS (e.g. productpage-v1-x=unix:/path/admin.sock)"
            )
        result[pod] = address
    return result


def pod_hosts(state: MeshState, workload: Workload) -> dict[str, str]:
    """The names in a live pod's hosts file (`ip netns exec` mounts /etc/netns/<netns>/hosts)."""
    try:
        netns = state_pod(state, workload).netns
        text = (ETC_NETNS / netns / "hosts").read_text()
    except (LiveError, OSError):
        return {}
    result: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        for name in words[1:]:
            result.setdefault(name.lower(), words[0])
    return result


def relay(state: MeshState, mesh: Mesh) -> tuple[int, int] | None:
    """(host port, gateway pod port) of the running mesh's ingress relay (127.0.0.1:<host port>)."""
    gateway = ingress_workload(mesh)
    port = state.ingress_url.rpartition(":")[2]
    if gateway is None or not port.isdigit():
        return None
    return int(port), ingress_pod_port(gateway)


# --- --verify ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyContext:
    state: MeshState
    log_format: LogFormat
    relay: tuple[int, int] | None


def verify_context(state: MeshState, running: Mesh) -> VerifyContext:
    """What --verify needs, or a LiveError saying why it cannot work on this mesh."""
    fmt = log_format(running.mesh_config)
    if fmt is None:
        raise LiveError(
            "--verify reads the proxies' access logs, which are off in the running mesh: set "
            "`accessLogFile: /dev/stdout` in the `istio` ConfigMap's mesh (samples/bookinfo/mesh.yaml does)"
        )
    missing = fmt.missing(NEEDED)
    if missing or len(fmt.missing(CORRELATION)) == len(CORRELATION):
        absent = ", ".join(missing or CORRELATION)
        raise LiveError(
            f"--verify needs {absent} in the access-log format (mesh accessLogFormat); "
            "Istio's default format has them"
        )
    return VerifyContext(state, fmt, relay(state, running))


def verify(
    context: VerifyContext, mesh: Mesh, trace: Trace, retrace: Callable[[str], Trace]
) -> tuple[Verification, Trace]:
    """Send the traced request for real and compare the proxies' access-log lines with the trace.

    When Envoy chose another of several weighted clusters, the branch it took is traced again
    (`retrace(cluster)`, as `--pick` does) and that trace is compared and returned."""
    request = trace.request
    token = secrets.token_hex(6)
    request_id = f"pilotfish-verify-{token}"
    user_agent = next((v for k, v in request.headers if k.lower() == "user-agent"), "")
    user_agent = user_agent or f"pilotfish-verify/{token}"
    spec, netns, how = _client(context, mesh, request, request_id, user_agent)
    cursor = probe.LogCursor(context.state)
    cursor.mark()
    answer = probe.send(spec, netns)
    behind_relay = netns is None
    sent = Sent(
        how,
        request_id if request.protocol is not Protocol.TCP else "",
        user_agent if request.protocol is not Protocol.TCP else "",
        "" if behind_relay else answer.local,
        answer.status,
        answer.error,
        answer.received,
    )
    start = _start(trace, sent, context.state)
    pods_by_ip = {p.ip: p.proxy_id for p in context.state.pods if p.proxy_type}
    expected = len(written(trace))

    def chain_of(lines: Mapping[str, Sequence[str]]) -> list[Observed]:
        observed = [
            Observed(pod, parsed)
            for pod, texts in lines.items()
            for parsed in (context.log_format.parse(t) for t in texts)
            if parsed is not None
        ]
        return correlate(observed, start, pods_by_ip)

    lines = cursor.settle(lambda current: len(chain_of(current)) >= expected)
    chain = chain_of(lines)
    verification = compare(trace, chain, sent)
    for _ in range(3):
        if verification.repick is None:
            break
        trace = retrace(verification.repick)
        verification = compare(trace, chain, sent, picked=verification.repick)
    return verification, trace


def _client(
    context: VerifyContext, mesh: Mesh, request: Request, request_id: str, user_agent: str
) -> tuple[probe.ClientSpec, str | None, str]:
    """The client's request, the namespace it runs in (None: the host) and how it is described."""
    headers: list[tuple[str, str]] = []
    if request.protocol is not Protocol.TCP:
        headers.append(("Host", request.authority))
        headers += [(k, v) for k, v in request.headers if k.lower() != "host"]
        headers.append(("x-request-id", request_id))
        if not any(k.lower() == "user-agent" for k, _ in request.headers):
            headers.append(("User-Agent", user_agent))
    payload = f"pilotfish-verify {request_id}\r\n\r\n"
    base = probe.ClientSpec(
        request.protocol.value,
        request.host,
        request.port,
        request.method,
        request.path_and_query,
        tuple(headers),
        payload,
    )
    source = request.source
    if isinstance(source, PodSource):
        workload = _workload(mesh, source.pod, source.namespace)
        pod = state_pod(context.state, workload)
        return base, pod.netns, f"from {pod.proxy_id} as uid {DEFAULT_APP_UID}"
    assert isinstance(source, IngressSource)
    if (
        context.relay is not None
        and context.relay[1] == source.port
        and (source.host_port in (None, context.relay[0]))
    ):
        host_port = context.relay[0]
        spec = _with_target(base, "127.0.0.1", host_port)
        return spec, None, f"through the ingress relay 127.0.0.1:{host_port}"
    gateway = state_pod(context.state, _workload(mesh, source.pod, source.namespace))
    spec = _with_target(base, gateway.ip, source.port)
    return spec, gateway.netns, f"inside the gateway pod {gateway.proxy_id} to {gateway.ip}:{source.port}"


def _with_target(spec: probe.ClientSpec, address: str, port: int) -> probe.ClientSpec:
    return probe.ClientSpec(
        spec.protocol, spec.host, port, spec.method, spec.target, spec.headers, spec.payload, connect=address
    )


def _workload(mesh: Mesh, name: str, namespace: str) -> Workload:
    workload = mesh.workload(name, namespace)
    if workload is None:
        raise LiveError(f"pod {name}.{namespace} is not in the mesh")
    return workload


def _start(trace: Trace, sent: Sent, state: MeshState) -> Start:
    """The proxy whose line comes first: the trace's first logging proxy, else the source's own."""
    logs = written(trace)
    if logs:
        pod = logs[0].pod
    else:
        source = trace.request.source
        pod = f"{source.pod}.{source.namespace}"
    return Start(pod, sent.client, sent.request_id, sent.user_agent)
