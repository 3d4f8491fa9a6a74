"""A pod's iptables decision for one TCP connection: captured (REDIRECT to 15001 / 15006) or not.

The rules are the ones `pilotfish iptables` installs (`iptables.rules.build_rules` of the options the
injector would pass, adjusted by the pod's `traffic.sidecar.istio.io/*` annotations); this module
only *evaluates* them for a packet, walking the nat (and, for TPROXY, mangle) chains the way the
kernel does: first matching rule, jumps into user chains, RETURN back, the built-in chain's ACCEPT
policy at the end. Match options it cannot evaluate make that rule not match, and are reported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pilotfish.iptables.options import (
    INJECTOR_ARGS,
    CaptureOptions,
    OptionErrors,
    Profile,
    parse_options,
)
from pilotfish.iptables.rules import FamilyRules, Rule, build_rules

APP_UID = 1000
"""Stand-in uid of an application process: anything but the proxy's 1337."""

# Pod annotation -> (injector flag, parse_options keyword). Istio's injector reads these (§9.3).
_ANNOTATIONS: dict[str, tuple[str, str]] = {
    "traffic.sidecar.istio.io/includeOutboundIPRanges": ("-i", "include_cidrs"),
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": ("-x", "exclude_cidrs"),
    "traffic.sidecar.istio.io/includeInboundPorts": ("-b", "inbound_ports"),
    "traffic.sidecar.istio.io/excludeInboundPorts": ("-d", "exclude_inbound_ports"),
    "traffic.sidecar.istio.io/excludeOutboundPorts": ("-o", "exclude_outbound_ports"),
    "traffic.sidecar.istio.io/includeOutboundPorts": ("-q", "include_outbound_ports"),
    "traffic.sidecar.istio.io/kubevirtInterfaces": ("-k", "kubevirt_interfaces"),
    "traffic.sidecar.istio.io/excludeInterfaces": ("-c", "exclude_interfaces"),
}
_INTERCEPTION = "sidecar.istio.io/interceptionMode"


def pod_capture(profile: Profile, annotations: Mapping[str, str]) -> CaptureOptions | OptionErrors | None:
    """The capture options of a pod's init step, as the injector builds them from its annotations.

    None when the pod's traffic is not intercepted at all (`interceptionMode: NONE`).
    """
    mode = annotations.get(_INTERCEPTION, "REDIRECT").strip().upper()
    if mode == "NONE":
        return None
    injected = INJECTOR_ARGS[profile]
    flags = dict(zip(injected[::2], injected[1::2], strict=True))
    given = {key: annotations[name] for name, (_, key) in _ANNOTATIONS.items() if name in annotations}
    exclude_inbound = given.get("exclude_inbound_ports", "")
    status = flags["-d"]  # 15020 (1.3) or 15090,15021,15020 (modern): always excluded
    *fixed, last = status.split(",")
    parts = [*fixed, *[p for p in exclude_inbound.split(",") if p.strip()], last]
    return parse_options(
        profile=profile,
        envoy_port=flags["-p"],
        inbound_capture_port=flags["-z"],
        proxy_uid=flags["-u"],
        mode=mode,
        include_cidrs=given.get("include_cidrs", flags["-i"]),
        exclude_cidrs=given.get("exclude_cidrs", flags["-x"]),
        inbound_ports=given.get("inbound_ports", flags["-b"]),
        exclude_inbound_ports=",".join(parts),
        exclude_outbound_ports=given.get("exclude_outbound_ports"),
        include_outbound_ports=given.get("include_outbound_ports"),
        kubevirt_interfaces=given.get("kubevirt_interfaces"),
        exclude_interfaces=given.get("exclude_interfaces"),
    )


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a TCP connection, as netfilter sees it."""

    src: str
    dst: str
    dport: int
    uid: int = APP_UID
    gid: int = APP_UID
    out_iface: str = ""
    """Set for locally generated packets (OUTPUT)."""
    in_iface: str = ""
    """Set for arriving packets (PREROUTING)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where the connection goes: REDIRECT/TPROXY to a local port, or on unchanged (not captured)."""

    port: int | None
    """The local port it is redirected to (15001, 15006...); None when not captured."""
    trail: tuple[str, ...]
    """The rules that decided, `<chain>: <rule>` in the order they applied."""
    unevaluated: tuple[str, ...] = ()
    """Rules with match options this evaluator does not know (taken as not matching)."""
    dropped: bool = False

    @property
    def captured(self) -> bool:
        return self.port is not None

    def describe(self) -> str:
        steps = " → ".join(self.trail) if self.trail else "no rule matched"
        return steps


class _Final(Exception):
    """Unwinds the chain walk when a terminating target is reached."""

    def __init__(self, port: int | None, dropped: bool = False) -> None:
        self.port = port
        self.dropped = dropped


_NON_TERMINATING = frozenset({"MARK", "CONNMARK", "CT", "LOG"})
_MAX_DEPTH = 16


class _Walker:
    def __init__(self, rules: FamilyRules, packet: Packet) -> None:
        self.contents = rules.chain_contents()
        self.packet = packet
        self.trail: list[str] = []
        self.unknown: list[str] = []

    def run(self, table: str, chain: str, depth: int = 0) -> None:
        """Walk `chain`; returns normally on RETURN or at the end of a user chain."""
        if depth > _MAX_DEPTH:
            raise _Final(None)
        for rule in self.contents.get((table, chain), ()):
            matched = _matches(rule.spec, self.packet)
            if matched is None:
                self.unknown.append(f"{rule.chain}: {rule.line}")
                continue
            if not matched:
                continue
            target = rule.target or ""
            if target in _NON_TERMINATING:
                continue
            self.trail.append(f"{rule.chain}: {_short(rule)}")
            if target == "RETURN":
                return
            if target in ("REDIRECT", "TPROXY"):
                raise _Final(_to_port(rule.spec))
            if target == "ACCEPT":
                raise _Final(None)
            if target in ("DROP", "REJECT"):
                raise _Final(None, dropped=True)
            if (table, target) in self.contents:
                self.run(table, target, depth + 1)
                continue
            raise _Final(None)  # an unknown target: assume it lets the packet through


def evaluate(rules: FamilyRules, packet: Packet) -> Verdict:
    """The decision for `packet`: OUTPUT chains for locally generated packets, PREROUTING otherwise."""
    walker = _Walker(rules, packet)
    hook = "OUTPUT" if packet.out_iface else "PREROUTING"
    port: int | None = None
    dropped = False
    for table in ("raw", "mangle", "nat"):
        try:
            walker.run(table, hook)
        except _Final as final:
            if final.port is not None or final.dropped:
                port, dropped = final.port, final.dropped
                break
    return Verdict(port, tuple(walker.trail), tuple(walker.unknown), dropped)


def rules_for(options: CaptureOptions, family: int = 4) -> FamilyRules:
    ruleset = build_rules(options)
    return ruleset.v4 if family == 4 else ruleset.v6


def _short(rule: Rule) -> str:
    return " ".join(rule.spec)


def _to_port(spec: Sequence[str]) -> int | None:
    for i, word in enumerate(spec[:-1]):
        if word in ("--to-port", "--to-ports", "--on-port"):
            return int(spec[i + 1].split("-")[0])
    return None


def _in_net(address: str, net: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(net, strict=False)
    except ValueError:
        return False


def _iface(pattern: str, name: str) -> bool:
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return pattern == name


def _ports(text: str) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):
        low, _, high = item.partition(":")
        if low.isdigit():
            out.update(range(int(low), int(high or low) + 1))
    return out


def _matches(spec: Sequence[str], packet: Packet) -> bool | None:
    """Whether every match option of a rule holds for the packet; None if one cannot be evaluated."""
    negate = False
    i = 0
    while i < len(spec):
        word = spec[i]
        if word == "-j":
            return True
        if word == "!":
            negate = True
            i += 1
            continue
        if word == "-m":
            if i + 1 < len(spec) and spec[i + 1] == "socket":
                return False  # a connection being set up has no socket yet to divert to
            i += 2  # the module's own options follow and are handled below
            continue
        value = spec[i + 1] if i + 1 < len(spec) else ""
        result = _option(word, value, packet)
        if result is None:
            return None
        if result == negate:
            return False
        negate = False
        i += 2
    return True


def _option(word: str, value: str, packet: Packet) -> bool | None:
    if word == "-p":
        return value in ("tcp", "all")
    if word == "-s":
        return _in_net(packet.src, value)
    if word == "-d":
        return _in_net(packet.dst, value)
    if word == "-o":
        return bool(packet.out_iface) and _iface(value, packet.out_iface)
    if word == "-i":
        return bool(packet.in_iface) and _iface(value, packet.in_iface)
    if word in ("--dport", "--dports", "--destination-port", "--destination-ports"):
        return packet.dport in _ports(value)
    if word == "--uid-owner":
        return bool(packet.out_iface) and value.isdigit() and int(value) == packet.uid
    if word == "--gid-owner":
        return bool(packet.out_iface) and value.isdigit() and int(value) == packet.gid
    if word == "--ctstate":
        return "NEW" in value.split(",")
    if word == "--mark":
        return value.split("/")[0] in ("0", "0x0")
    return None
