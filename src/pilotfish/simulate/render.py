"""Trace -> text (one hop per line, with the why) and JSON. Pure: returns strings."""

from __future__ import annotations

import json

from pilotfish.simulate.request import Protocol
from pilotfish.simulate.result import End, Hop, Status, Trace

_MARK = {Status.OK: " ", Status.FAIL: "✗", Status.NOTE: "!"}


def hop_line(number: int, hop: Hop) -> str:
    line = f"{_MARK[hop.status]}{number:>3}  {hop.step.value:<12} {hop.name}"
    if hop.detail:
        line += f"  — {hop.detail}"
    if hop.origin:
        line += f"  [{hop.origin}]"
    return line


def render_text(trace: Trace, source: str = "") -> str:
    request = trace.request
    extra = "".join(f", {k}: {v}" for k, v in request.headers)
    if request.protocol is Protocol.TCP:
        lines = [trace.title]
    else:
        lines = [f"{trace.title} (Host: {request.authority}{extra})"]
    if source:
        lines.append(f"({source})")
    current = None
    for number, hop in enumerate(trace.hops, 1):
        where = hop.pod if hop.pod == "host" else f"{hop.pod} {hop.component.value}"
        if where != current:
            lines.append(f"{where}:")
            current = where
        lines.append(hop_line(number, hop))
        for candidate in hop.candidates:
            mark = "→" if candidate.chosen else " "
            lines.append(f"        {mark} {candidate.name}  {candidate.detail}".rstrip())
    lines.append("")
    lines.extend(outcome_lines(trace))
    lines.extend(f"note: {note}" for note in trace.notes)
    return "\n".join(lines) + "\n"


def outcome_lines(trace: Trace) -> list[str]:
    outcome = trace.outcome
    verdict = "OK" if outcome.ok else "FAILS"
    head = f"{verdict}: {outcome.summary}"
    if outcome.end is not End.DELIVERED and outcome.status_code is not None:
        flags = f" {outcome.response_flags}" if outcome.response_flags != "-" else ""
        head = f"{verdict}: {outcome.status_code}{flags} — {outcome.summary}"
    lines = [head]
    failed = trace.failed_hop
    if failed is not None:
        lines.append(f"first failure: {failed.step.value} {failed.name} at {failed.pod}")
    if outcome.fix:
        lines.append(f"fix: {outcome.fix}")
    for log in outcome.logs:
        if log.response_code is not None:
            code: object = log.response_code
        else:
            code = "from upstream" if log.upstream_cluster != "-" else "-"
        lines.append(
            f"access log {log.pod} {log.direction} {log.listener}: code {code} flags "
            f"{log.response_flags} upstream_cluster {log.upstream_cluster}"
            + ("" if log.logged else " (not written: this filter has no access log)")
        )
    return lines


def render_json(trace: Trace, source: str = "") -> str:
    data = trace.to_json()
    if source:
        data["config_source"] = source
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
