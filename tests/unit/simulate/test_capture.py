"""The iptables decision for one connection, evaluated on the rules `pilotfish iptables` installs."""

from __future__ import annotations

import pytest

from pilotfish.iptables.options import CaptureOptions, OptionErrors, Profile
from pilotfish.simulate.capture import APP_UID, Packet, evaluate, pod_capture, rules_for

POD = "10.44.0.11"
ENVOY = 1337


def _decide(profile: Profile, packet: Packet, annotations: dict[str, str] | None = None) -> int | None:
    options = pod_capture(profile, annotations or {})
    assert isinstance(options, CaptureOptions)
    return evaluate(rules_for(options), packet).port


@pytest.mark.parametrize("profile", ["1.3", "modern"])
@pytest.mark.parametrize(
    ("packet", "port"),
    [
        (Packet(POD, "10.96.0.20", 9080, APP_UID, APP_UID, out_iface="eth0"), 15001),
        (Packet(POD, "10.44.0.12", 9080, ENVOY, ENVOY, out_iface="eth0"), None),
        (Packet("127.0.0.1", "127.0.0.1", 9080, ENVOY, ENVOY, out_iface="lo"), None),
        (Packet("127.0.0.6", POD, 8000, ENVOY, ENVOY, out_iface="lo"), None),
        (Packet(POD, POD, 9080, ENVOY, ENVOY, out_iface="lo"), 15006),
        (Packet("10.44.0.12", POD, 9080, in_iface="eth0"), 15006),
        (Packet("10.44.0.12", POD, 15020, in_iface="eth0"), None),
    ],
    ids=["app-out", "envoy-out", "envoy-to-app", "inbound-passthrough", "envoy-own-ip", "inbound", "status"],
)
def test_injected_defaults(profile: Profile, packet: Packet, port: int | None) -> None:
    assert _decide(profile, packet) == port


def test_app_to_own_pod_ip_goes_inbound_in_13() -> None:
    """1.3 sends any loopback traffic not to 127.0.0.1 through the inbound listener, app's too."""
    assert _decide("1.3", Packet(POD, POD, 9080, APP_UID, APP_UID, out_iface="lo")) == 15006


def test_trail_names_the_deciding_rules() -> None:
    options = pod_capture("1.3", {})
    assert isinstance(options, CaptureOptions)
    verdict = evaluate(rules_for(options), Packet(POD, "10.96.0.20", 9080, ENVOY, ENVOY, out_iface="eth0"))
    assert verdict.trail[-1] == "ISTIO_OUTPUT: -m owner --uid-owner 1337 -j RETURN"
    assert not verdict.captured and not verdict.unevaluated


def test_annotations_change_the_decision() -> None:
    excluded = {
        "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.96.0.0/16",
        "traffic.sidecar.istio.io/excludeInboundPorts": "9080",
        "traffic.sidecar.istio.io/excludeOutboundPorts": "3306",
    }
    assert _decide("1.3", Packet(POD, "10.96.0.20", 9080, out_iface="eth0"), excluded) is None
    assert _decide("1.3", Packet(POD, "10.97.0.20", 9080, out_iface="eth0"), excluded) == 15001
    assert _decide("1.3", Packet(POD, "10.97.0.20", 3306, out_iface="eth0"), excluded) is None
    assert _decide("1.3", Packet("10.44.0.12", POD, 9080, in_iface="eth0"), excluded) is None
    assert _decide("1.3", Packet("10.44.0.12", POD, 15020, in_iface="eth0"), excluded) is None
    only = {"traffic.sidecar.istio.io/includeInboundPorts": "9080"}
    assert _decide("modern", Packet("10.44.0.12", POD, 9081, in_iface="eth0"), only) is None
    assert _decide("modern", Packet("10.44.0.12", POD, 9080, in_iface="eth0"), only) == 15006


def test_interception_none_and_bad_annotations() -> None:
    assert pod_capture("1.3", {"sidecar.istio.io/interceptionMode": "NONE"}) is None
    bad = pod_capture("1.3", {"traffic.sidecar.istio.io/excludeInboundPorts": "http"})
    assert isinstance(bad, OptionErrors) and "http" in bad.messages[0]


def test_tproxy_inbound() -> None:
    options = pod_capture("modern", {"sidecar.istio.io/interceptionMode": "TPROXY"})
    assert isinstance(options, CaptureOptions)
    verdict = evaluate(rules_for(options), Packet("10.44.0.12", POD, 9080, in_iface="eth0"))
    assert verdict.port == 15006
