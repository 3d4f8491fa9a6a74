"""Table-driven tests of the xDS protocol decisions (pilotfish.server.protocol).

Each row is one rule from the module docstring: a watch state, one request, the expected verdict,
whether the server answers, and the state afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pilotfish.server.protocol import (
    DeltaRequest,
    DeltaWatch,
    ErrorDetail,
    Nack,
    SotwRequest,
    SotwWatch,
    SyncStatus,
    Verdict,
    content_of,
    delta_changes,
    delta_force,
    delta_on_request,
    delta_on_sent,
    sotw_on_request,
    sotw_on_sent,
    sotw_version,
    sync_status,
)

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
WILDCARD_TYPES = frozenset({CDS, LDS})
NOW = 1000.0
ERR = ErrorDetail(13, "Invalid duration: Expected positive duration")


def sent_sotw(
    type_url: str, names: tuple[str, ...] = (), nonce: str = "n1", version: str = "v1"
) -> SotwWatch:
    """A watch that was opened with `names` and has been sent `version` under `nonce`."""
    watch = SotwWatch(type_url, names=frozenset(names), wildcard=not names and type_url in WILDCARD_TYPES)
    return sotw_on_sent(watch, nonce, version, names, NOW - 1)


@dataclass
class SotwCase:
    id: str
    watch: SotwWatch | None
    request: SotwRequest
    verdict: Verdict
    respond: bool
    names: frozenset[str] | None = None
    nonce_acked: str | None = None
    nacked: bool = False
    added: frozenset[str] = field(default_factory=frozenset)


SOTW_CASES = [
    SotwCase(
        "first CDS request is wildcard and answered",
        None,
        SotwRequest(CDS),
        Verdict.INIT,
        True,
        names=frozenset(),
    ),
    SotwCase(
        "first EDS request names clusters and is answered",
        None,
        SotwRequest(EDS, resource_names=("c1",)),
        Verdict.INIT,
        True,
        names=frozenset({"c1"}),
        added=frozenset({"c1"}),
    ),
    SotwCase(
        "reconnect carries the held version, no nonce: answered even if the version matches",
        None,
        SotwRequest(EDS, version_info="v1", resource_names=("c1",)),
        Verdict.RECONNECT,
        True,
    ),
    SotwCase(
        "empty nonce on an open watch is a new request: answered",
        sent_sotw(CDS),
        SotwRequest(CDS, version_info="v1"),
        Verdict.RECONNECT,
        True,
    ),
    SotwCase(
        "current nonce without error is an ACK: not answered",
        sent_sotw(CDS),
        SotwRequest(CDS, "v1", "n1"),
        Verdict.ACK,
        False,
        nonce_acked="n1",
    ),
    SotwCase(
        "stale nonce is ignored",
        sent_sotw(CDS, nonce="n2"),
        SotwRequest(CDS, "v1", "n1"),
        Verdict.STALE,
        False,
        nonce_acked="",
    ),
    SotwCase(
        "stale nonce with new names is ignored too (a newer response is on its way)",
        sent_sotw(EDS, ("c1",), nonce="n2"),
        SotwRequest(EDS, "v1", "n1", ("c1", "c2")),
        Verdict.STALE,
        False,
        names=frozenset({"c1"}),
    ),
    SotwCase(
        "error_detail on the current nonce is a NACK: recorded, not answered",
        sent_sotw(CDS, nonce="n2", version="v2"),
        SotwRequest(CDS, "v1", "n2", error=ERR),
        Verdict.NACK,
        False,
        nonce_acked="",
        nacked=True,
    ),
    SotwCase(
        "a NACK of a superseded response is stale",
        sent_sotw(CDS, nonce="n3"),
        SotwRequest(CDS, "v1", "n2", error=ERR),
        Verdict.STALE,
        False,
    ),
    SotwCase(
        "ACK that adds a name (new EDS cluster) is answered",
        sent_sotw(EDS, ("c1",)),
        SotwRequest(EDS, "v1", "n1", ("c1", "c2")),
        Verdict.RESUBSCRIBE,
        True,
        names=frozenset({"c1", "c2"}),
        nonce_acked="n1",
        added=frozenset({"c2"}),
    ),
    SotwCase(
        "ACK that only drops a name is not answered",
        sent_sotw(EDS, ("c1", "c2")),
        SotwRequest(EDS, "v1", "n1", ("c1",)),
        Verdict.UNSUBSCRIBE,
        False,
        names=frozenset({"c1"}),
    ),
    SotwCase(
        "explicit wildcard '*' on LDS",
        None,
        SotwRequest(LDS, resource_names=("*",)),
        Verdict.INIT,
        True,
        names=frozenset(),
    ),
]


@pytest.mark.parametrize("case", SOTW_CASES, ids=[c.id for c in SOTW_CASES])
def test_sotw_on_request(case: SotwCase) -> None:
    watch, decision = sotw_on_request(case.watch, case.request, WILDCARD_TYPES, NOW)
    assert decision.verdict is case.verdict
    assert decision.respond is case.respond
    if case.names is not None:
        assert watch.names == case.names
    if case.nonce_acked is not None:
        assert watch.nonce_acked == case.nonce_acked
    assert (watch.last_nack is not None) is case.nacked
    if case.nacked:
        assert watch.last_nack == Nack(
            case.request.response_nonce, case.request.version_info, 13, ERR.message, NOW
        )
    if case.added:
        assert decision.added == case.added
    if case.verdict is Verdict.STALE:
        assert watch == case.watch  # stale requests change nothing


def test_sotw_wildcard_flags() -> None:
    cds, _ = sotw_on_request(None, SotwRequest(CDS), WILDCARD_TYPES, NOW)
    eds, _ = sotw_on_request(None, SotwRequest(EDS), WILDCARD_TYPES, NOW)
    lds, _ = sotw_on_request(None, SotwRequest(LDS, resource_names=("*",)), WILDCARD_TYPES, NOW)
    assert (cds.wildcard, eds.wildcard, lds.wildcard) == (True, False, True)


def test_sotw_version_bumps_only_forced_resends_of_identical_content() -> None:
    watch = sent_sotw(EDS, ("c1",), version="abc")
    assert sotw_version("abc", watch, force=False) == "abc"
    assert sotw_version("def", watch, force=True) == "def"
    first = sotw_version("abc", watch, force=True)
    assert first == "abc.1"
    watch = sotw_on_sent(watch, "n2", first, ("c1",), NOW)
    assert watch.content_sent == "abc"
    assert sotw_version("abc", watch, force=True) == "abc.2"


@pytest.mark.parametrize(
    ("sent", "acked", "nack_nonce", "expected"),
    [
        ("", "", None, SyncStatus.NOT_SENT),
        ("n1", "n1", None, SyncStatus.SYNCED),
        ("n2", "n1", None, SyncStatus.STALE),
        ("n2", "", None, SyncStatus.STALE),
        ("n2", "n1", "n2", SyncStatus.NACK),
        ("n3", "n3", "n2", SyncStatus.SYNCED),  # a later response was accepted: the NACK is history
    ],
)
def test_sync_status(sent: str, acked: str, nack_nonce: str | None, expected: SyncStatus) -> None:
    nack = Nack(nack_nonce, "v1", 13, "bad", NOW) if nack_nonce else None
    assert sync_status(sent, acked, nack) is expected


# --- delta -------------------------------------------------------------------------------------------


def sent_delta(
    type_url: str, known: dict[str, str], names: tuple[str, ...] = (), nonce: str = "n1"
) -> DeltaWatch:
    watch = DeltaWatch(type_url, wildcard=not names and type_url in WILDCARD_TYPES, names=frozenset(names))
    return delta_on_sent(watch, nonce, "sys1", known, (), NOW - 1)


@dataclass
class DeltaCase:
    id: str
    watch: DeltaWatch | None
    request: DeltaRequest
    verdict: Verdict
    respond: bool
    wildcard: bool | None = None
    names: frozenset[str] | None = None
    known: dict[str, str] | None = None
    pending: frozenset[str] | None = None
    nonce_acked: str | None = None
    nacked: bool = False


DELTA_CASES = [
    DeltaCase(
        "first CDS with nothing subscribed is legacy wildcard, always answered",
        None,
        DeltaRequest(CDS),
        Verdict.INIT,
        True,
        wildcard=True,
    ),
    DeltaCase(
        "first EDS names its clusters",
        None,
        DeltaRequest(EDS, subscribe=("c1",)),
        Verdict.INIT,
        True,
        wildcard=False,
        names=frozenset({"c1"}),
        pending=frozenset({"c1"}),
    ),
    DeltaCase(
        "first EDS with nothing subscribed is not wildcard",
        None,
        DeltaRequest(EDS),
        Verdict.INIT,
        True,
        wildcard=False,
    ),
    DeltaCase(
        "reconnect: initial_resource_versions are what the client holds (resend suffix stripped)",
        None,
        DeltaRequest(EDS, subscribe=("c1", "c2"), initial_resource_versions={"c1": "v1.3"}),
        Verdict.RECONNECT,
        True,
        known={"c1": "v1"},
        pending=frozenset({"c2"}),
    ),
    DeltaCase(
        "explicit wildcard", None, DeltaRequest(CDS, subscribe=("*",)), Verdict.INIT, True, wildcard=True
    ),
    DeltaCase(
        "ACK of the current nonce",
        sent_delta(CDS, {"c1": "v1"}),
        DeltaRequest(CDS, response_nonce="n1"),
        Verdict.ACK,
        False,
        nonce_acked="n1",
    ),
    DeltaCase(
        "NACK of the current nonce is recorded, not answered",
        sent_delta(CDS, {"c1": "v1"}),
        DeltaRequest(CDS, response_nonce="n1", error=ERR),
        Verdict.NACK,
        False,
        nonce_acked="",
        nacked=True,
    ),
    DeltaCase(
        "stale ACK is ignored",
        sent_delta(CDS, {"c1": "v1"}, nonce="n2"),
        DeltaRequest(CDS, response_nonce="n1"),
        Verdict.STALE,
        False,
        nonce_acked="",
    ),
    DeltaCase(
        "subscription change with a stale nonce is still honoured",
        sent_delta(EDS, {"c1": "v1"}, ("c1",), "n2"),
        DeltaRequest(EDS, response_nonce="n1", subscribe=("c2",)),
        Verdict.STALE,
        True,
        names=frozenset({"c1", "c2"}),
        pending=frozenset({"c2"}),
    ),
    DeltaCase(
        "new subscription without nonce is answered",
        sent_delta(EDS, {"c1": "v1"}, ("c1",)),
        DeltaRequest(EDS, subscribe=("c2",)),
        Verdict.RESUBSCRIBE,
        True,
        names=frozenset({"c1", "c2"}),
        known={"c1": "v1"},
        pending=frozenset({"c2"}),
    ),
    DeltaCase(
        "re-subscribing a held name forgets it so it is sent again",
        sent_delta(EDS, {"c1": "v1"}, ("c1",)),
        DeltaRequest(EDS, subscribe=("c1",)),
        Verdict.RESUBSCRIBE,
        True,
        known={},
        pending=frozenset({"c1"}),
    ),
    DeltaCase(
        "unsubscribe forgets the name",
        sent_delta(EDS, {"c1": "v1", "c2": "v2"}, ("c1", "c2")),
        DeltaRequest(EDS, unsubscribe=("c2",)),
        Verdict.UNSUBSCRIBE,
        True,
        names=frozenset({"c1"}),
        known={"c1": "v1"},
    ),
    DeltaCase(
        "unsubscribing '*' ends the wildcard",
        sent_delta(CDS, {"c1": "v1"}),
        DeltaRequest(CDS, unsubscribe=("*",)),
        Verdict.UNSUBSCRIBE,
        True,
        wildcard=False,
    ),
]


@pytest.mark.parametrize("case", DELTA_CASES, ids=[c.id for c in DELTA_CASES])
def test_delta_on_request(case: DeltaCase) -> None:
    watch, decision = delta_on_request(case.watch, case.request, WILDCARD_TYPES, NOW)
    assert decision.verdict is case.verdict
    assert decision.respond is case.respond
    if case.wildcard is not None:
        assert watch.wildcard is case.wildcard
    if case.names is not None:
        assert watch.names == case.names
    if case.known is not None:
        assert dict(watch.known) == case.known
    if case.pending is not None:
        assert watch.pending == case.pending
    if case.nonce_acked is not None:
        assert watch.nonce_acked == case.nonce_acked
    assert (watch.last_nack is not None) is case.nacked


@dataclass
class ChangesCase:
    id: str
    watch: DeltaWatch
    current: dict[str, str]
    changed: list[str]
    removed: list[str]


CHANGES_CASES = [
    ChangesCase(
        "wildcard, client holds nothing: everything",
        DeltaWatch(CDS, wildcard=True),
        {"a": "1", "b": "2"},
        ["a", "b"],
        [],
    ),
    ChangesCase(
        "client holds the same versions: nothing",
        DeltaWatch(CDS, wildcard=True, known={"a": "1"}),
        {"a": "1"},
        [],
        [],
    ),
    ChangesCase(
        "one version changed",
        DeltaWatch(CDS, wildcard=True, known={"a": "1", "b": "2"}),
        {"a": "1", "b": "3"},
        ["b"],
        [],
    ),
    ChangesCase(
        "held resource no longer exists: removed",
        DeltaWatch(CDS, wildcard=True, known={"a": "1", "b": "2"}),
        {"a": "1"},
        [],
        ["b"],
    ),
    ChangesCase(
        "non-wildcard sends only subscribed names",
        DeltaWatch(EDS, names=frozenset({"a"})),
        {"a": "1", "b": "2"},
        ["a"],
        [],
    ),
    ChangesCase(
        "subscribed name that does not exist is reported removed (does not exist)",
        DeltaWatch(EDS, names=frozenset({"x"}), pending=frozenset({"x"})),
        {"a": "1"},
        [],
        ["x"],
    ),
    ChangesCase(
        "pending name is re-sent even at the held version",
        DeltaWatch(EDS, names=frozenset({"a"}), known={"a": "1"}, pending=frozenset({"a"})),
        {"a": "1"},
        ["a"],
        [],
    ),
]


@pytest.mark.parametrize("case", CHANGES_CASES, ids=[c.id for c in CHANGES_CASES])
def test_delta_changes(case: ChangesCase) -> None:
    assert delta_changes(case.watch, case.current) == (case.changed, case.removed)


def test_delta_force_then_sent_clears_pending() -> None:
    watch = sent_delta(EDS, {"c1": "v1"}, ("c1",))
    forced = delta_force(watch, ["c1", "c2"])
    assert delta_changes(forced, {"c1": "v1", "c2": "v2"}) == (["c1", "c2"], [])
    after = delta_on_sent(forced, "n2", "sys2", {"c1": "v1", "c2": "v2"}, (), NOW)
    assert after.pending == frozenset()
    assert dict(after.known) == {"c1": "v1", "c2": "v2"}
    assert delta_changes(after, {"c1": "v1", "c2": "v2"}) == ([], [])


def test_content_of_strips_resend_counter() -> None:
    assert content_of("abc.12") == "abc"
    assert content_of("abc") == "abc"
