"""`pilotfish iptables` in real network namespaces: the seed's chains, real capture, cleanup, TPROXY, IPv6.

Each test gets a fresh pod/peer namespace pair (tests/e2e/netns_pod.py) that is removed afterwards, even
on failure. Traffic only flows between those two namespaces.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotfish.iptables.options import INJECTOR_ARGS, CaptureOptions, parse_options
from pilotfish.iptables.rules import build_rules
from pilotfish.iptables.state import parse_save, rule_key
from tests.e2e.netns_pod import (
    PEER_IP,
    POD_IP,
    POD_IP6,
    SERVICE_IP,
    SERVICE_IP6,
    Pod,
    delete_namespaces,
    make_pod,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables-restore"),
                       reason="needs root, iproute2 and iptables"),
]

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "iptables"
SEED_ARGS = list(INJECTOR_ARGS["1.3"])


@pytest.fixture
def pod() -> Iterator[Pod]:
    made, created = make_pod(ipv6=False)
    try:
        yield made
    finally:
        made.close()
        delete_namespaces(created)


@pytest.fixture
def pod6() -> Iterator[Pod]:
    made, created = make_pod(ipv6=True)
    try:
        yield made
    finally:
        made.close()
        delete_namespaces(created)


def _listing(text: str) -> list[str]:
    """`iptables -vnL` without counters, blank lines and column padding; protocol numbers as names."""
    protocols = {"0": "all", "6": "tcp", "17": "udp"}
    out = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "Chain":
            out.append(re.sub(r"\(policy (\w+) .*\)", r"(policy \1)", " ".join(words)))
        elif words[0] == "pkts":
            out.append(" ".join(words[2:]))
        else:
            rest = words[2:]
            rest[1] = protocols.get(rest[1], rest[1])
            out.append(" ".join(rest))
    return out


def test_seed_options_give_the_seeds_chains_and_capture_traffic(pod: Pod) -> None:
    pod.serve(pod.ns, "pod", [15001, 15006, 22, 15020, 9080])
    pod.serve(pod.peer, "peer", [9080])
    assert pod.connect(pod.ns, [(SERVICE_IP, 9080)], uid=1000) == ["peer 9080 -"]  # no capture yet

    pod.pilotfish(*SEED_ARGS)

    nat_s = pod.exec(pod.ns, ["iptables", "-t", "nat", "-S"]).stdout
    assert nat_s == (GOLDEN / "seed-nat-S.txt").read_text()
    listing = pod.exec(pod.ns, ["iptables", "-t", "nat", "-vnL"]).stdout
    assert _listing(listing) == _listing((GOLDEN / "seed-nat-vnL.txt").read_text())

    # Outbound: an app (uid 1000) is sent to 15001, with the original destination recoverable.
    assert pod.connect(pod.ns, [(SERVICE_IP, 9080), (PEER_IP, 9080)], uid=1000) == [
        f"pod 15001 {SERVICE_IP}:9080", f"pod 15001 {PEER_IP}:9080"]
    # The proxy's own uid (1337) is not captured and reaches the real destination.
    assert pod.connect(pod.ns, [(SERVICE_IP, 9080)], uid=1337) == ["peer 9080 -"]
    # Inbound to the pod IP goes to 15006, except ssh (22) and the agent's status port (15020), which
    # reach their own listeners (the second field is the port that accepted the connection).
    assert pod.connect(pod.peer, [(POD_IP, 9080), (POD_IP, 22), (POD_IP, 15020)]) == [
        f"pod 15006 {POD_IP}:9080", f"pod 22 {POD_IP}:22", f"pod 15020 {POD_IP}:15020"]


def test_apply_twice_then_cleanup_restores_the_nat_table_exactly(pod: Pod) -> None:
    foreign = ("*nat\n:FOREIGN - [0:0]\n-A PREROUTING -p udp -j FOREIGN\n"
               "-A OUTPUT -d 192.0.2.99/32 -j RETURN\n-A FOREIGN -j RETURN\nCOMMIT\n")
    _restore(pod, foreign)
    before = pod.save(table="nat")

    pod.pilotfish(*SEED_ARGS)
    first = pod.exec(pod.ns, ["iptables", "-t", "nat", "-S"]).stdout
    pod.pilotfish(*SEED_ARGS)
    assert pod.exec(pod.ns, ["iptables", "-t", "nat", "-S"]).stdout == first  # no duplicates
    assert first.count("-j ISTIO_OUTPUT") == 1 and "192.0.2.99" in first

    pod.pilotfish("--cleanup")
    assert pod.save(table="nat") == before
    pod.pilotfish("--cleanup")  # idempotent
    assert pod.save(table="nat") == before
    assert "ISTIO" not in pod.save()


def _restore(pod: Pod, text: str) -> None:
    subprocess.run(["ip", "netns", "exec", pod.ns, "iptables-restore", "--noflush"], input=text, text=True,
                   check=True, timeout=30)


INVALID_SETS = [
    ["-p", "0"],
    ["-b", "*", "-d", "15020,99999"],
    ["-i", "10.0.0.0/33"],
    ["-u", "envoy"],
    ["-x", "*"],
    ["-k", "eth0;reboot"],
    ["-m", "TPROXY", "-r", "254"],
]


def test_invalid_options_leave_the_tables_untouched(pod: Pod) -> None:
    pod.pilotfish(*SEED_ARGS)
    before = (pod.save(), pod.save(6))
    for args in INVALID_SETS:
        result = pod.pilotfish(*SEED_ARGS, *args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("pilotfish iptables: ") and args[-1].split(",")[-1] in result.stderr
        assert (pod.save(), pod.save(6)) == before, args


def test_tproxy_13_mangle_chains_and_policy_routing(pod: Pod) -> None:
    args = [*SEED_ARGS, "-m", "TPROXY"]
    pod.pilotfish(*args)
    pod.pilotfish(*args)  # twice: still one routing rule, no duplicate iptables rules
    mangle = pod.exec(pod.ns, ["iptables", "-t", "mangle", "-S"]).stdout
    for chain in ("ISTIO_DIVERT", "ISTIO_TPROXY", "ISTIO_INBOUND"):
        assert f"-N {chain}\n" in mangle
    assert "-A PREROUTING -p tcp -j ISTIO_INBOUND\n" in mangle
    assert "--on-port 15001" in mangle  # 1.3 sends TPROXY'd connections to -p
    rules = pod.exec(pod.ns, ["ip", "rule"]).stdout
    assert rules.count("fwmark 0x539 lookup 133") == 1
    assert "local default dev lo" in pod.exec(pod.ns, ["ip", "route", "show", "table", "133"]).stdout

    pod.pilotfish("--cleanup")
    assert "ISTIO" not in pod.save() and "ISTIO" not in pod.save(6)
    assert "fwmark" not in pod.exec(pod.ns, ["ip", "rule"]).stdout
    assert "table 133" not in pod.exec(pod.ns, ["ip", "route", "show", "table", "all"]).stdout


def _kernel_matches(pod: Pod, opts: CaptureOptions) -> None:
    """Every chain holds exactly our rules in our order, compared through `rule_key` (as cleanup does)."""
    ruleset = build_rules(opts)
    for family in (4, 6) if opts.ipv6 else (4,):
        saved = parse_save(pod.save(family))
        for (table, chain), rules in ruleset.family(family).chain_contents().items():  # type: ignore[arg-type]
            live = [rule_key(r.args) for r in saved.table_rules(table) if r.chain == chain]
            ours = [rule_key(r.spec) for r in rules]
            if chain.startswith("ISTIO_"):
                assert live == ours, (family, table, chain)
            else:
                assert all(key in live for key in ours), (family, table, chain)


def test_modern_tproxy_with_everything_applies_matches_and_cleans_up(pod6: Pod) -> None:
    pod = pod6
    args = ["--profile", "modern", "-m", "TPROXY", "-b", "*", "-d", "15090,15021,15020", "-i", "9.9.0.0/16",
            "-x", "1.1.0.0/16", "-c", "eth9", "-k", "eth8", "-o", "25", "-q", "3306", "--redirect-dns",
            "--dns-servers", "10.66.0.3,fd00:66::3", "--drop-invalid",
            "--outbound-owner-groups-exclude", "888"]
    pod.pilotfish(*args)
    opts = parse_options(profile="modern", ipv6=True, mode="TPROXY", inbound_ports="*",
                         exclude_inbound_ports="15090,15021,15020", include_cidrs="9.9.0.0/16",
                         exclude_cidrs="1.1.0.0/16", exclude_interfaces="eth9", kubevirt_interfaces="eth8",
                         exclude_outbound_ports="25", include_outbound_ports="3306", redirect_dns=True,
                         dns_servers="10.66.0.3,fd00:66::3", drop_invalid=True, owner_groups_exclude="888")
    assert isinstance(opts, CaptureOptions)
    _kernel_matches(pod, opts)
    assert "::6/128" in pod.exec(pod.ns, ["ip", "-6", "addr", "show", "dev", "lo"]).stdout
    assert "fwmark 0x539 lookup 133" in pod.exec(pod.ns, ["ip", "-6", "rule"]).stdout

    pod.pilotfish(*args, "--cleanup")
    for family in (4, 6):
        saved = pod.save(family)
        assert "ISTIO" not in saved and "eth9" not in saved and "eth8" not in saved and "0x539" not in saved
    assert "::6/128" not in pod.exec(pod.ns, ["ip", "-6", "addr", "show", "dev", "lo"]).stdout
    assert "fwmark" not in pod.exec(pod.ns, ["ip", "-6", "rule"]).stdout


def test_ipv6_is_detected_and_captured(pod6: Pod) -> None:
    pod = pod6
    pod.serve(pod.ns, "pod", [15001, 15006, 9080])
    pod.serve(pod.peer, "peer", [9080])
    pod.pilotfish(*SEED_ARGS)  # no --ipv6: detected from eth0's global address
    nat6 = pod.exec(pod.ns, ["ip6tables", "-t", "nat", "-S"]).stdout
    assert "-A ISTIO_OUTPUT -s ::6/128 -o lo -j RETURN" in nat6
    assert "::6/128" in pod.exec(pod.ns, ["ip", "-6", "addr", "show", "dev", "lo"]).stdout
    assert pod.connect(pod.ns, [(SERVICE_IP6, 9080)], uid=1000) == [f"pod 15001 [{SERVICE_IP6}]:9080"]
    assert pod.connect(pod.ns, [(SERVICE_IP6, 9080)], uid=1337) == ["peer 9080 -"]
    # The 1.3 script's IPv6 ISTIO_INBOUND has no final jump: IPv6 inbound is not captured (seed quirk).
    assert pod.connect(pod.peer, [(POD_IP6, 9080), (POD_IP, 9080)]) == [
        f"pod 9080 [{POD_IP6}]:9080", f"pod 15006 {POD_IP}:9080"]
    pod.pilotfish("--cleanup")
    assert "ISTIO" not in pod.save(6)
