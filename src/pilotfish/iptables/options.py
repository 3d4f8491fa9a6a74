"""Capture options of `pilotfish iptables`, validated before any rule is touched.

The options mirror Istio's istio-iptables flags (istio-reference.md §1.2) so that an injector argument list
(`-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15020`) means here what it meant in a pod.
Everything arrives as text, the way a command line or a pod annotation gives it, and `parse_options` turns
it into a typed, frozen `CaptureOptions` or into a list of messages, one per bad value: errors are data,
so the CLI can print them all and exit 2 without having run a single command.

Pure module: no IO. Reading /etc/resolv.conf, the passwd database or the namespace's interfaces is the
caller's job (the CLI); their results come in as arguments.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

Profile = Literal["1.3", "modern"]
Mode = Literal["REDIRECT", "TPROXY"]
Wildcard = Literal["*"]
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

PROFILES: tuple[Profile, ...] = ("1.3", "modern")
WILDCARD: Wildcard = "*"
MAX_ID = 2**32 - 2  # uid/gid (u32, minus the "no id" value -1)
MAX_MARK = 2**32 - 1
RESERVED_ROUTE_TABLES = {0: "unspec", 253: "default", 254: "main", 255: "local"}
# Linux interface names: at most 15 bytes; we also keep them to characters that cannot break an
# iptables-restore line (no spaces, quotes or '#'). A trailing '+' is iptables' prefix wildcard.
_IFACE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,15}\+?")
_GROUP_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")

# What the injector passes to the init container (istio-reference.md §1.2 and §9).
INJECTOR_ARGS: dict[Profile, tuple[str, ...]] = {
    "1.3": ("-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
            "-i", "*", "-x", "", "-b", "*", "-d", "15020"),
    "modern": ("-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
               "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"),
}


@dataclass(frozen=True)
class CaptureOptions:
    """Validated capture settings. The defaults are what the 1.3 injector passes (the seed's pods)."""

    profile: Profile = "1.3"
    proxy_port: int = 15001  # -p: target of ISTIO_REDIRECT (virtualOutbound)
    inbound_capture_port: int = 15006  # -z: target of ISTIO_IN_REDIRECT (virtualInbound)
    inbound_tunnel_port: int = 15008  # -e (modern): HBONE port, never captured
    proxy_uids: tuple[int, ...] = (1337,)  # -u: traffic of these uids is not captured
    proxy_gids: tuple[int, ...] = (1337,)  # -g: likewise for gids
    mode: Mode = "REDIRECT"  # -m
    tproxy_mark: int = 1337  # -t
    tproxy_route_table: int = 133  # -r
    inbound_ports: tuple[int, ...] | Wildcard = WILDCARD  # -b: "*" = all, () = none
    exclude_inbound_ports: tuple[int, ...] = (15020,)  # -d (only with -b '*')
    exclude_outbound_ports: tuple[int, ...] = ()  # -o
    include_outbound_ports: tuple[int, ...] = ()  # -q (modern)
    include_cidrs: tuple[Interface, ...] | Wildcard = WILDCARD  # -i: "*" = all, () = none
    exclude_cidrs: tuple[Interface, ...] = ()  # -x
    kubevirt_interfaces: tuple[str, ...] = ()  # -k
    exclude_interfaces: tuple[str, ...] = ()  # -c (modern)
    ipv6: bool = False  # program ip6tables too (the pod has an IPv6 address)
    redirect_dns: bool = False  # --redirect-dns (modern)
    capture_all_dns: bool = False  # --capture-all-dns (modern)
    dns_servers_v4: tuple[str, ...] = ()  # nameservers whose DNS traffic is captured (modern)
    dns_servers_v6: tuple[str, ...] = ()
    drop_invalid: bool = False  # --drop-invalid (modern)
    owner_groups_include: tuple[str, ...] | Wildcard = WILDCARD  # ISTIO_OUTBOUND_OWNER_GROUPS (modern)
    owner_groups_exclude: tuple[str, ...] = ()  # ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE (modern)
    ipv4_loopback_cidr: str = "127.0.0.1/32"  # ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR (modern)


@dataclass(frozen=True)
class OptionErrors:
    """The messages for every invalid option, in flag order; nothing has been applied."""

    messages: tuple[str, ...]


def injector_defaults(profile: Profile = "1.3", ipv6: bool = False) -> CaptureOptions:
    """The options the sidecar injector gives every pod (the local mesh calls this per pod)."""
    args = dict(zip(INJECTOR_ARGS[profile][::2], INJECTOR_ARGS[profile][1::2], strict=True))
    result = parse_options(
        profile=profile, ipv6=ipv6, envoy_port=args["-p"], inbound_capture_port=args["-z"],
        proxy_uid=args["-u"], mode=args["-m"], include_cidrs=args["-i"], exclude_cidrs=args["-x"],
        inbound_ports=args["-b"], exclude_inbound_ports=args["-d"],
    )
    assert isinstance(result, CaptureOptions), result
    return result


def split_list(text: str) -> list[str]:
    """Split a comma list the way istio-iptables does (empty items dropped), trimming blanks."""
    return [item.strip() for item in text.split(",") if item.strip()]


_T = TypeVar("_T")
_NO_INTS: tuple[int, ...] = ()
_NO_STRS: tuple[str, ...] = ()
_ALL_STRS: tuple[str, ...] | Wildcard = WILDCARD


class _Collector:
    """Gathers one message per bad option while parsing the rest."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def value(self, flag: str, raw: str, parse: Callable[[str], _T], fallback: _T) -> _T:
        """The parsed value, or `fallback` (never used: any error discards the result) and a message."""
        try:
            return parse(raw)
        except ValueError as exc:
            self.errors.append(f"{flag} {raw!r}: {exc}")
            return fallback


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        text = text.strip()
        if not text.isdigit():
            raise ValueError(f"{text!r} is not a {what} (a whole number from {low} to {high})")
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"{what} {number} is out of range ({low}-{high})")
        return number

    return parse


_port = _int_in(1, 65535, "port")
_id = _int_in(0, MAX_ID, "numeric id")
_mark = _int_in(1, MAX_MARK, "mark")


def _each(parse: Callable[[str], _T], *, allow_empty: bool = True) -> Callable[[str], tuple[_T, ...]]:
    def parse_list(text: str) -> tuple[_T, ...]:
        items = split_list(text)
        if not items and not allow_empty:
            raise ValueError("must not be empty")
        return tuple(parse(item) for item in items)

    return parse_list


def _ports(text: str) -> tuple[int, ...]:
    return _each(_port)(text)


def _ports_or_all(text: str) -> tuple[int, ...] | Wildcard:
    return WILDCARD if text.strip() == WILDCARD else _ports(text)


def _route_table(text: str) -> int:
    number = _int_in(1, MAX_MARK, "routing table id")(text)
    if number in RESERVED_ROUTE_TABLES:
        raise ValueError(f"table {number} is the kernel's '{RESERVED_ROUTE_TABLES[number]}' table")
    return number


def _cidr(text: str) -> Interface:
    """A CIDR such as 10.0.0.0/8 (a bare address means /32 or /128); host bits are kept as written."""
    if text == WILDCARD:
        raise ValueError("'*' cannot be mixed with other ranges")
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP range in CIDR form (such as 10.0.0.0/8)") from None


def _cidrs(text: str) -> tuple[Interface, ...]:
    return _each(_cidr)(text)


def _cidrs_or_all(text: str) -> tuple[Interface, ...] | Wildcard:
    return WILDCARD if text.strip() == WILDCARD else _cidrs(text)


def _exclude_cidrs(text: str) -> tuple[Interface, ...]:
    if text.strip() == WILDCARD:
        raise ValueError("'*' is not allowed: excluding every range would be the same as -i ''")
    return _cidrs(text)


def _interface(text: str) -> str:
    if text in (".", "..") or not _IFACE_RE.fullmatch(text):
        raise ValueError(
            f"{text!r} is not an interface name (1-15 letters, digits, '_', '.', ':' or '-')")
    return text


def _group(text: str) -> str:
    if not (text.isdigit() or _GROUP_RE.fullmatch(text)):
        raise ValueError(f"{text!r} is not a group name or number")
    return text


def _groups_or_all(text: str) -> tuple[str, ...] | Wildcard:
    if text.strip() == WILDCARD:
        return WILDCARD
    return _each(_group, allow_empty=False)(text)


def _mode(text: str) -> Mode:
    upper = text.strip().upper() or "REDIRECT"
    if upper not in ("REDIRECT", "TPROXY"):
        raise ValueError("the interception mode must be REDIRECT or TPROXY")
    return cast(Mode, upper)


def _address(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    return text


def _loopback_cidr(text: str) -> str:
    try:
        net = ipaddress.IPv4Interface(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 CIDR") from None
    if not net.ip.is_loopback:
        raise ValueError(f"{text!r} is not a loopback range (127.0.0.0/8)")
    return str(net)


# Options that istio-iptables 1.3 did not have: accepted only with --profile modern.
_MODERN_ONLY: tuple[tuple[str, str], ...] = (
    ("inbound_tunnel_port", "-e/--inbound-tunnel-port"),
    ("include_outbound_ports", "-q/--istio-outbound-ports"),
    ("exclude_interfaces", "-c/--istio-exclude-interfaces"),
    ("redirect_dns", "--redirect-dns"),
    ("capture_all_dns", "--capture-all-dns"),
    ("dns_servers", "--dns-servers"),
    ("drop_invalid", "--drop-invalid"),
    ("owner_groups_include", "--outbound-owner-groups"),
    ("owner_groups_exclude", "--outbound-owner-groups-exclude"),
    ("ipv4_loopback_cidr", "--ipv4-loopback-cidr"),
)


def parse_options(
    *,
    profile: str = "1.3",
    ipv6: bool = False,
    envoy_port: str | None = None,
    inbound_capture_port: str | None = None,
    inbound_tunnel_port: str | None = None,
    proxy_uid: str | None = None,
    proxy_gid: str | None = None,
    mode: str | None = None,
    tproxy_mark: str | None = None,
    tproxy_route_table: str | None = None,
    inbound_ports: str | None = None,
    exclude_inbound_ports: str | None = None,
    exclude_outbound_ports: str | None = None,
    include_outbound_ports: str | None = None,
    include_cidrs: str | None = None,
    exclude_cidrs: str | None = None,
    kubevirt_interfaces: str | None = None,
    exclude_interfaces: str | None = None,
    redirect_dns: bool = False,
    capture_all_dns: bool = False,
    dns_servers: str | None = None,
    drop_invalid: bool = False,
    owner_groups_include: str | None = None,
    owner_groups_exclude: str | None = None,
    ipv4_loopback_cidr: str | None = None,
    default_uid: int = 1337,
) -> CaptureOptions | OptionErrors:
    """Validate raw option text (None = flag not given) into `CaptureOptions`, or every error found.

    Defaults when a flag is absent follow istio-iptables of the chosen profile: `-u` is the proxy uid
    (`default_uid`, 1337 unless the caller found an istio-proxy user) and, in 1.3, also root (0);
    `-g` copies `-u`; `-b`, `-i`, `-x`, `-d`, `-o` are empty (nothing captured).
    """
    if profile not in PROFILES:
        return OptionErrors((f"--profile {profile!r}: must be one of {', '.join(PROFILES)}",))
    prof: Profile = "1.3" if profile == "1.3" else "modern"
    out = _Collector()
    if prof == "1.3":
        given = {"inbound_tunnel_port": inbound_tunnel_port, "include_outbound_ports": include_outbound_ports,
                 "exclude_interfaces": exclude_interfaces, "redirect_dns": redirect_dns or None,
                 "capture_all_dns": capture_all_dns or None, "dns_servers": dns_servers,
                 "drop_invalid": drop_invalid or None, "owner_groups_include": owner_groups_include,
                 "owner_groups_exclude": owner_groups_exclude, "ipv4_loopback_cidr": ipv4_loopback_cidr}
        for key, flag in _MODERN_ONLY:
            if given[key] not in (None, ""):
                out.errors.append(f"{flag}: not available in profile 1.3 (use --profile modern)")

    uid_default = f"{default_uid},0" if prof == "1.3" else str(default_uid)
    ids = _each(_id, allow_empty=False)
    uids = out.value("-u", uid_default if proxy_uid is None else proxy_uid, ids, _NO_INTS)
    gids = uids if proxy_gid is None else out.value("-g", proxy_gid, ids, _NO_INTS)
    servers = out.value("--dns-servers", dns_servers or "", _each(_address), _NO_STRS)
    include_groups = out.value("--outbound-owner-groups", owner_groups_include or WILDCARD, _groups_or_all,
                               _ALL_STRS)
    exclude_groups = out.value("--outbound-owner-groups-exclude", owner_groups_exclude or "", _each(_group),
                               _NO_STRS)
    if include_groups != WILDCARD and exclude_groups:
        out.errors.append("--outbound-owner-groups and --outbound-owner-groups-exclude cannot be combined: "
                          "give either the groups to capture or the groups to skip")
    opts = CaptureOptions(
        profile=prof,
        ipv6=ipv6,
        proxy_port=out.value("-p", envoy_port or "15001", _port, 0),
        inbound_capture_port=out.value("-z", inbound_capture_port or "15006", _port, 0),
        inbound_tunnel_port=out.value("-e", inbound_tunnel_port or "15008", _port, 0),
        proxy_uids=uids,
        proxy_gids=gids,
        mode=out.value("-m", mode or "", _mode, "REDIRECT"),
        tproxy_mark=out.value("-t", tproxy_mark or "1337", _mark, 0),
        tproxy_route_table=out.value("-r", tproxy_route_table or "133", _route_table, 0),
        inbound_ports=out.value("-b", inbound_ports or "", _ports_or_all, ()),
        exclude_inbound_ports=out.value("-d", exclude_inbound_ports or "", _ports, ()),
        exclude_outbound_ports=out.value("-o", exclude_outbound_ports or "", _ports, ()),
        include_outbound_ports=out.value("-q", include_outbound_ports or "", _ports, ()),
        include_cidrs=out.value("-i", include_cidrs or "", _cidrs_or_all, ()),
        exclude_cidrs=out.value("-x", exclude_cidrs or "", _exclude_cidrs, ()),
        kubevirt_interfaces=out.value("-k", kubevirt_interfaces or "", _each(_interface), ()),
        exclude_interfaces=out.value("-c", exclude_interfaces or "", _each(_interface), ()),
        redirect_dns=redirect_dns,
        capture_all_dns=capture_all_dns,
        dns_servers_v4=tuple(s for s in servers if ":" not in s),
        dns_servers_v6=tuple(s for s in servers if ":" in s),
        drop_invalid=drop_invalid,
        owner_groups_include=include_groups,
        owner_groups_exclude=exclude_groups,
        ipv4_loopback_cidr=out.value("--ipv4-loopback-cidr", ipv4_loopback_cidr or "127.0.0.1/32",
                                     _loopback_cidr, ""),
    )
    return OptionErrors(tuple(out.errors)) if out.errors else opts
