"""The state file, the run lock and the pod/admin lookups other commands use to find the running mesh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pilotfish.cli.sandbox import next_steps, pods_table
from pilotfish.sandbox.state import (
    MeshState,
    NoRunningMesh,
    PodState,
    RunLock,
    admin_address,
    discovery_http_address,
    find_pod,
    live_prefixes,
    lock_held,
    read_state,
    run_dir,
    write_state,
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PILOTFISH_RUN_ROOT", str(tmp_path))
    monkeypatch.delenv("PILOTFISH_PREFIX", raising=False)
    yield tmp_path


def _state(prefix: str = "pf-") -> MeshState:
    pods = [
        PodState("productpage-v1-abc-x1", "default", f"{prefix}productpage-v1-abc-x1.default", "10.44.1.1",
                 "sidecar", "/r/pp/admin.sock", {"productpage": "/r/pp/productpage.log"}, "2/2"),
        PodState("reviews-v1-abc-x2", "default", "n2", "10.44.1.2", "sidecar", "/r/r1/admin.sock", {}, "2/2"),
        PodState("reviews-v2-abc-x3", "default", "n3", "10.44.1.3", "sidecar", "/r/r2/admin.sock", {}, "1/2"),
        PodState("istio-ingressgateway-abc-x4", "istio-system", "n4", "10.44.1.4", "router", "/r/gw/admin.sock",
                 {}, "1/1"),
        PodState("external", "", "n5", "10.44.0.200", None, "", {"external": "/r/e.log"}, "1/1"),
    ]
    return MeshState(prefix=prefix, run_id="r1", pid=123, dirs=["/m"], run_dir=str(run_dir(prefix)),
                     ingress_url="http://127.0.0.1:8080", discovery_grpc="unix:/r/xds.sock",
                     discovery_http="127.0.0.1:4444", node=f"{prefix}node", pods=pods)


def test_state_round_trips_through_the_file(root: Path) -> None:
    state = _state()
    Path(state.run_dir).mkdir(parents=True)
    write_state(state)
    assert read_state("pf-") == state
    assert read_state("other-") is None


def test_lookups_find_the_running_mesh_without_flags(root: Path) -> None:
    state = _state()
    Path(state.run_dir).mkdir(parents=True)
    write_state(state)
    assert admin_address("productpage-v1-abc-x1") == "unix:/r/pp/admin.sock"
    assert admin_address("productpage") == "unix:/r/pp/admin.sock"
    assert admin_address("istio-ingressgateway-abc-x4", "istio-system") == "unix:/r/gw/admin.sock"
    assert admin_address("istio-ingressgateway-abc-x4.istio-system") == "unix:/r/gw/admin.sock"
    assert admin_address("deploy/reviews-v2") == "unix:/r/r2/admin.sock"
    assert discovery_http_address() == "127.0.0.1:4444"


def test_lookup_errors_say_what_exists(root: Path) -> None:
    with pytest.raises(NoRunningMesh, match="pilotfish up"):
        admin_address("productpage")
    state = _state()
    with pytest.raises(LookupError, match=r"ambiguous: reviews-v1-abc-x2\.default, reviews-v2-abc-x3\.default"):
        find_pod(state, "reviews")
    with pytest.raises(LookupError, match=r"not in the running mesh.*productpage-v1-abc-x1\.default"):
        find_pod(state, "ratings")
    with pytest.raises(LookupError, match="namespace istio-system"):
        find_pod(state, "productpage", "istio-system")


def test_prefix_from_the_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state("pfx-")
    Path(state.run_dir).mkdir(parents=True)
    write_state(state)
    monkeypatch.setenv("PILOTFISH_PREFIX", "pfx-")
    assert admin_address("productpage") == "unix:/r/pp/admin.sock"


def test_one_run_per_prefix(root: Path) -> None:
    first, second, other = RunLock("pf-"), RunLock("pf-"), RunLock("pfa-")
    assert first.acquire()
    try:
        assert not second.acquire()
        assert lock_held("pf-") and not lock_held("pfa-")
        assert other.acquire()
        assert sorted(live_prefixes()) == ["pf-", "pfa-"]
        other.release(remove=True)
    finally:
        first.release(remove=True)
    assert not lock_held("pf-")
    assert not (root / "pf-.lock").exists()


def test_pods_table_and_next_steps_name_this_mesh() -> None:
    state = _state()
    table = pods_table(state).splitlines()
    assert table[0].split() == ["NAMESPACE", "NAME", "READY", "IP"]
    assert table[3].split() == ["default", "reviews-v2-abc-x3", "1/2", "10.44.1.3"]
    assert table[5].split() == ["-", "external", "1/1", "10.44.0.200"]
    steps = next_steps(state)
    assert "curl http://127.0.0.1:8080/productpage" in steps
    assert ("pilotfish proxy-config listener istio-ingressgateway-abc-x4 -n istio-system --port 80 -o json"
            in steps)
    assert "PILOTFISH_PREFIX" not in steps
    assert "PILOTFISH_PREFIX=pfq- pilotfish proxy-status" in next_steps(_state("pfq-"))
