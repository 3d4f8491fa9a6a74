"""What the local mesh looks like, computed from a `Mesh` and nothing else (pure: no IO).

The sandbox runtime (`sandbox.runtime`) turns this plan into namespaces, files and processes;
keeping every name, address, file text and command line here makes all of it unit-testable and
lets a live change be handled as "diff two plans" (`diff_pods`).

Layout (sandbox-networking.md): a node namespace `<prefix>node` holds the bridge `br0`
(10.44.0.1/16, no forwarding, a `local` route for the service range so uncaptured VIP traffic
gets a RST); each pod is a namespace `<prefix><pod>.<namespace>` with `eth0` = its model IP, a
veth whose node-side end is named after the address (`vp<3rd>-<4th>`, at most 15 characters);
pods route only the pod and service ranges, never a default route. One extra namespace outside
the service registry, `<prefix>external`, runs the "external" host of the egress tasks.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pilotfish.iptables.options import INJECTOR_ARGS, Profile
from pilotfish.model.allocate import POD_RANGE, SERVICE_RANGE
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import (
    AGENT_STATUS_PORT,
    ENVOY_READINESS_PORT,
    PROMETHEUS_PORT,
    PROXY_UID,
    ProxyType,
)
from pilotfish.model.service import Service, Workload

DEFAULT_PREFIX = "pf-"
DEFAULT_INGRESS_PORT = 8080
DEFAULT_APP_UID = 1000
BRIDGE = "br0"
BRIDGE_IP = "10.44.0.1"
EXTERNAL_IP = "10.44.0.200"
"""In the pod range's first /24, which the model never gives to a pod (model.allocate)."""
EXTERNAL_HOST = "external.example"
"""The external host's name in every pod's hosts file (`.example` is reserved: it names nothing real)."""
EXTERNAL_PORT = 80
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
"""Names missing from a pod's hosts file fail at once: the query goes to the pod's own loopback."""
MAX_IFNAME = 15
PROXY_PORTS = frozenset({PROMETHEUS_PORT, ENVOY_READINESS_PORT, AGENT_STATUS_PORT})
READY_LINE = re.compile(r"\blistening on\b")
"""The first stdout line of every sample server once it accepts connections (samples/README.md)."""
MARKER_ENV = "PILOTFISH_SANDBOX"
"""Every process the sandbox starts carries `PILOTFISH_SANDBOX=<prefix>/<run id>`, so the processes of
a crashed run can be found even in namespaces that lost their names."""

ProxyCommand = Callable[["Settings", str, Workload, str, str, str], "ProcessPlan"]
"""(settings, run id, workload, xds socket, admin socket, log file) -> the proxy process of a pod."""

_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,19}")


class PlanError(ValueError):
    """The manifests or settings cannot be run as a local mesh (the message says which object and why)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything about a run that is not in the manifests."""

    prefix: str = DEFAULT_PREFIX
    run_dir: str = "/run/pilotfish/pf"
    python: str = "python3"
    """The interpreter for `python3` commands and for pilotfish's own processes."""
    pythonpath: str = ""
    """Where the running `pilotfish` package was imported from (passed on to child processes)."""
    ingress_port: int = DEFAULT_INGRESS_PORT
    app_uid: int = DEFAULT_APP_UID
    proxy_uid: int = PROXY_UID
    with_proxies: bool = True
    """False runs pods without init step and Envoy (apps only): for tests of the runtime itself."""
    external_dir: str = ""
    """Directory of samples/external/echo.py; empty: no external host."""


def validate_prefix(prefix: str) -> str | None:
    """A message when `prefix` cannot start namespace and file names, else None."""
    if not _PREFIX_RE.fullmatch(prefix):
        return (f"prefix {prefix!r} must be 1-20 characters of a-z, 0-9 and '-', starting with a letter "
                "or digit")
    return None


def run_dir_for(root: str, prefix: str) -> str:
    """`/run/pilotfish` + `pf-` -> `/run/pilotfish/pf-`: one directory per prefix."""
    return str(PurePosixPath(root) / prefix)


# --- names ---------------------------------------------------------------------------------------------


def node_netns(prefix: str) -> str:
    return f"{prefix}node"


def external_netns(prefix: str) -> str:
    return f"{prefix}external"


def pod_netns(prefix: str, pod: str, namespace: str) -> str:
    """`pf-productpage-v1-ll9l86w5rq-4rcjb.default`: the pod's proxy id behind the prefix. The dot keeps
    pod namespaces apart from `<prefix>node` and `<prefix>external`."""
    return f"{prefix}{pod}.{namespace}"


def veth_name(ip: str) -> str:
    """The node-side veth of a pod: `vp<3rd octet>-<4th octet>` (unique per address, <= 15 chars)."""
    octets = ip.split(".")
    name = f"vp{octets[2]}-{octets[3]}"
    assert len(name) <= MAX_IFNAME, name
    return name


# --- plan types ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessPlan:
    """One process of a pod: the init step, an app container, or the proxy (agent + Envoy)."""

    kind: str
    """`init`, `app` or `proxy`."""
    name: str
    """Container name (`init` and `proxy` for those two): the `-c` of `pilotfish logs`."""
    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...]
    uid: int | None
    """Run as this uid/gid (via setpriv); None: root in the pod (init step, agent)."""
    log: str
    ready_line: bool = False
    """Ready once its log shows the sample servers' `listening on` line (else: once it runs)."""


@dataclass(frozen=True, slots=True)
class PodPlan:
    name: str
    namespace: str
    netns: str
    ip: str
    veth: str
    proxy_type: ProxyType | None
    hosts: str
    """The text of `/etc/netns/<netns>/hosts`."""
    processes: tuple[ProcessPlan, ...]
    admin: str = ""
    """Path of the Envoy admin unix socket ('' without a proxy)."""
    dir: str = ""
    """The pod's directory in the run directory (admin socket, logs)."""
    signature: str = ""
    """Changes whenever the pod must be re-created (address, containers, labels, proxy)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.namespace)

    @property
    def proxy_id(self) -> str:
        return f"{self.name}.{self.namespace}"

    def process(self, kind: str) -> list[ProcessPlan]:
        return [p for p in self.processes if p.kind == kind]


@dataclass(frozen=True, slots=True)
class IngressPlan:
    """Host access: 127.0.0.1:<host_port> in the root namespace -> <pod ip>:<pod_port> in the gateway pod."""

    pod: tuple[str, str]
    netns: str
    ip: str
    pod_port: int
    host_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"


@dataclass(frozen=True, slots=True)
class SandboxPlan:
    settings: Settings
    node: str
    pods: tuple[PodPlan, ...]
    external: PodPlan | None
    ingress: IngressPlan | None
    xds_socket: str
    warnings: tuple[str, ...] = ()

    @property
    def run_dir(self) -> str:
        return self.settings.run_dir

    def pod(self, name: str, namespace: str) -> PodPlan | None:
        return next((p for p in self.pods if p.key == (name, namespace)), None)

    @property
    def all_pods(self) -> tuple[PodPlan, ...]:
        """The mesh's pods plus the external host."""
        return self.pods + ((self.external,) if self.external else ())


@dataclass(frozen=True, slots=True)
class PodDiff:
    added: tuple[PodPlan, ...] = ()
    removed: tuple[PodPlan, ...] = ()
    kept: tuple[PodPlan, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed


# --- hosts files ---------------------------------------------------------------------------------------


def service_names(service: Service, pod_namespace: str) -> list[str]:
    """The names a pod resolves a service by: FQDN, `name.ns.svc`, `name.ns`, and the short name only in
    the service's own namespace (a hosts file has no search domains)."""
    if service.from_service_entry:
        return [service.hostname]
    short = f"{service.name}.{service.namespace}"
    names = [service.hostname, f"{short}.svc", short]
    if service.namespace == pod_namespace:
        names.append(service.name)
    return names


def hosts_file(services: Iterable[Service], pod: str, namespace: str, ip: str,
               extra: Sequence[tuple[str, str]] = ()) -> str:
    """`/etc/hosts` of one pod: localhost (the bind mount replaces the whole file), the pod's own name,
    every service with a VIP, then `extra` (address, name) entries."""
    lines = [f"# pilotfish sandbox: hosts of {pod}.{namespace} (rewritten in place on changes)",
             "127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    if ip:
        lines.append(f"{ip} {pod}")
    for service in sorted(services, key=lambda s: s.hostname):
        if service.has_vip and _is_ipv4(service.address):
            lines.append(f"{service.address} {' '.join(service_names(service, namespace))}")
    lines.extend(f"{address} {name}" for address, name in extra)
    return "\n".join(lines) + "\n"


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


# --- ip -batch lines -----------------------------------------------------------------------------------


def namespace_add_lines(netns: Iterable[str]) -> list[str]:
    """For `ip -batch -` in the root namespace."""
    return [f"netns add {ns}" for ns in netns]


def pod_sysctl_lines(netns: Iterable[str]) -> list[str]:
    """For `ip -batch -`, run before eth0 exists: no IPv6 on eth0 (lo keeps ::1; gotcha 6), and ports
    below 1024 for ordinary uids (the gateway's :80 as uid 1337; gotcha 8). Per namespace only."""
    script = ("echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; "
              "echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start")
    return [f"netns exec {ns} sh -c {shlex.quote(script)}" for ns in netns]


def node_sysctl_lines(node: str) -> list[str]:
    """For `ip -batch -`: IPv6 off in the node (nothing there needs it); forwarding stays off (default)."""
    script = ("echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
              "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
    return [f"netns exec {node} sh -c {shlex.quote(script)}"]


def node_setup_lines() -> list[str]:
    """For `ip -n <node> -batch -`: the bridge and the `local` service route (uncaptured VIP traffic
    reaching the node gets a TCP RST at once, gotcha 2)."""
    return [
        "link set lo up",
        f"link add {BRIDGE} type bridge",
        f"addr add {BRIDGE_IP}/{POD_RANGE.prefixlen} dev {BRIDGE}",
        f"link set {BRIDGE} up",
        f"route add local {SERVICE_RANGE} dev lo",
    ]


def node_veth_lines(pods: Iterable[PodPlan]) -> list[str]:
    """For `ip -n <node> -batch -`: each pod's veth, created directly across the two namespaces (no
    interface ever appears in the root namespace), attached to the bridge."""
    lines = []
    for pod in pods:
        lines.append(f"link add {pod.veth} type veth peer name eth0 netns {pod.netns}")
        lines.append(f"link set {pod.veth} alias {pod.netns} master {BRIDGE} up")
    return lines


def pod_inside_lines(pod: PodPlan) -> list[str]:
    """For `ip -n <pod> -batch -`: exactly two routes, the on-link pod range and the service range via the
    node. No default route: an address the mesh does not own is unreachable."""
    return [
        "link set lo up",
        f"addr add {pod.ip}/{POD_RANGE.prefixlen} dev eth0",
        "link set eth0 up",
        f"route add {SERVICE_RANGE} via {BRIDGE_IP} dev eth0",
    ]


# --- processes -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """The fields of a manifest container the sandbox runs (from `config.k8s.Container`)."""

    name: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    working_dir: str
    ports: tuple[int, ...]


def container_spec(container: Any) -> ContainerSpec:
    return ContainerSpec(
        name=str(container.name),
        command=tuple(str(c) for c in container.command),
        args=tuple(str(a) for a in container.args),
        env=tuple((str(e.name), str(e.value)) for e in container.env),
        working_dir=str(container.working_dir or ""),
        ports=tuple(int(p.container_port) for p in container.ports),
    )


def base_env(settings: Settings, run_id: str) -> tuple[tuple[str, str], ...]:
    """What every sandbox process gets besides its own variables: a plain PATH and the run marker."""
    return (("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ("LANG", "C.UTF-8"), (MARKER_ENV, f"{settings.prefix}/{run_id}"))


def app_process(settings: Settings, run_id: str, workload_dir: str, pod: str, namespace: str, ip: str,
                spec: ContainerSpec, log: str) -> ProcessPlan:
    """How a container runs (samples/README.md): `python3` is our interpreter, paths are relative to the
    manifest's directory (the working directory), env is the container's plus POD_NAME/NAMESPACE/IP."""
    command = list(spec.command)
    if command[0] == "python3":
        command[0] = settings.python
    cwd = str(PurePosixPath(workload_dir) / spec.working_dir) if spec.working_dir else workload_dir
    env = (*base_env(settings, run_id), ("PYTHONUNBUFFERED", "1"), *spec.env,
           ("POD_NAME", pod), ("POD_NAMESPACE", namespace), ("POD_IP", ip))
    return ProcessPlan("app", spec.name, (*command, *spec.args), cwd, env, settings.app_uid, log,
                       ready_line=bool(spec.ports))


def pilotfish_argv(settings: Settings, *args: str) -> tuple[str, ...]:
    return (settings.python, "-m", "pilotfish", *args)


def pilotfish_env(settings: Settings, run_id: str) -> tuple[tuple[str, str], ...]:
    extra = (("PYTHONPATH", settings.pythonpath),) if settings.pythonpath else ()
    return (*base_env(settings, run_id), *extra)


def init_process(settings: Settings, run_id: str, profile: Profile, log: str) -> ProcessPlan:
    """The init step: `pilotfish iptables` with the injector's default arguments."""
    return ProcessPlan("init", "init", pilotfish_argv(settings, "iptables", *INJECTOR_ARGS[profile]),
                       "/", pilotfish_env(settings, run_id), None, log)


def workload_dir(workload: Workload) -> str:
    """The directory of the manifest that declares the pod (relative paths of its commands start there)."""
    if workload.origin is None or not workload.origin.file:
        raise PlanError(f"pod {workload.proxy_id}: unknown manifest file (needed for its commands' paths)")
    return str(PurePosixPath(workload.origin.file).parent)


def _iptables_profile(mesh: Mesh) -> Profile:
    return "modern" if mesh.profile.value == "modern" else "1.3"


# --- the whole plan ------------------------------------------------------------------------------------


def plan_sandbox(mesh: Mesh, settings: Settings, run_id: str,
                 proxy_command: ProxyCommand | None = None) -> SandboxPlan:
    """The local mesh for `mesh`. `proxy_command` builds each pod's proxy process (the real one is
    `sandbox.components.proxy_process`); None runs no proxies."""
    run = PurePosixPath(settings.run_dir)
    xds_socket = str(run / "xds.sock")
    extra_hosts = [(EXTERNAL_IP, EXTERNAL_HOST)] if settings.external_dir else []
    warnings: list[str] = []
    pods = []
    for workload in sorted(mesh.workloads, key=lambda w: (w.namespace, w.name)):
        if not _is_ipv4(workload.ip) or ipaddress.ip_address(workload.ip) not in POD_RANGE:
            raise PlanError(f"pod {workload.proxy_id}: address {workload.ip!r} is not in {POD_RANGE}")
        pods.append(_pod_plan(mesh, settings, run_id, workload, extra_hosts, xds_socket, proxy_command,
                              warnings))
    _check_unique(pods)
    external = _external_plan(settings, run_id) if settings.external_dir else None
    return SandboxPlan(settings, node_netns(settings.prefix), tuple(pods), external,
                       _ingress_plan(mesh, settings, pods), xds_socket, tuple(warnings))


def _pod_plan(mesh: Mesh, settings: Settings, run_id: str, workload: Workload,
              extra_hosts: Sequence[tuple[str, str]], xds_socket: str,
              proxy_command: ProxyCommand | None,
              warnings: list[str]) -> PodPlan:
    pod_dir = PurePosixPath(settings.run_dir) / "pods" / workload.proxy_id
    netns = pod_netns(settings.prefix, workload.name, workload.namespace)
    manifest_dir = workload_dir(workload)
    processes: list[ProcessPlan] = []
    if not settings.with_proxies or workload.proxy_type is None:
        proxy_command = None
    proxied = proxy_command is not None
    if proxied and workload.proxy_type is ProxyType.SIDECAR:
        processes.append(init_process(settings, run_id, _iptables_profile(mesh), str(pod_dir / "init.log")))
    specs = [container_spec(c) for c in workload.containers]
    for spec in specs:
        if spec.command:
            processes.append(app_process(settings, run_id, manifest_dir, workload.name, workload.namespace,
                                         workload.ip, spec, str(pod_dir / f"{spec.name}.log")))
        elif workload.proxy_type is None or spec.args:
            warnings.append(f"pod {workload.proxy_id}: container {spec.name!r} has no command; not run")
    admin = ""
    if proxy_command is not None:
        admin = str(pod_dir / "admin.sock")
        log = str(pod_dir / "proxy.log")
        processes.append(proxy_command(settings, run_id, workload, xds_socket, admin, log))
    signature = repr((workload.ip, workload.proxy_type, sorted(workload.labels.items()), specs, manifest_dir,
                      workload.service_account))
    return PodPlan(
        name=workload.name, namespace=workload.namespace, netns=netns, ip=workload.ip,
        veth=veth_name(workload.ip), proxy_type=workload.proxy_type if proxied else None,
        hosts=hosts_file(mesh.services, workload.name, workload.namespace, workload.ip, extra_hosts),
        processes=tuple(processes), admin=admin, dir=str(pod_dir), signature=signature,
    )


def _check_unique(pods: Sequence[PodPlan]) -> None:
    seen: dict[str, str] = {}
    for pod in pods:
        for key in (pod.ip, pod.veth):
            if key in seen:
                raise PlanError(f"pods {seen[key]} and {pod.proxy_id} both use {key}")
            seen[key] = pod.proxy_id


def _external_plan(settings: Settings, run_id: str) -> PodPlan:
    """The host outside the mesh: no Service, no sidecar, no capture (samples/external/README.md)."""
    pod_dir = PurePosixPath(settings.run_dir) / "pods" / "external"
    env = (*base_env(settings, run_id), ("PYTHONUNBUFFERED", "1"), ("POD_NAME", "external"))
    echo = ProcessPlan("app", "external", (settings.python, "echo.py", str(EXTERNAL_PORT)),
                       settings.external_dir, env, settings.app_uid, str(pod_dir / "external.log"),
                       ready_line=True)
    netns = external_netns(settings.prefix)
    return PodPlan(name="external", namespace="", netns=netns, ip=EXTERNAL_IP, veth=veth_name(EXTERNAL_IP),
                   proxy_type=None, hosts=hosts_file((), "external", "", EXTERNAL_IP), processes=(echo,),
                   dir=str(pod_dir), signature="external")


def ingress_workload(mesh: Mesh) -> Workload | None:
    """The ingress gateway pod: a router whose labels carry the mesh's ingress selector
    (`istio: ingressgateway`), else the first router."""
    routers = [w for w in mesh.workloads if w.proxy_type is ProxyType.ROUTER]
    selector = mesh.mesh_config.ingress_selector
    preferred = [w for w in routers if w.labels.get("istio") == selector]
    candidates = preferred or routers
    return candidates[0] if candidates else None


def _ingress_plan(mesh: Mesh, settings: Settings, pods: Sequence[PodPlan]) -> IngressPlan | None:
    workload = ingress_workload(mesh)
    if workload is None:
        return None
    pod = next(p for p in pods if p.key == (workload.name, workload.namespace))
    return IngressPlan((workload.name, workload.namespace), pod.netns, workload.ip,
                       ingress_pod_port(workload), settings.ingress_port)


def ingress_pod_port(workload: Workload) -> int:
    """The gateway pod's port the host's 127.0.0.1:<ingress port> is forwarded to: its first container
    port that is not one of the proxy's own (80 when it declares none)."""
    ports = [port for _, port in workload.container_ports if port not in PROXY_PORTS]
    return ports[0] if ports else 80


def diff_pods(old: Sequence[PodPlan], new: Sequence[PodPlan]) -> PodDiff:
    """Which pods a live change adds and removes; a pod whose signature changed is both (re-created)."""
    before = {p.key: p for p in old}
    after = {p.key: p for p in new}
    removed = [p for k, p in before.items() if k not in after or after[k].signature != p.signature]
    added = [p for k, p in after.items() if k not in before or before[k].signature != p.signature]
    kept = [p for k, p in after.items() if k in before and before[k].signature == p.signature]
    return PodDiff(tuple(added), tuple(removed), tuple(kept))


def hosts_changes(old: Sequence[PodPlan], new: Sequence[PodPlan]) -> list[PodPlan]:
    """Kept pods whose hosts file text changed (services added, removed or re-addressed)."""
    before = {p.key: p for p in old}
    return [p for p in new if p.key in before and before[p.key].hosts != p.hosts
            and before[p.key].signature == p.signature]


def env_dict(process: ProcessPlan) -> dict[str, str]:
    return dict(process.env)


def labels_args(labels: Mapping[str, str]) -> list[str]:
    return [arg for key, value in sorted(labels.items()) for arg in ("--label", f"{key}={value}")]
