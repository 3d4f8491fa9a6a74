from __future__ import annotations

import ipaddress

import pytest

from pilotfish.iptables.options import (
    INJECTOR_ARGS,
    WILDCARD,
    CaptureOptions,
    OptionErrors,
    injector_defaults,
    parse_options,
    split_list,
)


def _ok(**kwargs: object) -> CaptureOptions:
    result = parse_options(**kwargs)  # type: ignore[arg-type]
    assert isinstance(result, CaptureOptions), result
    return result


def _errors(**kwargs: object) -> tuple[str, ...]:
    result = parse_options(**kwargs)  # type: ignore[arg-type]
    assert isinstance(result, OptionErrors), result
    return result.messages


def test_injector_defaults_are_the_seeds_options() -> None:
    opts = injector_defaults("1.3")
    assert opts == CaptureOptions()  # the dataclass defaults are the seed's pod
    assert (opts.proxy_port, opts.inbound_capture_port, opts.proxy_uids, opts.proxy_gids, opts.mode) == (
        15001, 15006, (1337,), (1337,), "REDIRECT")
    assert opts.inbound_ports == WILDCARD and opts.exclude_inbound_ports == (15020,)
    assert opts.include_cidrs == WILDCARD and opts.exclude_cidrs == ()
    assert INJECTOR_ARGS["1.3"][-2:] == ("-d", "15020")


def test_modern_injector_defaults() -> None:
    opts = injector_defaults("modern", ipv6=True)
    assert opts.profile == "modern" and opts.ipv6
    assert opts.exclude_inbound_ports == (15090, 15021, 15020)


def test_absent_flags_follow_istio_iptables_defaults() -> None:
    opts = _ok()
    assert opts.proxy_uids == (1337, 0)  # the 1.3 script adds root when -u is not given
    assert opts.proxy_gids == (1337, 0)  # -g copies -u
    assert opts.inbound_ports == () and opts.include_cidrs == ()  # nothing captured
    assert _ok(profile="modern").proxy_uids == (1337,)
    assert _ok(proxy_uid="3,4", proxy_gid="1,2").proxy_gids == (1, 2)
    assert _ok(default_uid=1500, profile="modern").proxy_uids == (1500,)


def test_lists_are_split_like_istio() -> None:
    assert split_list("6000,7000,") == ["6000", "7000"]
    assert split_list(" 1 , 2 ") == ["1", "2"]
    opts = _ok(inbound_ports="4000,5000", exclude_inbound_ports="6000,7000,", include_cidrs="10.0.0.1/8,::1",
               mode="tproxy")
    assert opts.inbound_ports == (4000, 5000) and opts.exclude_inbound_ports == (6000, 7000)
    assert opts.include_cidrs == (ipaddress.ip_interface("10.0.0.1/8"), ipaddress.ip_interface("::1/128"))
    assert opts.mode == "TPROXY"


def test_dns_servers_are_split_by_family() -> None:
    opts = _ok(profile="modern", redirect_dns=True, dns_servers="127.0.0.53,::127.0.0.53")
    assert opts.dns_servers_v4 == ("127.0.0.53",) and opts.dns_servers_v6 == ("::127.0.0.53",)


# Each invalid option set gives exactly one clear message naming the flag and the problem.
INVALID = [
    ({"envoy_port": "0"}, "-p '0': port 0 is out of range (1-65535)"),
    ({"inbound_capture_port": "http"}, "-z 'http': 'http' is not a port"),
    ({"proxy_uid": "istio-proxy"}, "-u 'istio-proxy': 'istio-proxy' is not a numeric id"),
    ({"proxy_gid": "-1"}, "-g '-1': '-1' is not a numeric id"),
    ({"proxy_uid": ","}, "-u ',': must not be empty"),
    ({"mode": "NONE"}, "-m 'NONE': the interception mode must be REDIRECT or TPROXY"),
    ({"inbound_ports": "80,65536"}, "-b '80,65536': port 65536 is out of range"),
    ({"exclude_inbound_ports": "15020;22"}, "-d '15020;22': '15020;22' is not a port"),
    ({"exclude_outbound_ports": "*"}, "-o '*': '*' is not a port"),
    ({"include_cidrs": "10.0.0.0/33"}, "-i '10.0.0.0/33': '10.0.0.0/33' is not an IP range in CIDR form"),
    ({"include_cidrs": "*,10.0.0.0/8"}, "-i '*,10.0.0.0/8': '*' cannot be mixed with other ranges"),
    ({"exclude_cidrs": "*"}, "-x '*': '*' is not allowed"),
    ({"kubevirt_interfaces": "eth0;reboot"}, "-k 'eth0;reboot': 'eth0;reboot' is not an interface name"),
    ({"kubevirt_interfaces": "averyveryverylongname"}, "is not an interface name"),
    ({"tproxy_mark": "0"}, "-t '0': mark 0 is out of range"),
    ({"tproxy_route_table": "255"}, "-r '255': table 255 is the kernel's 'local' table"),
    ({"include_outbound_ports": "80"}, "-q/--istio-outbound-ports: not available in profile 1.3"),
    ({"profile": "1.2"}, "--profile '1.2': must be one of 1.3, modern"),
    ({"profile": "modern", "dns_servers": "dns.local"}, "--dns-servers 'dns.local': 'dns.local' is not an"),
    ({"profile": "modern", "owner_groups_include": "java", "owner_groups_exclude": "ftp"}, "cannot be"),
    ({"profile": "modern", "ipv4_loopback_cidr": "10.0.0.1/8"}, "is not a loopback range"),
]


@pytest.mark.parametrize(("kwargs", "message"), INVALID, ids=[m.split(":")[0] for _, m in INVALID])
def test_invalid_option_gives_one_clear_message(kwargs: dict[str, object], message: str) -> None:
    messages = _errors(**kwargs)
    assert len(messages) == 1, messages
    assert message in messages[0]


def test_every_error_is_reported_at_once() -> None:
    messages = _errors(envoy_port="x", inbound_capture_port="0", inbound_ports="a", include_cidrs="b",
                       kubevirt_interfaces="c d")
    assert [m.split()[0] for m in messages] == ["-p", "-z", "-b", "-i", "-k"]
