"""`proxy-status` rendering: the sync table from `/debug/syncz`, and the server-vs-Envoy config diff.

Pure: takes decoded JSON, returns text. Two table profiles (istio-reference.md §11.3):

* `1.3`: `NAME CDS LDS EDS RDS PILOT VERSION`; per type by nonces: `NOT SENT` (nothing sent),
  `SYNCED` (acked == sent), `STALE (Never Acknowledged)` (nothing acked), else `STALE`. Istio 1.3 had
  no NACK column; a NACK of the latest response prints `NACK` so rejected config is not hidden.
* `modern` (istioctl 1.20-1.26): `NAME CLUSTER CDS LDS EDS RDS ECDS ISTIOD VERSION` with CSDS config
  statuses `SYNCED`, `STALE`, `ERROR` (NACK), `NOT SENT`, and `IGNORED` for types the proxy never
  subscribed to (ECDS is always IGNORED here: we serve no extension configs).

Both are Go `text/tabwriter` tables with padding 5. VERSION is the proxy's Istio version from its node
metadata, else its Envoy version followed by `*` (istioctl's fallback).

The diff follows istioctl: dynamic clusters, listeners and routes of both dumps, versions and
timestamps stripped, sorted by name, printed as indented JSON; `Clusters Match` or a unified diff
`--- Pilot Clusters` / `+++ Envoy Clusters` with 7 lines of context; routes add
`(RDS last loaded at <RFC 1123 time>)` and a `Routes Don't Match` headline before their diff.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pilotfish.inspect.profile import Profile
from pilotfish.inspect.tabwriter import tabulate

TYPES = ("CDS", "LDS", "EDS", "RDS")
_FLAT = {"CDS": "cluster", "LDS": "listener", "EDS": "endpoint", "RDS": "route"}


def nonce_status(sent: str, acked: str) -> str:
    """istioctl 1.3's rule, from nonces alone."""
    if not sent:
        return "NOT SENT"
    if sent == acked:
        return "SYNCED"
    if not acked:
        return "STALE (Never Acknowledged)"
    return "STALE"


def type_status(entry: Mapping[str, Any], short: str, profile: Profile) -> str:
    detail = entry.get("types", {}).get(short)
    status = str(detail.get("status", "")) if isinstance(detail, Mapping) else ""
    if profile == "modern":
        if detail is None:
            return "IGNORED"
        return {"NACK": "ERROR"}.get(status, status or "NOT SENT")
    if status == "NACK":
        return "NACK"
    key = _FLAT[short]
    return nonce_status(str(entry.get(f"{key}_sent", "")), str(entry.get(f"{key}_acked", "")))


def proxy_version(entry: Mapping[str, Any]) -> str:
    istio = str(entry.get("istio_version", ""))
    return istio or f"{entry.get('proxy_version', '')}*"


def status_table(entries: Sequence[Mapping[str, Any]], profile: Profile = "1.3") -> str:
    """The proxy-status table, rows sorted by proxy id like istioctl."""
    rows: list[list[str]]
    ordered = sorted(entries, key=lambda e: str(e.get("proxy", "")))
    if profile == "modern":
        rows = [["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"]]
        for e in ordered:
            statuses = [type_status(e, t, profile) for t in TYPES]
            rows.append(
                [
                    str(e.get("proxy", "")),
                    str(e.get("cluster_id", "Kubernetes")),
                    *statuses,
                    "IGNORED",
                    str(e.get("istiod", "")),
                    proxy_version(e),
                ]
            )
    else:
        rows = [["NAME", "CDS", "LDS", "EDS", "RDS", "PILOT", "VERSION"]]
        for e in ordered:
            statuses = [type_status(e, t, profile) for t in TYPES]
            rows.append([str(e.get("proxy", "")), *statuses, str(e.get("istiod", "")), proxy_version(e)])
    return tabulate(rows, padding=5)


def matching(entries: Sequence[Mapping[str, Any]], pod: str) -> list[Mapping[str, Any]]:
    """istioctl selects by substring of the proxy id (`reviews-v1` matches `reviews-v1-abc.default`)."""
    return [e for e in entries if pod in str(e.get("proxy", ""))]


def nack_lines(entry: Mapping[str, Any]) -> list[str]:
    """One line per type whose latest response was rejected, with Envoy's message."""
    lines = []
    for short, detail in entry.get("types", {}).items():
        nack = detail.get("last_nack") if isinstance(detail, Mapping) else None
        if isinstance(nack, Mapping) and detail.get("status") == "NACK":
            message = " ".join(str(nack.get("message", "")).split())
            lines.append(
                f"{short} NACK (version {nack.get('version', '')}, nonce {nack.get('nonce', '')},"
                f" at {nack.get('time', '')}): {message}"
            )
    return lines


# --- config diff --------------------------------------------------------------------------------------


def _configs(dump: Mapping[str, Any], type_name: str) -> Mapping[str, Any]:
    """The config-dump section of one type (by exact message name: not `ScopedRoutesConfigDump`)."""
    for config in dump.get("configs", []):
        if isinstance(config, Mapping) and str(config.get("@type", "")).rsplit(".", 1)[-1] == type_name:
            return config
    return {}


def _get(item: Mapping[str, Any], snake: str) -> Any:
    """Field by its proto name, accepting the camelCase JSON name too (istioctl's dumps use it)."""
    if snake in item:
        return item[snake]
    head, *rest = snake.split("_")
    return item.get(head + "".join(p.title() for p in rest))


def dynamic_clusters(dump: Mapping[str, Any]) -> list[Any]:
    items = _get(_configs(dump, "ClustersConfigDump"), "dynamic_active_clusters") or []
    clusters = [_get(i, "cluster") for i in items]
    return sorted((c for c in clusters if c), key=lambda c: str(c.get("name", "")))


def dynamic_listeners(dump: Mapping[str, Any]) -> list[Any]:
    items = _get(_configs(dump, "ListenersConfigDump"), "dynamic_listeners") or []
    listeners = [_get(_get(i, "active_state") or {}, "listener") for i in items]
    return sorted((x for x in listeners if x), key=lambda x: str(x.get("name", "")))


def dynamic_routes(dump: Mapping[str, Any]) -> list[Any]:
    items = _get(_configs(dump, "RoutesConfigDump"), "dynamic_route_configs") or []
    routes = [_get(i, "route_config") for i in items]
    return sorted((r for r in routes if r), key=lambda r: str(r.get("name", "")))


def routes_last_updated(dump: Mapping[str, Any]) -> dt.datetime | None:
    items = _get(_configs(dump, "RoutesConfigDump"), "dynamic_route_configs") or []
    stamps = [str(_get(i, "last_updated") or "") for i in items]
    parsed = [dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps if s]
    return max(parsed) if parsed else None


def rfc1123(when: dt.datetime) -> str:
    """Go's `time.RFC1123` (`Mon, 02 Jan 2006 15:04:05 MST`) in local time."""
    local = when.astimezone()
    return local.strftime("%a, %d %b %Y %H:%M:%S ") + (local.tzname() or "UTC")


def _text(items: list[Any]) -> list[str]:
    return json.dumps(items, indent=3, sort_keys=True).splitlines()


def _one_diff(title: str, pilot: list[Any], envoy: list[Any], suffix: str = "") -> str:
    diff = list(
        difflib.unified_diff(
            _text(pilot), _text(envoy), fromfile=f"Pilot {title}", tofile=f"Envoy {title}", n=7, lineterm=""
        )
    )
    if not diff:
        return f"{title} Match{suffix}\n"
    # istioctl prints a headline for routes only; clusters and listeners show just the diff.
    headline = f"{title} Don't Match{suffix}\n" if title == "Routes" else ""
    return headline + "\n".join(diff) + "\n"


Extractor = Callable[[Mapping[str, Any]], list[Any]]
_SECTIONS: tuple[tuple[str, Extractor], ...] = (
    ("Clusters", dynamic_clusters),
    ("Listeners", dynamic_listeners),
    ("Routes", dynamic_routes),
)


def config_diff(pilot_dump: Mapping[str, Any], envoy_dump: Mapping[str, Any]) -> tuple[str, bool]:
    """The per-type comparison text, and whether everything matched."""
    out = []
    all_match = True
    for title, extract in _SECTIONS:
        suffix = ""
        if title == "Routes":
            loaded = routes_last_updated(envoy_dump)
            suffix = f" (RDS last loaded at {rfc1123(loaded)})" if loaded else ""
        pilot, envoy = extract(pilot_dump), extract(envoy_dump)
        all_match = all_match and pilot == envoy
        out.append(_one_diff(title, pilot, envoy, suffix))
    return "".join(out), all_match
