from __future__ import annotations

import pytest

from pilotfish.agent.options import (
    UNIX_PATH_MAX,
    AgentOptions,
    OptionError,
    TcpAddress,
    UnixAddress,
    parse_address,
    parse_labels,
    parse_metadata,
)
from pilotfish.model.names import NodeId, ProxyType


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:15010", TcpAddress("127.0.0.1", 15010)),
        ("[::1]:15010", TcpAddress("::1", 15010)),
        ("istiod.istio-system.svc:15012", TcpAddress("istiod.istio-system.svc", 15012)),
        ("unix:/run/pf/xds.sock", UnixAddress("/run/pf/xds.sock")),
        ("unix:@pilotfish-xds", UnixAddress("@pilotfish-xds")),
    ],
)
def test_parse_address(text: str, expected: TcpAddress | UnixAddress) -> None:
    assert parse_address(text, "--discovery") == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("15010", "expected HOST:PORT or unix:PATH"),
        ("127.0.0.1:", "port must be a number from 1 to 65535"),
        ("127.0.0.1:0", "port must be a number from 1 to 65535"),
        ("127.0.0.1:70000", "port must be a number from 1 to 65535"),
        ("bad_host!:80", "is neither an IP address nor a host name"),
        ("unix:", "the socket path is empty"),
        ("unix:/" + "x" * UNIX_PATH_MAX, f"unix sockets allow at most {UNIX_PATH_MAX}"),
    ],
)
def test_parse_address_errors_name_the_option(text: str, message: str) -> None:
    with pytest.raises(OptionError) as caught:
        parse_address(text, "--discovery")
    assert str(caught.value).startswith("--discovery")
    assert message in str(caught.value)


def test_port_zero_only_when_allowed() -> None:
    assert parse_address("127.0.0.1:0", "--admin", allow_port_zero=True) == TcpAddress("127.0.0.1", 0)


def test_parse_labels_sorts_and_validates() -> None:
    assert parse_labels(["version=v1", "app=reviews", "empty="]) == (
        ("app", "reviews"),
        ("empty", ""),
        ("version", "v1"),
    )
    assert parse_labels(["app.kubernetes.io/name=reviews"]) == (("app.kubernetes.io/name", "reviews"),)
    with pytest.raises(OptionError) as caught:
        parse_labels(["novalue", "bad key=x", "k=-bad-"])
    assert caught.value.problems == (
        "--label 'novalue': expected KEY=VALUE",
        "--label bad key=x: 'bad key' is not a valid label key",
        "--label k=-bad-: '-bad-' is not a valid label value",
    )


def _options(**overrides: object) -> AgentOptions:
    values: dict[str, object] = {
        "proxy_type": ProxyType.SIDECAR,
        "pod_name": "reviews-v1-abc",
        "namespace": "default",
        "ip": "10.44.0.11",
        "discovery": UnixAddress("/run/pf/xds.sock"),
    }
    values.update(overrides)
    return AgentOptions(**values)  # type: ignore[arg-type]


def test_node_id_round_trips_through_names() -> None:
    node_id = _options(pod_name="a.b").node_id
    assert str(node_id) == "sidecar~10.44.0.11~a.b.default~default.svc.cluster.local"
    assert NodeId.parse(str(node_id)) == node_id


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(OptionError) as caught:
        _options(
            pod_name="Bad_Pod",
            namespace="a.b",
            ip="10.44.0",
            stats_port=15021,
            admin=TcpAddress("127.0.0.1", 0),
            status_address="anywhere",
            pod_ports=(0,),
        )
    assert caught.value.problems == (
        "--pod 'Bad_Pod': must be a DNS-1123 subdomain (a-z, 0-9, '-', '.')",
        "--namespace 'a.b': must be a DNS-1123 label (a-z, 0-9, '-')",
        "--ip '10.44.0': not an IP address",
        "--stats-port and --ready-port are both 15021: they must differ",
        "--pod-port 0: must be from 1 to 65535",
        "--admin 127.0.0.1:0: needs a fixed port, because the agent and the stats/readiness listeners reach "
        "Envoy through it; use unix:PATH to run many Envoys side by side",
        "--status-address 'anywhere': not an IP address",
    )


def test_admin_port_must_not_collide_with_status_ports() -> None:
    with pytest.raises(OptionError, match="its port is also used"):
        _options(admin=TcpAddress("127.0.0.1", 15090))


def test_ports_zero_disable_listeners_and_may_repeat() -> None:
    opts = _options(stats_port=0, ready_port=0)
    assert (opts.stats_port, opts.ready_port) == (0, 0)


def test_parse_metadata() -> None:
    assert parse_metadata(["PILOTFISH_TEST_HOOK=nack-lds", "A=1"]) == (
        ("A", "1"),
        ("PILOTFISH_TEST_HOOK", "nack-lds"),
    )
    with pytest.raises(OptionError) as caught:
        parse_metadata(["LABELS=x", "no value", "bad key=1"])
    assert caught.value.problems == (
        "--meta 'LABELS=x': LABELS is set by the agent itself",
        "--meta 'no value': expected KEY=VALUE with a key of letters, digits, '_', '.', '-'",
        "--meta 'bad key=1': expected KEY=VALUE with a key of letters, digits, '_', '.', '-'",
    )
