"""Istio's istio-iptables capture goldens, reproduced byte for byte by the modern profile.

Each case of cases.json gives the full istio-iptables config; we turn it into our options, apply the
rules through a recording runner (Istio's test stub: every command succeeds with empty output) and
compare the recorded lines with the golden, trimmed (cases.json `goldenFormat` and `comparison`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pilotfish.iptables.apply import RecordingRunner, apply_rules
from pilotfish.iptables.options import CaptureOptions, parse_options
from pilotfish.iptables.rules import build_rules

ROOT = Path(__file__).resolve().parents[2]


def _data_dir() -> Path | None:
    """The vendored copy in the repository, else the shared folder beside the checkout."""
    for base in (ROOT / "tests" / "data", ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if (base / "conformance" / "iptables" / "cases.json").is_file():
            return base / "conformance" / "iptables"
    return None


DATA = _data_dir()
TABLE: dict[str, Any] = json.loads((DATA / "cases.json").read_text()) if DATA else {"cases": []}
CASES: list[dict[str, Any]] = TABLE["cases"]

# cases.json config field -> parse_options argument (text fields); booleans and lists are handled below.
TEXT_FIELDS = {
    "ProxyPort": "envoy_port", "InboundCapturePort": "inbound_capture_port",
    "InboundTunnelPort": "inbound_tunnel_port", "ProxyUID": "proxy_uid", "ProxyGID": "proxy_gid",
    "InboundInterceptionMode": "mode", "InboundTProxyMark": "tproxy_mark",
    "InboundTProxyRouteTable": "tproxy_route_table", "InboundPortsInclude": "inbound_ports",
    "InboundPortsExclude": "exclude_inbound_ports", "OutboundPortsInclude": "include_outbound_ports",
    "OutboundPortsExclude": "exclude_outbound_ports", "OutboundIPRangesInclude": "include_cidrs",
    "OutboundIPRangesExclude": "exclude_cidrs", "RerouteVirtualInterfaces": "kubevirt_interfaces",
    "ExcludeInterfaces": "exclude_interfaces", "OwnerGroupsInclude": "owner_groups_include",
    "OwnerGroupsExclude": "owner_groups_exclude", "HostIPv4LoopbackCidr": "ipv4_loopback_cidr",
}
FLAG_FIELDS = {"RedirectDNS": "redirect_dns", "CaptureAllDNS": "capture_all_dns",
               "DropInvalid": "drop_invalid", "EnableIPv6": "ipv6"}
# Fields that do not change the recorded rules (DryRun: the goldens are recorded with a stub anyway).
NEUTRAL_FIELDS = {"DryRun", "DNSServersV4", "DNSServersV6"}


def _options(config: dict[str, Any]) -> CaptureOptions:
    unsupported = {k for k, v in config.items() if k not in TEXT_FIELDS and k not in FLAG_FIELDS
                   and k not in NEUTRAL_FIELDS and v != TABLE["baseConfig"][k]}
    assert not unsupported, f"case uses options we do not support: {unsupported}"
    kwargs: dict[str, Any] = {arg: config[key] for key, arg in TEXT_FIELDS.items()}
    kwargs |= {arg: bool(config[key]) for key, arg in FLAG_FIELDS.items()}
    kwargs["dns_servers"] = ",".join(config["DNSServersV4"] + config["DNSServersV6"])
    result = parse_options(profile="modern", **kwargs)
    assert isinstance(result, CaptureOptions), result
    return result


@pytest.mark.skipif(DATA is None, reason="Istio conformance data not found")
def test_every_golden_has_a_case() -> None:
    assert DATA is not None
    goldens = sorted(f"testdata/{p.name}" for p in (DATA / "testdata").iterdir())
    assert sorted(c["golden"] for c in CASES) == goldens
    assert len(CASES) == 27


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_istio_golden(case: dict[str, Any]) -> None:
    assert DATA is not None
    runner = RecordingRunner()
    apply_rules(build_rules(_options(case["config"])), runner)
    assert "\n".join(runner.lines()).strip() == (DATA / case["golden"]).read_text().strip()
