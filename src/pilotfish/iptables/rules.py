"""Capture options -> the iptables rules of a meshed pod, as data and as `iptables-restore` text.

Two behaviour profiles (istio-reference.md §1):

* ``"1.3"``: the rules of istio-iptables.sh in Istio 1.3 (the seed, section 3), in the script's order,
  including its quirks: explicit `-b` port lists are redirected to `-p` (not `-z`), TPROXY sends to `-p`,
  the TPROXY `-m socket` rule is written twice per explicit port, and with `-b '*'` the IPv6 ISTIO_INBOUND
  chain gets its RETURN rules but no final jump (IPv6 inbound is not captured).
* ``"modern"``: the rule builder of current istio-iptables (tunnel port 15008, per-uid loopback rules, DNS
  capture, owner groups, TPROXY marks), byte for byte as in Istio's capture goldens.

Rules are collected in the order Istio issues them. The restore text of a family is, per table in
alphabetical order, `* <table>`, one `-N` per chain we create (in order of first use, then chains that are
only jumped to), the rules (`-A`/`-I`) in order, and `COMMIT`; this is the format of Istio's goldens, and
applied with `iptables-restore --noflush` it yields the same chains as the script's one-by-one commands.

What TPROXY needs outside iptables (a policy-routing rule and a local route, and `::6` on lo for IPv6)
comes as `IpCommand` argv lists: no shell is ever involved. Pure module, mypy --strict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pilotfish.iptables.options import WILDCARD, CaptureOptions, Interface

Family = Literal[4, 6]
FAMILIES: tuple[Family, ...] = (4, 6)
TABLES = ("filter", "mangle", "nat", "raw")
BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})

# Every chain this program may create. Cleanup removes exactly these (and the rules that jump to them).
ISTIO_INBOUND = "ISTIO_INBOUND"
ISTIO_REDIRECT = "ISTIO_REDIRECT"
ISTIO_IN_REDIRECT = "ISTIO_IN_REDIRECT"
ISTIO_OUTPUT = "ISTIO_OUTPUT"
ISTIO_DIVERT = "ISTIO_DIVERT"
ISTIO_TPROXY = "ISTIO_TPROXY"
ISTIO_DROP = "ISTIO_DROP"
ISTIO_OUTPUT_DNS = "ISTIO_OUTPUT_DNS"
OUR_CHAINS = frozenset({ISTIO_INBOUND, ISTIO_REDIRECT, ISTIO_IN_REDIRECT, ISTIO_OUTPUT, ISTIO_DIVERT,
                        ISTIO_TPROXY, ISTIO_DROP, ISTIO_OUTPUT_DNS})

INBOUND_PASSTHROUGH_SOURCE: dict[Family, str] = {4: "127.0.0.6/32", 6: "::6/128"}  # Envoy binds here
LOOPBACK_V6 = "::1/128"
OUTBOUND_MARK = "1338"  # modern TPROXY: Envoy's outbound traffic to the local app
AGENT_DNS_PORT = "15053"
SSH_PORT = "22"
_IP = "<ip>"  # placeholder in versioned rules, replaced by the family's address


@dataclass(frozen=True)
class Rule:
    """One rule: `-A <chain> <spec...>`, or `-I <chain> <position> <spec...>` when inserted."""

    table: str
    chain: str
    spec: tuple[str, ...]
    position: int | None = None

    @property
    def line(self) -> str:
        head = f"-A {self.chain}" if self.position is None else f"-I {self.chain} {self.position}"
        return " ".join((head, *self.spec))

    @property
    def target(self) -> str | None:
        """The `-j` target (a chain name or an iptables target such as RETURN)."""
        spec = self.spec
        for i in range(len(spec) - 2, -1, -1):
            if spec[i] == "-j":
                return spec[i + 1]
        return None


@dataclass(frozen=True)
class IpCommand:
    """An `ip` invocation.

    `tolerate`: stderr texts that mean "already so" (not an error). `unless`: a query run first; when it
    prints anything the command is skipped (`ip rule add` happily adds duplicates). `repeat`: run until
    it fails (deleting every copy of a rule).
    """

    argv: tuple[str, ...]
    tolerate: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    repeat: bool = False


@dataclass(frozen=True)
class FamilyRules:
    """The rules of one address family (iptables for 4, ip6tables for 6), in the order issued."""

    family: Family
    rules: tuple[Rule, ...] = ()

    def tables(self) -> tuple[str, ...]:
        return tuple(sorted({r.table for r in self.rules}))

    def new_chains(self, table: str) -> tuple[str, ...]:
        """Chains to create in `table`: those with rules (first use first), then those only jumped to."""
        seen: list[str] = []
        rules = [r for r in self.rules if r.table == table]
        for name in [r.chain for r in rules] + [t for r in rules if (t := r.target) is not None]:
            if name.startswith("ISTIO_") and name not in seen:
                seen.append(name)
        return tuple(seen)

    def table_lines(self, table: str) -> list[str]:
        """The body of `table` in a restore transaction: `-N` lines, then the rules."""
        return [f"-N {c}" for c in self.new_chains(table)] + [r.line for r in self.rules if r.table == table]

    def restore_text(self) -> str:
        """`iptables-restore --noflush` input that creates these rules on a clean table."""
        out: list[str] = []
        for table in self.tables():
            out += [f"* {table}", *self.table_lines(table), "COMMIT"]
        return "".join(line + "\n" for line in out)

    def chain_contents(self) -> dict[tuple[str, str], tuple[Rule, ...]]:
        """What each (table, chain) holds once the rules are in, `-I` positions taken into account."""
        chains: dict[tuple[str, str], list[Rule]] = {}
        for table in self.tables():
            for name in self.new_chains(table):
                chains[(table, name)] = []
        for rule in self.rules:
            chain = chains.setdefault((rule.table, rule.chain), [])
            if rule.position is None:
                chain.append(rule)
            else:
                chain.insert(rule.position - 1, rule)
        return {key: tuple(value) for key, value in chains.items()}

    def builtin_rules(self) -> tuple[Rule, ...]:
        """Our rules that live in the kernel's built-in chains: cleanup must delete these one by one."""
        return tuple(r for r in self.rules if r.chain in BUILTIN_CHAINS)


@dataclass(frozen=True)
class RuleSet:
    """Everything `pilotfish iptables` does for a set of options, as data."""

    options: CaptureOptions
    v4: FamilyRules
    v6: FamilyRules
    setup: tuple[IpCommand, ...] = ()  # after the iptables rules: TPROXY routing, ::6 on lo
    teardown: tuple[IpCommand, ...] = ()  # what --cleanup runs besides removing the chains

    def family(self, family: Family) -> FamilyRules:
        return self.v4 if family == 4 else self.v6

    def restore_text(self, family: Family) -> str:
        return self.family(family).restore_text()


@dataclass
class _Builder:
    """Collects v4 and v6 rules in issue order; v6 rules are dropped unless IPv6 is enabled."""

    ipv6: bool
    v4: list[Rule] = field(default_factory=list)
    v6: list[Rule] = field(default_factory=list)

    def add(self, table: str, chain: str, *spec: str, families: Iterable[Family] = FAMILIES,
            position: int | None = None) -> None:
        for fam in families:
            if fam == 4:
                self.v4.append(Rule(table, chain, spec, position))
            elif self.ipv6:
                self.v6.append(Rule(table, chain, spec, position))

    def versioned(self, v4_value: str, v6_value: str, table: str, chain: str, *spec: str) -> None:
        """A rule written for both families with `_IP` replaced by each family's address."""
        pairs: tuple[tuple[Family, str], ...] = ((4, v4_value), (6, v6_value))
        for fam, value in pairs:
            self.add(table, chain, *(value if s == _IP else s for s in spec), families=(fam,))

    def result(self, options: CaptureOptions, setup: Sequence[IpCommand] = (),
               teardown: Sequence[IpCommand] = ()) -> RuleSet:
        return RuleSet(options, FamilyRules(4, tuple(self.v4)), FamilyRules(6, tuple(self.v6)),
                       tuple(setup), tuple(teardown))


def build_rules(opts: CaptureOptions) -> RuleSet:
    """The complete rule set for `opts`, in the chosen profile."""
    return _build_13(opts) if opts.profile == "1.3" else _build_modern(opts)


def _family_of(net: Interface) -> Family:
    return 4 if net.version == 4 else 6


def _split(cidrs: tuple[Interface, ...]) -> dict[Family, list[Interface]]:
    return {fam: [c for c in cidrs if _family_of(c) == fam] for fam in FAMILIES}


def _str(items: Iterable[int]) -> list[str]:
    return [str(i) for i in items]


# --- TPROXY routing and IPv6 loopback address -------------------------------------------------------

def _route_commands(opts: CaptureOptions, families: Sequence[Family]) -> list[IpCommand]:
    """Policy routing for TPROXY: packets marked `-t` are delivered locally via table `-r`."""
    mark, table = str(opts.tproxy_mark), str(opts.tproxy_route_table)
    out: list[IpCommand] = []
    for fam in families:
        inet = "inet" if fam == 4 else "inet6"
        selector = ("fwmark", mark, "lookup", table)
        out.append(IpCommand(("ip", "-f", inet, "rule", "add", *selector), ("File exists",),
                             unless=("ip", "-f", inet, "rule", "show", *selector)))
    for fam in families:
        inet = "inet" if fam == 4 else "inet6"
        route = ("ip", "-f", inet, "route", "add", "local", "default", "dev", "lo", "table", table)
        out.append(IpCommand(route, ("File exists",)))
    return out


_GONE = ("No such file or directory", "No such process", "Cannot assign requested address",
         "not supported", "Cannot find device", "does not exist", "not found")
ADD_INBOUND_V6_SOURCE = IpCommand(("ip", "-6", "addr", "add", "::6/128", "dev", "lo"), ("File exists",))


def _teardown(opts: CaptureOptions) -> list[IpCommand]:
    """Undo TPROXY routing and ::6 whatever mode was used before; absent items are not errors."""
    mark, table = str(opts.tproxy_mark), str(opts.tproxy_route_table)
    out = []
    for inet in ("inet", "inet6"):
        out.append(IpCommand(("ip", "-f", inet, "rule", "del", "fwmark", mark, "lookup", table), _GONE,
                             repeat=True))
        route = ("ip", "-f", inet, "route", "del", "local", "default", "dev", "lo", "table", table)
        out.append(IpCommand(route, _GONE))
    out.append(IpCommand(("ip", "-6", "addr", "del", "::6/128", "dev", "lo"), _GONE))
    return out


# --- profile 1.3: istio-iptables.sh -------------------------------------------------------------------

def _build_13(opts: CaptureOptions) -> RuleSet:
    b = _Builder(ipv6=opts.ipv6)
    setup: list[IpCommand] = [ADD_INBOUND_V6_SOURCE] if opts.ipv6 else []
    tproxy = opts.mode == "TPROXY" and opts.inbound_ports != ()
    if tproxy:
        setup += _route_commands(opts, (4,))
    _rules_13(b, opts, 4)
    if opts.ipv6:
        _rules_13(b, opts, 6)
    return b.result(opts, setup, _teardown(opts))


def _rules_13(b: _Builder, opts: CaptureOptions, fam: Family) -> None:
    """One family of the 1.3 script (its IPv6 half is a simplified copy, quirks included)."""
    only = (fam,)
    loopback = "127.0.0.1/32" if fam == 4 else LOOPBACK_V6
    all_inbound = opts.inbound_ports == WILDCARD
    b.add("nat", ISTIO_REDIRECT, "-p", "tcp", "-j", "REDIRECT", "--to-port", str(opts.proxy_port),
          families=only)
    in_port = opts.inbound_capture_port if all_inbound else opts.proxy_port
    b.add("nat", ISTIO_IN_REDIRECT, "-p", "tcp", "-j", "REDIRECT", "--to-port", str(in_port), families=only)
    if opts.inbound_ports != ():
        _inbound_13(b, opts, fam)
    b.add("nat", "OUTPUT", "-p", "tcp", "-j", ISTIO_OUTPUT, families=only)
    for port in _str(opts.exclude_outbound_ports):
        b.add("nat", ISTIO_OUTPUT, "-p", "tcp", "--dport", port, "-j", "RETURN", families=only)
    b.add("nat", ISTIO_OUTPUT, "-o", "lo", "-s", INBOUND_PASSTHROUGH_SOURCE[fam], "-j", "RETURN",
          families=only)
    b.add("nat", ISTIO_OUTPUT, "-o", "lo", "!", "-d", loopback, "-j", ISTIO_IN_REDIRECT, families=only)
    for uid in _str(opts.proxy_uids):
        b.add("nat", ISTIO_OUTPUT, "-m", "owner", "--uid-owner", uid, "-j", "RETURN", families=only)
    for gid in _str(opts.proxy_gids):
        b.add("nat", ISTIO_OUTPUT, "-m", "owner", "--gid-owner", gid, "-j", "RETURN", families=only)
    b.add("nat", ISTIO_OUTPUT, "-d", loopback, "-j", "RETURN", families=only)
    exclude = _split(opts.exclude_cidrs)[fam]
    for cidr in exclude:
        b.add("nat", ISTIO_OUTPUT, "-d", str(cidr), "-j", "RETURN", families=only)
    if fam == 4:
        for iface in opts.kubevirt_interfaces:
            b.add("nat", "PREROUTING", "-i", iface, "-j", "RETURN", families=only, position=1)
    if opts.include_cidrs == WILDCARD:
        b.add("nat", ISTIO_OUTPUT, "-j", ISTIO_REDIRECT, families=only)
        # The script's IPv6 half inserts RETURN here where the IPv4 half inserts ISTIO_REDIRECT.
        target = ISTIO_REDIRECT if fam == 4 else "RETURN"
        for iface in opts.kubevirt_interfaces:
            b.add("nat", "PREROUTING", "-i", iface, "-j", target, families=only, position=1)
    elif include := _split(opts.include_cidrs)[fam]:
        for cidr in include:
            for iface in opts.kubevirt_interfaces:
                b.add("nat", "PREROUTING", "-i", iface, "-d", str(cidr), "-j", ISTIO_REDIRECT, families=only,
                      position=1)
            b.add("nat", ISTIO_OUTPUT, "-d", str(cidr), "-j", ISTIO_REDIRECT, families=only)
        b.add("nat", ISTIO_OUTPUT, "-j", "RETURN", families=only)


def _inbound_13(b: _Builder, opts: CaptureOptions, fam: Family) -> None:
    only = (fam,)
    tproxy = opts.mode == "TPROXY" and fam == 4  # the script's IPv6 half only knows REDIRECT
    mark = str(opts.tproxy_mark)
    if tproxy:
        b.add("mangle", ISTIO_DIVERT, "-j", "MARK", "--set-mark", mark, families=only)
        b.add("mangle", ISTIO_DIVERT, "-j", "ACCEPT", families=only)
        b.add("mangle", ISTIO_TPROXY, "!", "-d", "127.0.0.1/32", "-p", "tcp", "-j", "TPROXY",
              "--tproxy-mark", f"{mark}/0xffffffff", "--on-port", str(opts.proxy_port), families=only)
    table = "mangle" if tproxy else "nat"
    b.add(table, "PREROUTING", "-p", "tcp", "-j", ISTIO_INBOUND, families=only)
    if opts.inbound_ports == WILDCARD:
        for port in [SSH_PORT, *_str(opts.exclude_inbound_ports)]:
            b.add(table, ISTIO_INBOUND, "-p", "tcp", "--dport", port, "-j", "RETURN", families=only)
        if tproxy:
            b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "-m", "socket", "-j", ISTIO_DIVERT, families=only)
            b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "-j", ISTIO_TPROXY, families=only)
        elif fam == 4:
            b.add("nat", ISTIO_INBOUND, "-p", "tcp", "-j", ISTIO_IN_REDIRECT, families=only)
        return
    for port in _str(opts.inbound_ports):
        if tproxy:
            for _ in range(2):  # the 1.3 script issues this rule twice
                b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "--dport", port, "-m", "socket",
                      "-j", ISTIO_DIVERT, families=only)
            b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "--dport", port, "-j", ISTIO_TPROXY, families=only)
        else:
            b.add("nat", ISTIO_INBOUND, "-p", "tcp", "--dport", port, "-j", ISTIO_IN_REDIRECT, families=only)


# --- profile modern: istio-iptables (Go) -------------------------------------------------------------

@dataclass(frozen=True)
class _Ranges:
    """Outbound include/exclude ranges of one family."""

    wildcard: bool
    cidrs: tuple[str, ...]
    has_loopback: bool


def _ranges(value: tuple[Interface, ...] | str, fam: Family) -> _Ranges:
    if isinstance(value, str):  # the wildcard
        return _Ranges(True, (), False)
    nets = [c for c in value if _family_of(c) == fam]
    return _Ranges(False, tuple(str(c) for c in nets), any(c.ip.is_loopback for c in nets))


def _build_modern(opts: CaptureOptions) -> RuleSet:
    b = _Builder(ipv6=opts.ipv6)
    tproxy = opts.mode == "TPROXY"
    lo4, lo6 = opts.ipv4_loopback_cidr, LOOPBACK_V6
    mark, tunnel = str(opts.tproxy_mark), str(opts.inbound_tunnel_port)
    include = {fam: _ranges(opts.include_cidrs, fam) for fam in FAMILIES}
    exclude = {fam: _ranges(opts.exclude_cidrs, fam) for fam in FAMILIES}
    dns = opts.redirect_dns and (opts.capture_all_dns or bool(opts.dns_servers_v4 or opts.dns_servers_v6))

    for iface in opts.exclude_interfaces:
        b.add("nat", "PREROUTING", "-i", iface, "-j", "RETURN")
        b.add("nat", "OUTPUT", "-o", iface, "-j", "RETURN")
    if tproxy:
        for iface in opts.exclude_interfaces:
            b.add("mangle", "PREROUTING", "-i", iface, "-j", "RETURN")
            b.add("mangle", "OUTPUT", "-o", iface, "-j", "RETURN")
    for iface in opts.kubevirt_interfaces:
        b.add("nat", "PREROUTING", "-i", iface, "-j", "RETURN", position=1)
    if opts.drop_invalid:
        b.add("mangle", "PREROUTING", "-m", "conntrack", "--ctstate", "INVALID", "-j", ISTIO_DROP)
        b.add("mangle", ISTIO_DROP, "-j", "DROP")
    b.add("nat", ISTIO_INBOUND, "-p", "tcp", "--dport", tunnel, "-j", "RETURN")
    b.add("nat", ISTIO_REDIRECT, "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(opts.proxy_port))
    b.add("nat", ISTIO_IN_REDIRECT, "-p", "tcp", "-j", "REDIRECT", "--to-ports",
          str(opts.inbound_capture_port))
    if opts.inbound_ports != ():
        _inbound_modern(b, opts, lo4)

    b.add("nat", "OUTPUT", "-j", ISTIO_OUTPUT)
    for port in _str(opts.exclude_outbound_ports):
        b.add("nat", ISTIO_OUTPUT, "-p", "tcp", "--dport", port, "-j", "RETURN")
        b.add("nat", ISTIO_OUTPUT, "-p", "udp", "--dport", port, "-j", "RETURN")
    b.versioned(INBOUND_PASSTHROUGH_SOURCE[4], INBOUND_PASSTHROUGH_SOURCE[6], "nat", ISTIO_OUTPUT,
                "-o", "lo", "-s", _IP, "-j", "RETURN")
    app_loopback_returns = not (include[4].has_loopback or include[6].has_loopback)
    for owner, ids in (("--uid-owner", opts.proxy_uids), ("--gid-owner", opts.proxy_gids)):
        for ident in _str(ids):
            # Envoy's own loopback traffic to a non-127.0.0.1 address (a VIP hairpin) goes back inbound;
            # Istio uses the multiport form for uids only.
            ports = (["-m", "multiport", "!", "--dports", f"53,{tunnel}"] if dns and owner == "--uid-owner"
                     else ["!", "--dport", tunnel])
            b.versioned(lo4, lo6, "nat", ISTIO_OUTPUT, "-o", "lo", "!", "-d", _IP, "-p", "tcp", *ports,
                        "-m", "owner", owner, ident, "-j", ISTIO_IN_REDIRECT)
            if app_loopback_returns:
                not_dns = ["-p", "tcp", "!", "--dport", "53"] if dns else []
                b.add("nat", ISTIO_OUTPUT, "-o", "lo", *not_dns, "-m", "owner", "!", owner, ident,
                      "-j", "RETURN")
            b.add("nat", ISTIO_OUTPUT, "-m", "owner", owner, ident, "-j", "RETURN")
    if opts.owner_groups_include == WILDCARD:
        for group in opts.owner_groups_exclude:
            b.add("nat", ISTIO_OUTPUT, "-m", "owner", "--gid-owner", group, "-j", "RETURN")
    else:
        none_of = [tok for g in opts.owner_groups_include for tok in ("-m", "owner", "!", "--gid-owner", g)]
        b.add("nat", ISTIO_OUTPUT, *none_of, "-j", "RETURN")
    if dns:
        _dns_modern(b, opts)
    b.versioned(lo4, lo6, "nat", ISTIO_OUTPUT, "-d", _IP, "-j", "RETURN")
    for fam in FAMILIES:
        for cidr in exclude[fam].cidrs:
            b.add("nat", ISTIO_OUTPUT, "-d", cidr, "-j", "RETURN", families=(fam,))
    for port in _str(opts.include_outbound_ports):
        b.add("nat", ISTIO_OUTPUT, "-p", "tcp", "--dport", port, "-j", ISTIO_REDIRECT)
    for fam in FAMILIES:
        _include_modern(b, opts, include[fam], fam)
    if tproxy:
        _tproxy_marks_modern(b, opts, lo4, mark)

    families: tuple[Family, ...] = (4, 6) if opts.ipv6 else (4,)
    setup = [ADD_INBOUND_V6_SOURCE] if opts.ipv6 else []
    if tproxy and opts.inbound_ports != ():
        setup += _route_commands(opts, families)
    return b.result(opts, setup, _teardown(opts))


def _inbound_modern(b: _Builder, opts: CaptureOptions, lo4: str) -> None:
    tproxy = opts.mode == "TPROXY"
    mark = str(opts.tproxy_mark)
    if tproxy:
        b.add("mangle", ISTIO_DIVERT, "-j", "MARK", "--set-mark", mark)
        b.add("mangle", ISTIO_DIVERT, "-j", "ACCEPT")
        b.versioned(lo4, LOOPBACK_V6, "mangle", ISTIO_TPROXY, "!", "-d", _IP, "-p", "tcp", "-j", "TPROXY",
                    "--tproxy-mark", f"{mark}/0xffffffff", "--on-port", str(opts.inbound_capture_port))
    table = "mangle" if tproxy else "nat"
    b.add(table, "PREROUTING", "-p", "tcp", "-j", ISTIO_INBOUND)
    established = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", ISTIO_DIVERT]
    if opts.inbound_ports == WILDCARD:
        for port in _str(opts.exclude_inbound_ports):
            b.add(table, ISTIO_INBOUND, "-p", "tcp", "--dport", port, "-j", "RETURN")
        if tproxy:
            b.add("mangle", ISTIO_INBOUND, "-p", "tcp", *established)
            b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "-j", ISTIO_TPROXY)
        else:
            b.add("nat", ISTIO_INBOUND, "-p", "tcp", "-j", ISTIO_IN_REDIRECT)
        return
    for port in _str(opts.inbound_ports):
        if tproxy:
            b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "--dport", port, *established)
            b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "--dport", port, "-j", ISTIO_TPROXY)
        else:
            b.add("nat", ISTIO_INBOUND, "-p", "tcp", "--dport", port, "-j", ISTIO_IN_REDIRECT)


def _include_modern(b: _Builder, opts: CaptureOptions, include: _Ranges, fam: Family) -> None:
    only = (fam,)
    if include.wildcard:
        b.add("nat", ISTIO_OUTPUT, "-j", ISTIO_REDIRECT, families=only)
        for iface in opts.kubevirt_interfaces:
            b.add("nat", "PREROUTING", "-i", iface, "-j", ISTIO_REDIRECT, families=only, position=1)
        return
    for cidr in include.cidrs:
        for iface in opts.kubevirt_interfaces:
            b.add("nat", "PREROUTING", "-i", iface, "-d", cidr, "-j", ISTIO_REDIRECT, families=only,
                  position=1)
        b.add("nat", ISTIO_OUTPUT, "-d", cidr, "-j", ISTIO_REDIRECT, families=only)


def _dns_modern(b: _Builder, opts: CaptureOptions) -> None:
    """DNS capture to the agent (15053) and conntrack zones that keep the two UDP legs apart."""
    servers: dict[Family, tuple[str, ...]] = {4: opts.dns_servers_v4, 6: opts.dns_servers_v6}
    suffix: dict[Family, str] = {4: "/32", 6: "/128"}
    all_dns = opts.capture_all_dns
    b.add("raw", "OUTPUT", "-j", ISTIO_OUTPUT_DNS)
    for fam in FAMILIES:
        if all_dns or servers[fam]:
            b.add("nat", ISTIO_OUTPUT, "-j", ISTIO_OUTPUT_DNS, families=(fam,))
    for proto, to_ports in (("tcp", "--to-ports"), ("udp", "--to-port")):
        if all_dns:
            b.add("nat", ISTIO_OUTPUT_DNS, "-p", proto, "--dport", "53", "-j", "REDIRECT", to_ports,
                  AGENT_DNS_PORT)
            continue
        for fam in FAMILIES:
            for server in servers[fam]:
                b.add("nat", ISTIO_OUTPUT_DNS, "-p", proto, "--dport", "53", "-d", server + suffix[fam],
                      "-j", "REDIRECT", to_ports, AGENT_DNS_PORT, families=(fam,))
    for owner, ids in (("--uid-owner", opts.proxy_uids), ("--gid-owner", opts.proxy_gids)):
        for ident in _str(ids):
            b.add("raw", ISTIO_OUTPUT_DNS, "-p", "udp", "--dport", "53", "-m", "owner", owner, ident,
                  "-j", "CT", "--zone", "1")
            b.add("raw", ISTIO_OUTPUT_DNS, "-p", "udp", "--sport", AGENT_DNS_PORT, "-m", "owner", owner,
                  ident, "-j", "CT", "--zone", "2")
    if all_dns:
        b.add("raw", "PREROUTING", "-j", ISTIO_INBOUND)
        b.add("raw", ISTIO_OUTPUT_DNS, "-p", "udp", "--dport", "53", "-j", "CT", "--zone", "2")
        b.add("raw", ISTIO_INBOUND, "-p", "udp", "--sport", "53", "-j", "CT", "--zone", "1")
        return
    for fam in FAMILIES:
        only = (fam,)
        if servers[fam]:
            b.add("raw", "PREROUTING", "-j", ISTIO_INBOUND, families=only)
        for server in servers[fam]:
            b.add("raw", ISTIO_OUTPUT_DNS, "-p", "udp", "--dport", "53", "-d", server + suffix[fam],
                  "-j", "CT", "--zone", "2", families=only)
            b.add("raw", ISTIO_INBOUND, "-p", "udp", "--sport", "53", "-s", server + suffix[fam],
                  "-j", "CT", "--zone", "1", families=only)


def _tproxy_marks_modern(b: _Builder, opts: CaptureOptions, lo4: str, mark: str) -> None:
    """Marks that keep Envoy->app traffic and TPROXY'd connections apart (modern TPROXY)."""
    b.add("mangle", "PREROUTING", "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "CONNMARK", "--save-mark")
    b.add("mangle", "OUTPUT", "-p", "tcp", "-o", "lo", "-m", "mark", "--mark", mark, "-j", "RETURN")
    for owner, ids in (("--uid-owner", opts.proxy_uids), ("--gid-owner", opts.proxy_gids)):
        for ident in _str(ids):
            b.versioned(lo4, LOOPBACK_V6, "mangle", "OUTPUT", "!", "-d", _IP, "-p", "tcp", "-o", "lo",
                        "-m", "owner", owner, ident, "-j", "MARK", "--set-mark", OUTBOUND_MARK)
    b.add("mangle", "OUTPUT", "-p", "tcp", "-m", "connmark", "--mark", mark, "-j", "CONNMARK",
          "--restore-mark")
    b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "-m", "mark", "--mark", mark, "-j", "RETURN", position=1)
    for fam in FAMILIES:
        b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "-s", INBOUND_PASSTHROUGH_SOURCE[fam], "-i", "lo",
              "-j", "RETURN", families=(fam,), position=2)
    b.add("mangle", ISTIO_INBOUND, "-p", "tcp", "-i", "lo", "-m", "mark", "!", "--mark", OUTBOUND_MARK,
          "-j", "RETURN", position=3)
