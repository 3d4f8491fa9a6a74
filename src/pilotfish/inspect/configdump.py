"""Typed, tolerant access to an Envoy admin `/config_dump` (and `/clusters?format=json`) document.

A config dump is `{"configs": [ {"@type": ".../envoy.admin.v3.<Kind>ConfigDump", ...}, ... ]}`; which
sections are present depends on the Envoy build and on `?include_eds`, and each section omits empty lists.
Every accessor here therefore returns an empty result for a missing section instead of failing, and the
views decide what "nothing there" means (istioctl reports e.g. "no listeners found"). Keys are accepted in
both spellings, snake_case (what Envoy writes) and lowerCamel (what protobuf's JSON printer writes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

JsonObject = dict[str, Any]


class ConfigDumpError(ValueError):
    """The input is not a usable Envoy admin document, or lacks what a view needs."""


def get(obj: Mapping[str, Any] | None, snake: str, default: Any = None) -> Any:
    """`obj[snake]`, falling back to the lowerCamel spelling of the key."""
    if not isinstance(obj, Mapping):
        return default
    if snake in obj:
        return obj[snake]
    head, *rest = snake.split("_")
    camel = head + "".join(part[:1].upper() + part[1:] for part in rest)
    return obj.get(camel, default)


def get_list(obj: Mapping[str, Any] | None, snake: str) -> list[Any]:
    value = get(obj, snake)
    return value if isinstance(value, list) else []


def get_obj(obj: Mapping[str, Any] | None, snake: str) -> JsonObject:
    value = get(obj, snake)
    return value if isinstance(value, dict) else {}


def parse_json_document(text: str | bytes, what: str) -> JsonObject:
    """Parse admin API output; an empty or non-JSON body becomes a ConfigDumpError naming `what`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not text.strip():
        raise ConfigDumpError(f"{what} is empty")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigDumpError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(value, dict):
        raise ConfigDumpError(f"{what} is not a JSON object")
    return value


def go_atoi(text: str) -> int | None:
    """Go's strconv.Atoi: an optional sign and ASCII digits, nothing else (None when it fails)."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    return int(text)


ListenerState = Literal["active", "warming", "error"]


@dataclass(frozen=True)
class ListenerEntry:
    """One listener of the dump with where it came from; `listener` is the Listener JSON."""

    listener: JsonObject
    state: ListenerState
    static: bool


@dataclass(frozen=True)
class ConfigDump:
    """An Envoy `/config_dump` response (optionally with `?include_eds`)."""

    raw: JsonObject

    @staticmethod
    def from_json(value: object, what: str = "config dump") -> ConfigDump:
        if not isinstance(value, dict) or not isinstance(value.get("configs"), list):
            raise ConfigDumpError(f'{what} has no "configs" list; is it the output of Envoy\'s /config_dump?')
        return ConfigDump(value)

    @staticmethod
    def from_text(text: str | bytes, what: str = "config dump") -> ConfigDump:
        return ConfigDump.from_json(parse_json_document(text, what), what)

    def sections(self, kind: str) -> Iterator[JsonObject]:
        """The `configs[]` entries whose @type names `<kind>` (e.g. "ListenersConfigDump"), any version."""
        for section in self.raw.get("configs", []):
            if isinstance(section, dict) and str(section.get("@type", "")).rpartition(".")[2] == kind:
                yield section

    def section(self, kind: str) -> JsonObject | None:
        return next(self.sections(kind), None)

    # ---------------------------------------------------------------- bootstrap

    def bootstrap(self) -> JsonObject:
        """The BootstrapConfigDump section; istioctl's bootstrap views fail without one."""
        section = self.section("BootstrapConfigDump")
        if section is None:
            raise ConfigDumpError("config dump has no bootstrap (BootstrapConfigDump) section")
        return section

    # ---------------------------------------------------------------- listeners

    def listener_entries(self) -> list[ListenerEntry]:
        """Dynamic listeners (active, warming, error states) then static ones, in dump order."""
        entries: list[ListenerEntry] = []
        for section in self.sections("ListenersConfigDump"):
            for dynamic in get_list(section, "dynamic_listeners"):
                for state, key in (("active", "active_state"), ("warming", "warming_state")):
                    listener = get_obj(get_obj(dynamic, key), "listener")
                    if listener:
                        entries.append(ListenerEntry(listener, state, static=False))  # type: ignore[arg-type]
                failed = get_obj(get_obj(dynamic, "error_state"), "failed_configuration")
                if failed:
                    entries.append(ListenerEntry(failed, "error", static=False))
            # Envoy v2 (Istio 1.3 era) dumps: dynamic_active_listeners / dynamic_warming_listeners
            for key, state in (
                ("dynamic_active_listeners", "active"),
                ("dynamic_warming_listeners", "warming"),
            ):
                for item in get_list(section, key):
                    listener = get_obj(item, "listener")
                    if listener:
                        entries.append(ListenerEntry(listener, state, static=False))  # type: ignore[arg-type]
            for item in get_list(section, "static_listeners"):
                listener = get_obj(item, "listener")
                if listener:
                    entries.append(ListenerEntry(listener, "active", static=True))
        return entries

    def listeners(self) -> list[JsonObject]:
        """What istioctl lists: dynamic active listeners, then static listeners."""
        entries = self.listener_entries()
        dynamic = [e.listener for e in entries if e.state == "active" and not e.static]
        static = [e.listener for e in entries if e.static]
        return dynamic + static

    # ---------------------------------------------------------------- clusters

    def clusters(self) -> list[JsonObject]:
        """Dynamic active clusters, then static clusters (istioctl's order before sorting)."""
        dynamic: list[JsonObject] = []
        static: list[JsonObject] = []
        for section in self.sections("ClustersConfigDump"):
            dynamic += [
                c for c in (get_obj(i, "cluster") for i in get_list(section, "dynamic_active_clusters")) if c
            ]
            static += [c for c in (get_obj(i, "cluster") for i in get_list(section, "static_clusters")) if c]
        return dynamic + static

    def warming_clusters(self) -> list[JsonObject]:
        out: list[JsonObject] = []
        for section in self.sections("ClustersConfigDump"):
            out += [
                c for c in (get_obj(i, "cluster") for i in get_list(section, "dynamic_warming_clusters")) if c
            ]
        return out

    # ---------------------------------------------------------------- routes

    def route_configs(self) -> list[JsonObject]:
        """Dynamic (RDS) route configurations, then static ones."""
        dynamic: list[JsonObject] = []
        static: list[JsonObject] = []
        for section in self.sections("RoutesConfigDump"):
            dynamic += [
                r
                for r in (get_obj(i, "route_config") for i in get_list(section, "dynamic_route_configs"))
                if r
            ]
            static += [
                r
                for r in (get_obj(i, "route_config") for i in get_list(section, "static_route_configs"))
                if r
            ]
        return dynamic + static

    # ---------------------------------------------------------------- endpoints (EDS, ?include_eds)

    def has_endpoints(self) -> bool:
        return self.section("EndpointsConfigDump") is not None

    def endpoint_configs(self) -> list[JsonObject]:
        """ClusterLoadAssignments: dynamic, then static (the order modern istioctl reads them in)."""
        dynamic: list[JsonObject] = []
        static: list[JsonObject] = []
        for section in self.sections("EndpointsConfigDump"):
            dynamic += [
                e
                for e in (
                    get_obj(i, "endpoint_config") for i in get_list(section, "dynamic_endpoint_configs")
                )
                if e
            ]
            static += [
                e
                for e in (get_obj(i, "endpoint_config") for i in get_list(section, "static_endpoint_configs"))
                if e
            ]
        return dynamic + static

    # ---------------------------------------------------------------- secrets, ECDS

    def has_secrets(self) -> bool:
        return self.section("SecretsConfigDump") is not None

    def secrets(self) -> tuple[list[JsonObject], list[JsonObject]]:
        """(dynamic warming secrets, dynamic active secrets) — the DynamicSecret wrappers."""
        warming: list[JsonObject] = []
        active: list[JsonObject] = []
        for section in self.sections("SecretsConfigDump"):
            warming += [s for s in get_list(section, "dynamic_warming_secrets") if isinstance(s, dict)]
            active += [s for s in get_list(section, "dynamic_active_secrets") if isinstance(s, dict)]
        return warming, active

    def secrets_section(self) -> JsonObject:
        section = self.section("SecretsConfigDump")
        if section is None:
            raise ConfigDumpError("config dump has no secrets (SecretsConfigDump) section")
        return section

    def ecds_section(self) -> JsonObject:
        """The EcdsConfigDump section (merged when Envoy writes one per filter category)."""
        sections = list(self.sections("EcdsConfigDump"))
        if not sections:
            raise ConfigDumpError("config dump has no extension config (EcdsConfigDump) section")
        if len(sections) == 1:
            return sections[0]
        filters = [f for s in sections for f in get_list(s, "ecds_filters")]
        return {"@type": sections[0].get("@type"), "ecds_filters": filters}


@dataclass(frozen=True)
class ClustersStatus:
    """Envoy's `/clusters?format=json` (`envoy.admin.v3.Clusters`): live hosts and their health."""

    raw: JsonObject

    @staticmethod
    def from_json(value: object, what: str = "clusters document") -> ClustersStatus:
        if not isinstance(value, dict) or not isinstance(get(value, "cluster_statuses", []), list):
            raise ConfigDumpError(f"{what} is not the output of Envoy's /clusters?format=json")
        return ClustersStatus(value)

    @staticmethod
    def from_text(text: str | bytes, what: str = "clusters document") -> ClustersStatus:
        return ClustersStatus.from_json(parse_json_document(text, what), what)

    def cluster_statuses(self) -> list[JsonObject]:
        return [c for c in get_list(self.raw, "cluster_statuses") if isinstance(c, dict)]


def clusters_status_from_eds(dump: ConfigDump) -> ClustersStatus:
    """Approximate `/clusters?format=json` from a dump taken with `?include_eds`.

    A saved config dump is all a user may have; its EndpointsConfigDump lists every cluster's endpoints
    with their EDS health, which is what the endpoint table shows. Outlier-detection state is not in a
    config dump, so every host reads "OK" there.
    """
    statuses: list[JsonObject] = []
    for cla in dump.endpoint_configs():
        hosts: list[JsonObject] = []
        for locality_group in get_list(cla, "endpoints"):
            for lb_endpoint in get_list(locality_group, "lb_endpoints"):
                address = get_obj(get_obj(lb_endpoint, "endpoint"), "address")
                health = get(lb_endpoint, "health_status")
                host: JsonObject = {"address": address}
                if isinstance(health, str) and health != "UNKNOWN":
                    host["health_status"] = {"eds_health_status": health}
                hosts.append(host)
        status: JsonObject = {"name": get(cla, "cluster_name", "")}
        if hosts:
            status["host_statuses"] = hosts
        statuses.append(status)
    return ClustersStatus({"cluster_statuses": statuses})
