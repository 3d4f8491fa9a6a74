"""`ConfigObject`: one validated Kubernetes or Istio object with its identity and origin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pilotfish.config.diagnostics import Origin, ResourceRef
from pilotfish.config.yamltext import Document, Path


@dataclass(frozen=True, slots=True)
class ConfigObject:
    """A validated object. `spec` is the kind's strict model (for Istio kinds: of `spec`; for
    Kubernetes kinds: of the whole object without apiVersion/kind/metadata)."""

    group: str
    version: str
    kind: str
    name: str
    namespace: str
    spec: Any
    origin: Origin
    order: int
    """Position in the input (file order, then document order): Istio's "creation time" ordering."""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    namespace_given: bool = True
    document: Document | None = field(default=None, compare=False, repr=False)
    """The parsed YAML document, for field lines (`origin_of`) and analyzers that read raw fields."""

    def with_order(self, order: int) -> ConfigObject:
        """The same object at another input position (an earlier file gained or lost objects).
        Built directly: `dataclasses.replace` costs twice as much, for every object of every
        later file on each such load."""
        return ConfigObject(
            self.group,
            self.version,
            self.kind,
            self.name,
            self.namespace,
            self.spec,
            self.origin,
            order,
            self.labels,
            self.annotations,
            self.namespace_given,
            self.document,
        )

    def same_but_order(self, other: ConfigObject) -> bool:
        """Equal in everything but `order` (specs compared by identity first: a renumbered object
        shares its parsed spec)."""
        return (
            (self.spec is other.spec or self.spec == other.spec)
            and self.key == other.key
            and (self.group, self.version, self.origin, self.namespace_given)
            == (other.group, other.version, other.origin, other.namespace_given)
            and self.labels == other.labels
            and self.annotations == other.annotations
        )

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.kind, self.name, self.namespace)

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace, name): unique within a mesh."""
        return (self.kind, self.namespace, self.name)

    @property
    def raw(self) -> Any:
        return self.document.data if self.document is not None else None

    def origin_of(self, path: Path) -> Origin:
        """Where a field of this object was written (falls back to the object's own line)."""
        return self.document.origin_of(path) if self.document is not None else self.origin

    def config_path(self) -> str:
        """Istio's `istio.config` metadata value: `/apis/<group>/<version>/namespaces/<ns>/<kind>/<name>`."""
        kind = {"VirtualService": "virtual-service", "DestinationRule": "destination-rule"}.get(
            self.kind, self.kind.lower()
        )
        return f"/apis/{self.group}/{self.version}/namespaces/{self.namespace}/{kind}/{self.name}"
