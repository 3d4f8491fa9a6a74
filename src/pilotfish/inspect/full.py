"""Modern `proxy-config all`: every summary of one proxy, each row named `<kind>/<name>`.

Sections come in istioctl's order (bootstrap, clusters, listeners, routes, secrets, endpoints from EDS),
separated by a blank line; `--with-headers` puts a `------ <KIND> INFO ------` title above each. istioctl
1.3 had no `all`, so this view always uses the modern formats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pilotfish.inspect import bootstrap, clusters, endpoints, listeners, routes, secrets
from pilotfish.inspect.clusters import ClusterFilter
from pilotfish.inspect.configdump import ConfigDump
from pilotfish.inspect.endpoints import EndpointFilter
from pilotfish.inspect.listeners import ListenerFilter
from pilotfish.inspect.routes import RouteFilter


@dataclass(frozen=True)
class AllFilters:
    cluster: ClusterFilter = field(default_factory=ClusterFilter)
    listener: ListenerFilter = field(default_factory=ListenerFilter)
    route: RouteFilter = field(default_factory=RouteFilter)
    endpoint: EndpointFilter = field(default_factory=EndpointFilter)


def summary(dump: ConfigDump, filters: AllFilters, now: datetime, *, with_headers: bool = False) -> str:
    sections: list[tuple[str, Callable[[], str]]] = [
        ("BOOTSTRAP", lambda: bootstrap.summary(dump)),
        ("CLUSTER", lambda: clusters.summary(dump, filters.cluster, "modern", name_column=True)),
        ("LISTENER", lambda: listeners.summary(dump, filters.listener, "modern", name_column=True)),
        ("ROUTE", lambda: routes.summary(dump, filters.route, "modern", name_column=True)),
        ("SECRET", lambda: secrets.summary(dump, now, name_column=True)),
        ("ENDPOINTS", lambda: endpoints.eds_summary(dump, filters.endpoint, name_column=True)),
    ]
    parts = []
    for title, render in sections:
        text = render()
        parts.append(f"------ {title} INFO ------\n\n{text}" if with_headers else text)
    return "\n".join(parts)
