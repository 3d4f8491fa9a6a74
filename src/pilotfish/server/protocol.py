"""xDS protocol decisions, one stream at a time: pure functions over per-type watch state.

This module knows the rules of the ADS conversation and nothing else: no grpc, no asyncio, no clock
(callers pass `now`). `ads.py` turns protobuf requests into the small request records below, asks
these functions what to do, and performs the sends they imply.

Rules, with where they come from (perf-and-peers.md §A2-A5, envoy-runtime-notes.md §1-2, Istio's
`ShouldRespond`, go-control-plane's sotw/delta servers):

State of the world (SotW), per type:
  * NACK is the presence of `error_detail`, never a version comparison. `version_info` in a NACK is
    the last *accepted* version. A NACK is recorded, never answered: the same content would be
    rejected again (istio/istio#8471); the next change brings a new version.
  * An empty `response_nonce` (or a type never seen on this stream) is a first request: either a new
    subscription or a reconnect carrying the version the client still holds. Always answered, even
    when the version matches, because Envoy waits for it (measured, envoy-runtime-notes §1).
  * A nonce other than the last one sent is stale: an answer to a response that a newer one has
    superseded. Ignored entirely (no state change, no response).
  * The current nonce without an error is an ACK. If the requested names changed at the same time
    (Envoy's subscription change), answer when a name was added (or, for wildcard types, on any
    change); removals need no answer, the client drops those resources itself.

Delta, per type:
  * The first request of a type opens the watch: legacy wildcard when a wildcard type subscribes to
    nothing, explicit wildcard with "*", `initial_resource_versions` tell what the client already
    holds (reconnect). Always answered, possibly with nothing, so the type counts as sent.
  * NACK/ACK as for SotW, by `error_detail` and nonce.
  * Subscription changes are honoured whatever the nonce (the nonce only correlates ACKs).
    A name the client subscribes to is always answered, with the resource or, when it does not
    exist, in `removed_resources` (delta's "does not exist" signal). An unsubscribed name is
    forgotten; a wildcard watch that still covers it sends it again (xDS spec special case).
  * What to send is computed against what the client holds: changed = interest whose content
    version differs from the client's, removed = held names that no longer exist.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

WILDCARD = "*"
RESEND_SEP = "."
"""Separates a content version from a resend counter in a version string (`<hash>.<n>`)."""


def content_of(version: str) -> str:
    """The content part of a wire version: `abc.3` -> `abc` (resends carry a counter suffix)."""
    return version.split(RESEND_SEP, 1)[0]


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """The `google.rpc.Status` of a NACK."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Nack:
    """A rejected response: what Envoy said, and when."""

    nonce: str
    version: str
    """For SotW the version the client still runs (last accepted); for delta the rejected version."""
    code: int
    message: str
    at: float


class Verdict(enum.StrEnum):
    """How a request was classified; the word used in the log lines (`ADS:CDS: ACK ...`)."""

    INIT = "INIT"
    RECONNECT = "RECONNECT"
    ACK = "ACK"
    NACK = "NACK"
    STALE = "STALE"
    RESUBSCRIBE = "RESUBSCRIBE"
    UNSUBSCRIBE = "UNSUBSCRIBE"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    respond: bool
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    always: bool = False
    """Send a response even when it carries nothing new (first request of a type)."""


class SyncStatus(enum.StrEnum):
    """Server-side view of one type on one stream, like CSDS `ConfigStatus` / istioctl."""

    NOT_SENT = "NOT SENT"
    SYNCED = "SYNCED"
    STALE = "STALE"
    NACK = "NACK"


# --- SotW ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SotwRequest:
    type_url: str
    version_info: str = ""
    response_nonce: str = ""
    resource_names: tuple[str, ...] = ()
    error: ErrorDetail | None = None


@dataclass(frozen=True, slots=True)
class SotwWatch:
    """One type on one SotW stream (Istio's `WatchedResource`)."""

    type_url: str
    names: frozenset[str] = frozenset()
    wildcard: bool = False
    nonce_sent: str = ""
    version_sent: str = ""
    content_sent: str = ""
    """Content hash of the last response (the version without a resend suffix)."""
    names_sent: frozenset[str] = frozenset()
    nonce_acked: str = ""
    version_acked: str = ""
    last_nack: Nack | None = None
    sent_at: float = 0.0
    acked_at: float = 0.0
    resends: int = 0


def is_wildcard(type_url: str, names: Iterable[str], wildcard_types: frozenset[str]) -> bool:
    """Legacy wildcard (a wildcard type asking for nothing) or explicit `*`."""
    names = tuple(names)
    return WILDCARD in names or (type_url in wildcard_types and not names)


def sotw_on_request(
    watch: SotwWatch | None, req: SotwRequest, wildcard_types: frozenset[str], now: float
) -> tuple[SotwWatch, Decision]:
    """Classify one SotW request and return the updated watch with what to do."""
    names = frozenset(req.resource_names) - {WILDCARD}
    if watch is not None and req.error is not None:
        # Rule: NACK = error_detail present. Record it only when it answers our latest response; a NACK
        # for a superseded response says nothing about what the client will run next.
        if req.response_nonce == watch.nonce_sent:
            nack = Nack(req.response_nonce, req.version_info, req.error.code, req.error.message, now)
            return replace(watch, last_nack=nack), Decision(Verdict.NACK, respond=False)
        return watch, Decision(Verdict.STALE, respond=False)
    if watch is None or not req.response_nonce:
        # Rule: first request for the type on this stream (new subscription, or reconnect with the
        # version the client still holds): always answer with the current resources.
        fresh = SotwWatch(
            type_url=req.type_url,
            names=names,
            wildcard=is_wildcard(req.type_url, req.resource_names, wildcard_types),
            version_acked=req.version_info,
            acked_at=now if req.version_info else 0.0,
        )
        verdict = Verdict.RECONNECT if req.version_info else Verdict.INIT
        return fresh, Decision(verdict, respond=True, added=names, always=True)
    if req.response_nonce != watch.nonce_sent:
        # Rule: stale nonce, an answer to a response we have since superseded: ignore it completely.
        return watch, Decision(Verdict.STALE, respond=False)
    # Rule: the current nonce without an error is an ACK of our latest response.
    added = names - watch.names
    removed = watch.names - names
    acked = replace(
        watch,
        names=names,
        wildcard=is_wildcard(req.type_url, req.resource_names, wildcard_types),
        nonce_acked=req.response_nonce,
        version_acked=req.version_info,
        acked_at=now,
    )
    if not added and not removed:
        return acked, Decision(Verdict.ACK, respond=False)
    if acked.wildcard or added:
        # Rule: the subscription grew (or a wildcard set changed): send the newly requested names even
        # though the version is unchanged.
        return acked, Decision(Verdict.RESUBSCRIBE, respond=True, added=added, removed=removed)
    # Rule: names were only dropped: the client forgets them by itself, nothing to send.
    return acked, Decision(Verdict.UNSUBSCRIBE, respond=False, removed=removed)


def sotw_version(content: str, watch: SotwWatch | None, force: bool) -> str:
    """The `version_info` for a response with this content hash.

    Normally the content hash itself, so equal content has equal versions across restarts. When
    identical content must be sent again (EDS after a cluster change, so the cluster finishes
    warming), a counter is appended: Envoy needs a *new* version (envoy-runtime-notes §1).
    """
    if watch is None or not force or content != watch.content_sent:
        return content
    return f"{content}{RESEND_SEP}{watch.resends + 1}"


def sotw_on_sent(watch: SotwWatch, nonce: str, version: str, names: Iterable[str], now: float) -> SotwWatch:
    content = content_of(version)
    resends = watch.resends + 1 if version != content else watch.resends
    return replace(
        watch,
        nonce_sent=nonce,
        version_sent=version,
        content_sent=content,
        names_sent=frozenset(names),
        sent_at=now,
        resends=resends,
    )


def sotw_needs_push(watch: SotwWatch, content: str, force: bool) -> bool:
    """Server-initiated push: only when the content for this stream changed (or a resend is forced)."""
    return force or content != watch.content_sent


# --- delta -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeltaRequest:
    type_url: str
    response_nonce: str = ""
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    initial_resource_versions: Mapping[str, str] = field(default_factory=dict)
    error: ErrorDetail | None = None


@dataclass(frozen=True, slots=True)
class DeltaWatch:
    """One type on one delta stream: the subscription and what the client holds."""

    type_url: str
    wildcard: bool = False
    names: frozenset[str] = frozenset()
    known: Mapping[str, str] = field(default_factory=dict)
    """name -> content version the client holds (from our sends, or its initial_resource_versions)."""
    pending: frozenset[str] = frozenset()
    """Names the next response must answer even if unchanged (new subscriptions, forced resends)."""
    nonce_sent: str = ""
    version_sent: str = ""
    nonce_acked: str = ""
    version_acked: str = ""
    last_nack: Nack | None = None
    sent_at: float = 0.0
    acked_at: float = 0.0
    resends: int = 0


def delta_on_request(
    watch: DeltaWatch | None, req: DeltaRequest, wildcard_types: frozenset[str], now: float
) -> tuple[DeltaWatch, Decision]:
    """Classify one delta request and return the updated watch with what to do."""
    if watch is None:
        # Rule: first request of the type opens the watch. Legacy wildcard = a wildcard type that
        # subscribes to nothing; "*" is explicit wildcard. initial_resource_versions = what the client
        # already holds after a reconnect; subscribed names it does not hold are answered.
        names = frozenset(req.subscribe) - {WILDCARD}
        known = {name: content_of(v) for name, v in req.initial_resource_versions.items()}
        opened = DeltaWatch(
            type_url=req.type_url,
            wildcard=is_wildcard(req.type_url, req.subscribe, wildcard_types),
            names=names,
            known=known,
            pending=frozenset(n for n in names if n not in known),
        )
        verdict = Verdict.RECONNECT if known else Verdict.INIT
        return opened, Decision(verdict, respond=True, added=names, always=True)

    verdict = Verdict.ACK
    updated = watch
    if req.error is not None:
        # Rule: NACK = error_detail present; recorded when it answers our latest response, never
        # answered with the same content.
        if req.response_nonce == watch.nonce_sent:
            nack = Nack(req.response_nonce, watch.version_sent, req.error.code, req.error.message, now)
            updated = replace(updated, last_nack=nack)
            verdict = Verdict.NACK
        else:
            verdict = Verdict.STALE
    elif req.response_nonce:
        if req.response_nonce == watch.nonce_sent:
            # Rule: ACK of our latest response.
            updated = replace(
                updated, nonce_acked=req.response_nonce, version_acked=watch.version_sent, acked_at=now
            )
        else:
            # Rule: stale nonce: the ACK part is ignored, but subscription changes below still count.
            verdict = Verdict.STALE

    if not req.subscribe and not req.unsubscribe:
        return updated, Decision(verdict, respond=False)

    # Rule: subscription changes are honoured whatever the nonce.
    subscribe = frozenset(req.subscribe)
    unsubscribe = frozenset(req.unsubscribe)
    wildcard = updated.wildcard
    if WILDCARD in subscribe:
        wildcard = True
    if WILDCARD in unsubscribe:
        wildcard = False
    added = subscribe - {WILDCARD}
    removed = unsubscribe - {WILDCARD}
    names = (updated.names | added) - removed
    # A newly subscribed name is answered even if we sent it before (the client asks because it does
    # not have it); an unsubscribed name is forgotten, so a wildcard watch that still covers it sends it
    # again (xDS spec: the server must answer with the resource or its removal).
    known = {n: v for n, v in updated.known.items() if n not in added and n not in removed}
    pending = (updated.pending | added) - removed
    updated = replace(updated, wildcard=wildcard, names=names, known=known, pending=pending)
    if verdict is Verdict.ACK:
        verdict = Verdict.RESUBSCRIBE if added or WILDCARD in subscribe else Verdict.UNSUBSCRIBE
    return updated, Decision(verdict, respond=True, added=added, removed=removed)


def delta_changes(watch: DeltaWatch, current: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """What a delta response must carry: (changed names in `current` order, removed names).

    `current` maps every resource of the type that exists for this proxy to its content version.
    Changed = what the client is interested in (everything for a wildcard watch, else its names) and
    holds at another version, plus pending names; removed = held names that no longer exist, plus
    pending names that do not exist (delta's "does not exist").
    """
    changed = [
        name
        for name, version in current.items()
        if name in watch.pending
        or ((watch.wildcard or name in watch.names) and watch.known.get(name) != version)
    ]
    removed = [name for name in watch.known if name not in current]
    removed += sorted(n for n in watch.pending if n not in current and n not in watch.known)
    return changed, removed


def delta_force(watch: DeltaWatch, names: Iterable[str]) -> DeltaWatch:
    """Make the next response (re)send these names even if the client holds them.

    Used for EDS after a CDS push that added or changed EDS clusters: a changed cluster only finishes
    warming when a new EDS response arrives (envoy-runtime-notes §1), and a new cluster's endpoints
    sent right behind its CDS let it warm before the routes that use it arrive (make before break).
    """
    forced = frozenset(names)
    return replace(watch, pending=watch.pending | forced) if forced else watch


def delta_wire_version(content: str, resend: bool, watch: DeltaWatch) -> str:
    """Wire version of one resource: its content version, plus a counter when re-sent unchanged."""
    return f"{content}{RESEND_SEP}{watch.resends + 1}" if resend else content


def delta_on_sent(
    watch: DeltaWatch,
    nonce: str,
    system_version: str,
    sent: Mapping[str, str],
    removed: Sequence[str],
    now: float,
    resent: bool = False,
) -> DeltaWatch:
    """Record a delta response: the client now holds `sent` (content versions) and not `removed`."""
    known = {n: v for n, v in watch.known.items() if n not in removed}
    known.update(sent)
    return replace(
        watch,
        known=known,
        pending=watch.pending - sent.keys() - frozenset(removed),
        nonce_sent=nonce,
        version_sent=system_version,
        sent_at=now,
        resends=watch.resends + 1 if resent else watch.resends,
    )


# --- status ----------------------------------------------------------------------------------------


def sync_status(nonce_sent: str, nonce_acked: str, last_nack: Nack | None) -> SyncStatus:
    """Istio's rule (statusgen.go / istioctl): NOT SENT, NACK (ERROR) of the latest, SYNCED, STALE."""
    if not nonce_sent:
        return SyncStatus.NOT_SENT
    if last_nack is not None and last_nack.nonce == nonce_sent:
        return SyncStatus.NACK
    if nonce_sent == nonce_acked:
        return SyncStatus.SYNCED
    return SyncStatus.STALE
