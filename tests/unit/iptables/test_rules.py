from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pilotfish.iptables.options import CaptureOptions, injector_defaults, parse_options
from pilotfish.iptables.rules import BUILTIN_CHAINS, Rule, build_rules
from tests.golden import check_golden

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "iptables"
NAT_BUILTINS = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")


def _opts(**kwargs: object) -> CaptureOptions:
    result = parse_options(**kwargs)  # type: ignore[arg-type]
    assert isinstance(result, CaptureOptions), result
    return result


def test_seed_rules_golden(request: pytest.FixtureRequest) -> None:
    ruleset = build_rules(injector_defaults("1.3"))
    check_golden(request, GOLDEN / "seed-1.3.restore", ruleset.restore_text(4))
    assert ruleset.restore_text(6) == "" and ruleset.setup == ()


def _row(rule: Rule) -> str:
    """One rule as `iptables -vnL` shows it, without the counters (only what the seed's rules use)."""
    spec = list(rule.spec)
    cols = {"-p": "all", "-i": "*", "-o": "*", "-s": "0.0.0.0/0", "-d": "0.0.0.0/0"}
    extras = []
    i = 0
    while i < len(spec):
        neg = spec[i] == "!"
        if neg:
            i += 1
        opt, value = spec[i], spec[i + 1] if i + 1 < len(spec) else ""
        if opt in cols:
            cols[opt] = ("!" if neg else "") + value.removesuffix("/32")
        elif opt == "--dport":
            extras.append(f"tcp dpt:{value}")
        elif opt in ("--uid-owner", "--gid-owner"):
            extras.append(f"owner {opt[2:5].upper()} match {value}")
        elif opt in ("--to-port", "--to-ports"):
            extras.append(f"redir ports {value}")
        i += 2
    return " ".join([rule.target or "", cols["-p"], "--", cols["-i"], cols["-o"], cols["-s"], cols["-d"],
                     *extras])


def _expected_listing(opts: CaptureOptions) -> list[str]:
    contents = build_rules(opts).v4.chain_contents()
    nat = {chain: rules for (table, chain), rules in contents.items() if table == "nat"}
    header = "target prot opt in out source destination"
    out = []
    for chain in NAT_BUILTINS:
        out += [f"Chain {chain} (policy ACCEPT)", header, *(_row(r) for r in nat.get(chain, ()))]
    for chain in sorted(c for c in nat if c not in BUILTIN_CHAINS):
        refs = sum(r.target == chain for rules in nat.values() for r in rules)
        out += [f"Chain {chain} ({refs} references)", header, *(_row(r) for r in nat[chain])]
    return out


def _seed_listing() -> list[str]:
    """The seed's `iptables -t nat -vnL` (section 3) without counters."""
    out = []
    for line in (GOLDEN / "seed-nat-vnL.txt").read_text().splitlines():
        words = line.split()
        if words[0] == "Chain":
            out.append(" ".join(words[:4]) + ")" if "policy" in line else " ".join(words))
        else:
            out.append(" ".join(words[2:]))
    return out


def test_seed_defaults_produce_the_seeds_nat_listing() -> None:
    assert _expected_listing(injector_defaults("1.3")) == _seed_listing()


def test_13_explicit_inbound_ports_go_to_the_outbound_port() -> None:
    lines = build_rules(_opts(inbound_ports="9080,9443", include_cidrs="*")).restore_text(4).splitlines()
    assert "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-port 15001" in lines  # 1.3: -z only with -b '*'
    assert "-A ISTIO_INBOUND -p tcp --dport 9443 -j ISTIO_IN_REDIRECT" in lines
    assert not any("--dport 22" in line for line in lines)


def test_13_rule_order_with_every_option() -> None:
    opts = _opts(proxy_uid="1337", inbound_ports="*", exclude_inbound_ports="15020",
                 exclude_outbound_ports="25", include_cidrs="10.96.0.0/16,fd00::/8",
                 exclude_cidrs="10.96.0.1/32", kubevirt_interfaces="net1")
    assert build_rules(opts).v4.restore_text().splitlines()[5:] == [
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-port 15001",
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-port 15006",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A ISTIO_INBOUND -p tcp --dport 22 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
        "-A ISTIO_OUTPUT -p tcp --dport 25 -j RETURN",
        "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -j ISTIO_IN_REDIRECT",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A ISTIO_OUTPUT -d 10.96.0.1/32 -j RETURN",
        "-I PREROUTING 1 -i net1 -j RETURN",
        "-I PREROUTING 1 -i net1 -d 10.96.0.0/16 -j ISTIO_REDIRECT",
        "-A ISTIO_OUTPUT -d 10.96.0.0/16 -j ISTIO_REDIRECT",
        "-A ISTIO_OUTPUT -j RETURN",
        "COMMIT",
    ]


def test_13_tproxy_uses_mangle_the_outbound_port_and_policy_routing() -> None:
    ruleset = build_rules(_opts(proxy_uid="1337", mode="TPROXY", inbound_ports="9080"))
    text = ruleset.restore_text(4)
    assert text.startswith("* mangle\n-N ISTIO_DIVERT\n-N ISTIO_TPROXY\n-N ISTIO_INBOUND\n")
    tproxy = ("-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff"
              " --on-port 15001")
    assert tproxy in text
    # The script issues the socket rule twice per explicit port.
    assert text.count("-A ISTIO_INBOUND -p tcp --dport 9080 -m socket -j ISTIO_DIVERT") == 2
    assert [c.argv for c in ruleset.setup] == [
        ("ip", "-f", "inet", "rule", "add", "fwmark", "1337", "lookup", "133"),
        ("ip", "-f", "inet", "route", "add", "local", "default", "dev", "lo", "table", "133"),
    ]


def test_13_ipv6_copies_the_scripts_second_half() -> None:
    ruleset = build_rules(dataclasses.replace(injector_defaults("1.3"), ipv6=True))
    v6 = ruleset.restore_text(6).splitlines()
    assert "-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN" in v6
    assert "-A ISTIO_OUTPUT -d ::1/128 -j RETURN" in v6
    assert "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT" not in v6  # the script's IPv6 quirk
    assert ruleset.setup[0].argv == ("ip", "-6", "addr", "add", "::6/128", "dev", "lo")


def test_modern_injector_defaults_match_the_reference_listing() -> None:
    """istio-reference.md §1.4: the nat rules of modern Istio for the injected defaults."""
    lines = build_rules(injector_defaults("modern")).restore_text(4).splitlines()
    assert lines[:5] == ["* nat", "-N ISTIO_INBOUND", "-N ISTIO_REDIRECT", "-N ISTIO_IN_REDIRECT",
                         "-N ISTIO_OUTPUT"]
    assert lines[5:] == [
        "-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN",
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        "-A OUTPUT -j ISTIO_OUTPUT",
        "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337"
        " -j ISTIO_IN_REDIRECT",
        "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337"
        " -j ISTIO_IN_REDIRECT",
        "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
        "COMMIT",
    ]


def test_modern_tproxy_routes_for_both_families() -> None:
    opts = _opts(profile="modern", mode="TPROXY", inbound_ports="*", ipv6=True)
    argvs = [c.argv for c in build_rules(opts).setup]
    assert ("ip", "-f", "inet6", "rule", "add", "fwmark", "1337", "lookup", "133") in argvs
    assert ("ip", "-f", "inet6", "route", "add", "local", "default", "dev", "lo", "table", "133") in argvs


def test_chain_contents_apply_insert_positions() -> None:
    opts = _opts(profile="modern", mode="TPROXY", inbound_ports="*")
    inbound = build_rules(opts).v4.chain_contents()[("mangle", "ISTIO_INBOUND")]
    assert [r.spec[-1] for r in inbound] == ["RETURN", "RETURN", "RETURN", "ISTIO_DIVERT", "ISTIO_TPROXY"]


def test_commands_are_argv_lists_and_cleanup_is_complete() -> None:
    ruleset = build_rules(_opts(mode="TPROXY", inbound_ports="*", ipv6=True))
    for command in (*ruleset.setup, *ruleset.teardown):
        assert command.argv[0] == "ip" and all(isinstance(a, str) and " " not in a for a in command.argv)
    torn = {c.argv[1:5] for c in ruleset.teardown}
    assert ("-f", "inet", "rule", "del") in torn and ("-f", "inet6", "route", "del") in torn
