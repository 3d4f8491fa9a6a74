"""What `pilotfish agent` is told about its pod, checked once, before anything runs.

Bad input is reported as data: every problem becomes one line of an `OptionError` that names the option
and what is wrong with it, so the CLI can print them all at once instead of a traceback.

Addresses are written the way the rest of pilotfish writes them::

    >>> parse_address("127.0.0.1:15010", "--discovery")
    TcpAddress(host='127.0.0.1', port=15010)
    >>> parse_address("unix:/run/pilotfish/xds.sock", "--discovery")
    UnixAddress(path='/run/pilotfish/xds.sock')
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pilotfish.model.names import (
    DEFAULT_DOMAIN_SUFFIX,
    ENVOY_ADMIN_PORT,
    ENVOY_READINESS_PORT,
    PROMETHEUS_PORT,
    NodeId,
    NodeMeta,
    ProxyType,
)
from pilotfish.model.proxy import Labels, freeze_labels

UNIX_PATH_MAX = 107
"""sun_path holds 108 bytes including the terminating NUL: a longer socket path cannot be bound."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_META_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")


class OptionError(ValueError):
    """One or more bad agent options; `problems` holds one readable line per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class XdsFlavour(enum.StrEnum):
    """Which ADS RPC Envoy uses: state of the world (`GRPC`) or incremental (`DELTA_GRPC`)."""

    SOTW = "sotw"
    DELTA = "delta"


class InterceptionMode(enum.StrEnum):
    """How the pod's inbound traffic reaches the sidecar (Istio's `INTERCEPTION_MODE`)."""

    REDIRECT = "REDIRECT"
    TPROXY = "TPROXY"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class TcpAddress:
    host: str
    port: int

    @property
    def is_ip(self) -> bool:
        return _is_ip(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UnixAddress:
    """A unix socket path; a leading `@` names an abstract socket (no file, per network namespace)."""

    path: str

    @property
    def is_abstract(self) -> bool:
        return self.path.startswith("@")

    def __str__(self) -> str:
        return f"unix:{self.path}"


Address = TcpAddress | UnixAddress


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_address(text: str, option: str, *, allow_port_zero: bool = False) -> Address:
    """Parse `host:port`, `[v6]:port` or `unix:PATH`; raise OptionError naming `option`."""
    if text.startswith("unix:"):
        return _unix_address(text.removeprefix("unix:"), option)
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise OptionError([f"{option} {text!r}: expected HOST:PORT or unix:PATH"])
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not (_is_ip(host) or _HOSTNAME.match(host)):
        raise OptionError([f"{option} {text!r}: {host!r} is neither an IP address nor a host name"])
    if not port_text.isdigit() or not (0 if allow_port_zero else 1) <= int(port_text) <= 65535:
        low = 0 if allow_port_zero else 1
        raise OptionError([f"{option} {text!r}: port must be a number from {low} to 65535"])
    return TcpAddress(host, int(port_text))


def _unix_address(path: str, option: str) -> UnixAddress:
    if not path or path == "@":
        raise OptionError([f"{option} 'unix:{path}': the socket path is empty"])
    if "\0" in path:
        raise OptionError([f"{option}: the socket path contains a NUL byte"])
    if len(path.encode()) > UNIX_PATH_MAX:
        raise OptionError(
            [
                f"{option} 'unix:{path}': the path is {len(path.encode())} bytes, unix sockets allow "
                f"at most {UNIX_PATH_MAX}; use a shorter directory"
            ]
        )
    return UnixAddress(path)


def parse_labels(items: Iterable[str]) -> Labels:
    """`["app=reviews", "version=v1"]` -> sorted label pairs; raise OptionError for malformed items."""
    labels: dict[str, str] = {}
    problems: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            problems.append(f"--label {item!r}: expected KEY=VALUE")
            continue
        problems.extend(_label_problems(key, value))
        labels[key] = value
    if problems:
        raise OptionError(problems)
    return freeze_labels(labels)


def _label_problems(key: str, value: str) -> list[str]:
    prefix, slash, name = key.rpartition("/")
    problems = []
    bad_prefix = bool(slash) and not _DNS_SUBDOMAIN.match(prefix)
    if bad_prefix or not name or len(name) > 63 or not _LABEL_NAME.match(name):
        problems.append(f"--label {key}={value}: {key!r} is not a valid label key")
    if len(value) > 63 or not _LABEL_NAME.match(value):
        problems.append(f"--label {key}={value}: {value!r} is not a valid label value")
    return problems


def parse_metadata(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """`["ISTIO_META_X=1"]`-style extra node metadata; the keys the agent sets itself are refused."""
    metadata: dict[str, str] = {}
    problems: list[str] = []
    reserved = {str(key) for key in NodeMeta}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _META_KEY.match(key):
            problems.append(
                f"--meta {item!r}: expected KEY=VALUE with a key of letters, digits, '_', '.', '-'"
            )
        elif key in reserved:
            problems.append(f"--meta {item!r}: {key} is set by the agent itself")
        else:
            metadata[key] = value
    if problems:
        raise OptionError(problems)
    return tuple(sorted(metadata.items()))


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Everything the bootstrap depends on. Construction validates, so a built value is always usable."""

    proxy_type: ProxyType
    pod_name: str
    namespace: str
    ip: str
    discovery: Address
    admin: Address = TcpAddress("127.0.0.1", ENVOY_ADMIN_PORT)
    labels: Labels = ()
    xds: XdsFlavour = XdsFlavour.DELTA
    stats_port: int = PROMETHEUS_PORT
    """Port of the `/stats/prometheus` listener; 0 leaves the listener out."""
    ready_port: int = ENVOY_READINESS_PORT
    """Port of the `/healthz/ready` listener; 0 leaves the listener out."""
    status_address: str = "0.0.0.0"
    """Address the stats and readiness listeners bind (Istio binds the wildcard)."""
    service_account: str = "default"
    service_cluster: str = ""
    """`node.cluster`; empty means derive it like Istio (`<app label>.<ns>`, else `<pod>.<ns>`)."""
    interception_mode: InterceptionMode = InterceptionMode.REDIRECT
    pod_ports: tuple[int, ...] = ()
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    extra_metadata: tuple[tuple[str, str], ...] = ()
    """More node metadata (string values), like Istio's `ISTIO_META_*` variables; see `parse_metadata`."""

    def __post_init__(self) -> None:
        problems = [
            *_identity_problems(self),
            *_port_problems(self),
            *_address_problems(self),
        ]
        if problems:
            raise OptionError(problems)

    @property
    def node_id(self) -> NodeId:
        return NodeId.for_pod(self.proxy_type, self.ip, self.pod_name, self.namespace, self.domain_suffix)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def _identity_problems(opts: AgentOptions) -> list[str]:
    problems = []
    if len(opts.pod_name) > 253 or not _DNS_SUBDOMAIN.match(opts.pod_name):
        problems.append(f"--pod {opts.pod_name!r}: must be a DNS-1123 subdomain (a-z, 0-9, '-', '.')")
    if len(opts.namespace) > 63 or not _DNS_LABEL.match(opts.namespace):
        problems.append(f"--namespace {opts.namespace!r}: must be a DNS-1123 label (a-z, 0-9, '-')")
    if not _is_ip(opts.ip):
        problems.append(f"--ip {opts.ip!r}: not an IP address")
    if not _DNS_SUBDOMAIN.match(opts.domain_suffix):
        problems.append(f"--domain {opts.domain_suffix!r}: not a DNS domain")
    if not _DNS_SUBDOMAIN.match(opts.service_account):
        problems.append(f"--service-account {opts.service_account!r}: must be a DNS-1123 subdomain")
    if "~" in opts.service_cluster:
        problems.append(f"--service-cluster {opts.service_cluster!r}: must not contain '~'")
    return problems


def _port_problems(opts: AgentOptions) -> list[str]:
    problems = []
    named = {"--stats-port": opts.stats_port, "--ready-port": opts.ready_port}
    for option, port in named.items():
        if not 0 <= port <= 65535:
            problems.append(f"{option} {port}: must be from 0 (disabled) to 65535")
    if opts.stats_port and opts.stats_port == opts.ready_port:
        problems.append(f"--stats-port and --ready-port are both {opts.stats_port}: they must differ")
    if isinstance(opts.admin, TcpAddress) and opts.admin.port in (opts.stats_port, opts.ready_port):
        problems.append(f"--admin {opts.admin}: its port is also used by --stats-port or --ready-port")
    problems.extend(
        f"--pod-port {port}: must be from 1 to 65535" for port in opts.pod_ports if not 1 <= port <= 65535
    )
    return problems


def _address_problems(opts: AgentOptions) -> list[str]:
    problems = []
    if isinstance(opts.admin, TcpAddress):
        if not opts.admin.is_ip:
            problems.append(f"--admin {opts.admin}: must be an IP address (Envoy binds it)")
        if opts.admin.port == 0:
            problems.append(
                f"--admin {opts.admin}: needs a fixed port, because the agent and the stats/readiness "
                "listeners reach Envoy through it; use unix:PATH to run many Envoys side by side"
            )
    if not _is_ip(opts.status_address):
        problems.append(f"--status-address {opts.status_address!r}: not an IP address")
    return problems
