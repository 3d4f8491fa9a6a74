"""`pilotfish trace --verify`, the pure half: find the access-log lines one real request left in the
proxies on its path, and compare them with what the trace predicted, proxy by proxy.

Finding the lines (`correlate`): the first proxy's line is the one whose downstream remote address is
the client's own socket (a pod's request) or that carries the request's unique `x-request-id` or
User-Agent (a request through the gateway, which replaces an external x-request-id). From there each
line names the next proxy: `%UPSTREAM_HOST%` is a pod's address, and that pod's line has it as
`%DOWNSTREAM_LOCAL_ADDRESS%`, the same x-request-id (HTTP) and, unless the proxy took the client
address from X-Forwarded-For (port 0), `%UPSTREAM_LOCAL_ADDRESS%` as its downstream remote address.
Requests the apps make while answering (productpage calling reviews) carry the same x-request-id but
start at another local address, so they are never mistaken for a hop.

Comparing (`compare`): per proxy, `%UPSTREAM_CLUSTER%`, `%RESPONSE_FLAGS%` and, where the trace says
the proxy answers by itself, `%RESPONSE_CODE%`; the proxy itself for the first hop (later ones may be
any endpoint the balancer picked). Where Envoy chose another of several weighted clusters, `repick`
names it, so the caller can trace that branch (`--pick`) and compare again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pilotfish.simulate.logline import (
    DOWNSTREAM_LOCAL,
    DOWNSTREAM_REMOTE,
    UPSTREAM_HOST,
    UPSTREAM_LOCAL,
    USER_AGENT,
    LogLine,
)
from pilotfish.simulate.result import ProxyLog, Step, Trace


@dataclass(frozen=True, slots=True)
class Observed:
    """An access-log line and the proxy (`<pod>.<namespace>`) that wrote it."""

    pod: str
    line: LogLine


@dataclass(frozen=True, slots=True)
class Sent:
    """The real request as the client saw it."""

    how: str
    """`from <pod> as uid 1000` or `through 127.0.0.1:<port>`."""
    request_id: str
    user_agent: str
    client: str = ""
    """The client socket's `ip:port` as the first proxy sees it ("" when the relay is in between)."""
    status: int | None = None
    """The HTTP status the client received (None: no HTTP answer)."""
    error: str = ""
    """What went wrong on the client side (refused, reset, timeout), if anything."""
    received: int = 0
    """Bytes received (a TCP request)."""

    @property
    def answer(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status}"
        if self.error:
            return self.error
        return f"{self.received} bytes back" if self.received else "no answer (connection closed)"


@dataclass(frozen=True, slots=True)
class Start:
    """Where the request enters the first proxy and how its line is recognised."""

    pod: str
    client: str = ""
    request_id: str = ""
    user_agent: str = ""


def correlate(lines: Sequence[Observed], start: Start, pods_by_ip: Mapping[str, str]) -> list[Observed]:
    """The lines of the request's path, first proxy first (empty when the first proxy logged none)."""
    first = _first(lines, start)
    if first is None:
        return []
    chain = [first]
    while len(chain) <= len(lines):
        following = _next(lines, chain, pods_by_ip)
        if following is None:
            break
        chain.append(following)
    return chain


def _first(lines: Sequence[Observed], start: Start) -> Observed | None:
    here = [o for o in lines if o.pod == start.pod]
    if start.client:
        exact = [o for o in here if o.line.get(DOWNSTREAM_REMOTE) == start.client]
        if exact:
            return exact[0]
    for o in here:
        if (start.request_id and o.line.request_id == start.request_id) or (
            start.user_agent and o.line.get(USER_AGENT) == start.user_agent
        ):
            return o
    return None


def _next(lines: Sequence[Observed], chain: list[Observed], pods_by_ip: Mapping[str, str]) -> Observed | None:
    previous = chain[-1].line
    host = previous.get(UPSTREAM_HOST)
    pod = pods_by_ip.get(host.rpartition(":")[0]) if host else None
    if pod is None:
        return None
    used = {id(o) for o in chain}
    for o in lines:
        if o.pod != pod or id(o) in used or o.line.get(DOWNSTREAM_LOCAL) != host:
            continue
        if previous.request_id and o.line.request_id != previous.request_id:
            continue
        remote = o.line.get(DOWNSTREAM_REMOTE)
        if remote and not remote.endswith(":0") and remote != previous.get(UPSTREAM_LOCAL):
            continue
        return o
    return None


# --- comparing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    predicted: str
    observed: str
    ok: bool


@dataclass(frozen=True, slots=True)
class HopCheck:
    """One proxy on the path: the trace's prediction, the line Envoy wrote, and the field checks."""

    index: int
    predicted: ProxyLog | None
    observed: Observed | None
    checks: tuple[Check, ...]
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.predicted is not None and self.observed is not None and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "hop": self.index,
            "ok": self.ok,
            "predicted": self.predicted.to_json() if self.predicted is not None else None,
            "pod": self.observed.pod if self.observed is not None else None,
            "access_log": self.observed.line.text if self.observed is not None else None,
            "checks": [
                {"field": c.what, "predicted": c.predicted, "observed": c.observed, "ok": c.ok}
                for c in self.checks
            ],
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Verification:
    sent: Sent
    hops: tuple[HopCheck, ...]
    status: Check | None
    """The client's status against the status an Envoy answers with (None: the app answers)."""
    repick: str | None = None
    """Envoy chose this one of several weighted clusters: trace it with `--pick` and compare again."""
    picked: str = ""
    """Set when this comparison is against such a re-traced branch."""

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hops) and (self.status is None or self.status.ok)

    @property
    def agreeing(self) -> int:
        return sum(1 for h in self.hops if h.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sent": {
                "how": self.sent.how,
                "x_request_id": self.sent.request_id,
                "user_agent": self.sent.user_agent,
                "client": self.sent.client,
                "status": self.sent.status,
                "error": self.sent.error,
            },
            "picked": self.picked or None,
            "hops": [h.to_json() for h in self.hops],
            "status": None
            if self.status is None
            else {"predicted": self.status.predicted, "observed": self.status.observed, "ok": self.status.ok},
        }


def compare(trace: Trace, chain: Sequence[Observed], sent: Sent, picked: str = "") -> Verification:
    """Each predicted proxy log against the observed line at the same position of the path."""
    predicted = written(trace)
    hops: list[HopCheck] = []
    repick: str | None = None
    for index in range(max(len(predicted), len(chain))):
        expected = predicted[index] if index < len(predicted) else None
        observed = chain[index] if index < len(chain) else None
        previous_ok = not hops or hops[-1].ok
        hop = _hop(index + 1, expected, observed, previous_ok)
        hops.append(hop)
        if (
            repick is None
            and expected is not None
            and observed is not None
            and observed.line.cluster != expected.upstream_cluster
        ):
            repick = _weighted_alternative(trace, expected, observed.line.cluster)
    return Verification(sent, tuple(hops), _status_check(trace, sent), repick, picked)


def written(trace: Trace) -> tuple[ProxyLog, ...]:
    """The access-log lines the trace predicts the proxies write (a filter without access log writes
    none)."""
    return tuple(log for log in trace.outcome.logs if log.logged)


def _hop(index: int, expected: ProxyLog | None, observed: Observed | None, previous_ok: bool) -> HopCheck:
    if expected is None:
        assert observed is not None
        return HopCheck(index, None, observed, (), "the trace predicts no further proxy, but this one logged")
    if observed is None:
        return HopCheck(index, expected, None, (), "no access-log line found for this proxy")
    line = observed.line
    checks = [
        Check(
            "upstream_cluster",
            expected.upstream_cluster,
            line.cluster,
            line.cluster == expected.upstream_cluster,
        ),
        Check("response_flags", expected.response_flags, line.flags, line.flags == expected.response_flags),
    ]
    if expected.response_code is not None:
        logged = str(line.code) if line.code is not None else "-"
        checks.append(
            Check("response_code", str(expected.response_code), logged, line.code == expected.response_code)
        )
    note = ""
    if observed.pod != expected.pod:
        if index == 1 or not previous_ok:
            checks.insert(0, Check("proxy", expected.pod, observed.pod, False))
        else:
            note = f"the balancer picked {observed.pod} (the trace follows {expected.pod})"
    return HopCheck(index, expected, observed, tuple(checks), note)


def _weighted_alternative(trace: Trace, expected: ProxyLog, cluster: str) -> str | None:
    for hop in trace.hops:
        weighted = hop.step is Step.WEIGHTED and hop.pod == expected.pod
        if weighted and any(c.name == cluster and (c.weight or 0) > 0 for c in hop.candidates):
            return cluster
    return None


def _status_check(trace: Trace, sent: Sent) -> Check | None:
    code = trace.outcome.status_code
    if code is None:
        return None
    observed = str(sent.status) if sent.status is not None else sent.answer
    return Check("status", str(code), observed, sent.status == code)


# --- text --------------------------------------------------------------------------------------------


def render_verification(verification: Verification) -> str:
    """The per-proxy comparison with each access-log line, and a one-line verdict."""
    sent = verification.sent
    marker = f", x-request-id {sent.request_id}" if sent.request_id else ""
    lines = ["", f"Verify: sent {sent.how}{marker}: {sent.answer}"]
    if verification.picked:
        lines.append(
            f"  (Envoy chose the weighted cluster {verification.picked}: compared with the trace "
            "that follows it)"
        )
    for hop in verification.hops:
        lines.extend(_hop_lines(hop))
    status = verification.status
    if status is not None:
        mark = "ok" if status.ok else "DIFFERS"
        lines.append(f"  client status: predicted {status.predicted}, got {status.observed}  {mark}")
    total = len(verification.hops)
    if verification.ok and not total:
        lines.append("AGREE: no proxy wrote an access-log line for it, as predicted")
    elif verification.ok:
        lines.append(f"AGREE: {total} of {total} proxies logged what the trace predicted")
    else:
        lines.append(f"DISAGREE: {verification.agreeing} of {total} proxies logged what the trace predicted")
    return "\n".join(lines) + "\n"


def _hop_lines(hop: HopCheck) -> list[str]:
    who = hop.observed.pod if hop.observed is not None else hop.predicted.pod if hop.predicted else "?"
    direction = f" {hop.predicted.direction}" if hop.predicted is not None else ""
    head = f"  [{hop.index}] {who}{direction}: {'ok' if hop.ok else 'DIFFERS'}"
    out = [head]
    for check in hop.checks:
        if check.ok:
            out.append(f"      {check.what:<16} {check.observed}")
        else:
            out.append(f"      {check.what:<16} predicted {check.predicted}, Envoy logged {check.observed}")
    if hop.note:
        out.append(f"      note: {hop.note}")
    if hop.observed is not None:
        out.append(f"      log: {hop.observed.line.text}")
    return out
