"""Trace -> Graphviz `dot` text: the request's path as a picture, like the seed's traffic-flow figure.

One box per pod (the host for ingress requests); inside it the app, its iptables and its Envoy,
the Envoy drawn as a table with one row per hop (listener, filter chain, route configuration,
virtual host, route, cluster, endpoints). Edges carry what travels between them (the address, the
REDIRECT port, the cluster and endpoint chosen). The first failure is red, and the outcome is the
last node. Every hop's name appears verbatim, so the picture can be checked against the trace.
Pure: the CLI runs `dot -Tsvg` on the result.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from html import escape

from pilotfish.simulate.result import Component, Hop, Status, Step, Trace

_FONT = "Helvetica"
_RED = "#c0392b"
_RED_FILL = "#fadbd8"
_GREY = "#7f8c8d"
_FILLS = {
    Component.SIDECAR: "#d6eaf8",
    Component.GATEWAY: "#e8daef",
    Component.IPTABLES: "#fcf3cf",
    Component.APP: "#ffffff",
    Component.HOST: "#ffffff",
    Component.NETWORK: "#ffffff",
}
_TITLES = {
    Component.SIDECAR: "Envoy sidecar",
    Component.GATEWAY: "Envoy gateway",
    Component.IPTABLES: "iptables",
    Component.APP: "app",
    Component.HOST: "client",
    Component.NETWORK: "network",
}
_STEP_LABELS = {
    Step.CLIENT: "request",
    Step.DNS: "DNS",
    Step.FILTER_CHAIN: "filter chain",
    Step.NETWORK_FILTER: "network filter",
    Step.ROUTE_CONFIG: "route config",
    Step.VIRTUAL_HOST: "virtual host",
    Step.WEIGHTED: "weighted",
    Step.IPTABLES: "decision",
}


@dataclass
class _Box:
    """Consecutive hops in one part of one pod: drawn as one node."""

    key: str
    pod: str
    component: Component
    hops: list[Hop] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(h.status is Status.FAIL for h in self.hops)


def _group(pod: str, component: Component) -> Component:
    return Component.HOST if pod == "host" else component


def _boxes(trace: Trace) -> list[_Box]:
    boxes: list[_Box] = []
    for hop in trace.hops:
        group = _group(hop.pod, hop.component)
        last = boxes[-1] if boxes else None
        if last is None or last.pod != hop.pod or last.component != group:
            last = _Box(f"n{len(boxes)}", hop.pod, group)
            boxes.append(last)
        last.hops.append(hop)
    return boxes


def _cell(text: str, *, bold: bool = False, color: str = "", fill: str = "") -> str:
    body = escape(text)
    if bold:
        body = f"<B>{body}</B>"
    if color:
        body = f'<FONT COLOR="{color}">{body}</FONT>'
    background = f' BGCOLOR="{fill}"' if fill else ""
    return f'<TD ALIGN="LEFT"{background}>{body}</TD>'


def _row(hop: Hop) -> list[str]:
    label = _STEP_LABELS.get(hop.step, hop.step.value)
    failed = hop.status is Status.FAIL
    fill = _RED_FILL if failed else ""
    rows = [
        f"<TR>{_cell(label, color=_GREY, fill=fill)}"
        f"{_cell(hop.name, bold=failed, color=_RED if failed else '', fill=fill)}</TR>"
    ]
    rows += [f"<TR><TD></TD>{_cell(line, color=_RED if failed else _GREY)}</TR>" for line in _extra(hop)]
    for candidate in hop.candidates:
        mark = "→ " if candidate.chosen else "   "
        rows.append(
            f"<TR><TD></TD>{_cell(mark + candidate.name + '  ' + candidate.detail, color=_GREY)}</TR>"
        )
    return rows


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _extra(hop: Hop) -> list[str]:
    """The short second line(s): the why of a failure, else the hop's brief."""
    if hop.status is Status.FAIL or hop.step is Step.FAULT:
        return [_short(line) for line in _wrap(hop.detail, 80)[:3]]
    return [_short(hop.brief)] if hop.brief else []


def _node(box: _Box) -> str:
    title = _TITLES[box.component]
    fill = _FILLS[box.component]
    border = _RED if box.failed else "#34495e"
    head = f'<TR><TD COLSPAN="2" ALIGN="CENTER">{escape(title)}</TD></TR>'
    rows = [row for hop in box.hops for row in _row(hop)]
    table = (
        f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="2">{head}'
        + "".join(rows)
        + "</TABLE>"
    )
    return (
        f'  {box.key} [shape=box, style="rounded,filled", fillcolor="{fill}", color="{border}", '
        f"label=<{table}>];"
    )


def _edge_label(box: _Box) -> str:
    """What leaves a box: the address the connection goes to next."""
    targets = [h.to for h in box.hops if h.to]
    return targets[-1] if targets else ""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(trace: Trace) -> str:
    boxes = _boxes(trace)
    title = trace.title
    lines = [
        "digraph trace {",
        f"  graph [rankdir=TB, fontname={_quote(_FONT)}, fontsize=12, labelloc=t, label={_quote(title)}, "
        "nodesep=0.3, ranksep=0.45];",
        f"  node [fontname={_quote(_FONT)}, fontsize=10];",
        f"  edge [fontname={_quote(_FONT)}, fontsize=9];",
    ]
    pods: dict[str, list[_Box]] = {}
    for box in boxes:
        pods.setdefault(box.pod, []).append(box)
    for index, (pod, members) in enumerate(pods.items()):
        label = "the host (outside the mesh)" if pod == "host" else f"pod {pod}"
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f'    label={_quote(label)}; style="rounded"; color="#95a5a6"; fontsize=11;')
        lines.extend("  " + _node(box) for box in members)
        lines.append("  }")
    for before, after in itertools.pairwise(boxes):
        lines.append(f"  {before.key} -> {after.key} [label={_quote(_edge_label(before))}];")
    lines.append(_outcome_node(trace, boxes[-1].key if boxes else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _outcome_node(trace: Trace, last: str) -> str:
    outcome = trace.outcome
    if outcome.ok:
        color, fill = "#1e8449", "#d5f5e3"
    else:
        color, fill = _RED, _RED_FILL
    head = outcome.summary
    if outcome.status_code is not None:
        flags = f" {outcome.response_flags}" if outcome.response_flags != "-" else ""
        head = f"{outcome.status_code}{flags}: {head}"
    rows = [f'<TR><TD ALIGN="LEFT"><B>{escape(head)}</B></TD></TR>']
    if outcome.fix:
        text = '<BR ALIGN="LEFT"/>'.join(escape(line) for line in _wrap("fix: " + outcome.fix))
        rows.append(f'<TR><TD ALIGN="LEFT">{text}<BR ALIGN="LEFT"/></TD></TR>')
    table = '<TABLE BORDER="0" CELLBORDER="0">' + "".join(rows) + "</TABLE>"
    node = (
        f'  outcome [shape=box, style="rounded,filled", color="{color}", fillcolor="{fill}", '
        f"label=<{table}>];"
    )
    if not last:
        return node
    edge_color = "#1e8449" if outcome.ok else _RED
    return f"{node}\n  {last} -> outcome [color={_quote(edge_color)}];"


def _wrap(text: str, width: int = 70) -> list[str]:
    """Break a long fix into lines of at most about `width` characters."""
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines
