"""One input object as the analyzers see it: identity, raw data, field lines, the model if valid.

Analyzers read the raw YAML (`Resource.at`, and the tolerant `mapping`/`items`/`text` readers) rather
than the strict models, because they must also see objects the strict loader rejected; reading by
path also gives each finding the exact line of the field it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilotfish.config.diagnostics import Origin, ResourceRef
from pilotfish.config.kinds import BY_GROUP_KIND, ISTIO_NETWORKING
from pilotfish.config.objects import ConfigObject
from pilotfish.config.parse import ParsedDocument
from pilotfish.config.yamltext import Path

CORE = ""
APPS = "apps"
SECURITY = "security.istio.io"
K8S_GATEWAY = "gateway.networking.k8s.io"
ISTIO = ISTIO_NETWORKING

DEFAULT_NAMESPACE = "default"
_CLUSTER_SCOPED = frozenset(
    {
        (CORE, "Namespace"),
        (CORE, "Node"),
        (CORE, "PersistentVolume"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        (K8S_GATEWAY, "GatewayClass"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("pilotfish.io", "MeshConfig"),
    }
)


def _is_namespaced(group: str, kind: str) -> bool:
    info = BY_GROUP_KIND.get((group, kind))
    if info is not None:
        return info.namespaced
    return (group, kind) not in _CLUSTER_SCOPED


def mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a mapping, else `{}` (analyzers read raw YAML that may be malformed)."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    """`value` if it is a list, else `[]`."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    """`value` if it is a string, else `""`."""
    return value if isinstance(value, str) else ""


def strings(value: Any) -> list[str]:
    """The string elements of a list (others skipped)."""
    return [v for v in items(value) if isinstance(v, str)]


def labels(value: Any) -> dict[str, str]:
    """A label map: string keys, values as strings (YAML may give `version: 1`)."""
    return {str(k): "" if v is None else str(v) for k, v in mapping(value).items()}


@dataclass(frozen=True, slots=True, eq=False)
class Resource:
    """One input object as the user wrote it, with where it came from."""

    parsed: ParsedDocument
    namespace: str
    """As written; `default` for namespaced kinds written without one; `""` for cluster-scoped kinds."""

    @property
    def kind(self) -> str:
        return self.parsed.kind

    @property
    def group(self) -> str:
        return self.parsed.group

    @property
    def name(self) -> str:
        return self.parsed.name

    @property
    def namespace_given(self) -> bool:
        return bool(self.parsed.namespace)

    @property
    def obj(self) -> ConfigObject | None:
        """The validated object, when the strict loader accepted it."""
        return self.parsed.obj

    @property
    def data(self) -> dict[str, Any]:
        return mapping(self.parsed.document.data)

    @property
    def spec(self) -> dict[str, Any]:
        return mapping(self.data.get("spec"))

    @property
    def metadata(self) -> dict[str, Any]:
        return mapping(self.data.get("metadata"))

    @property
    def labels(self) -> dict[str, str]:
        return labels(self.metadata.get("labels"))

    @property
    def annotations(self) -> dict[str, str]:
        return labels(self.metadata.get("annotations"))

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.kind, self.name, self.namespace)

    @property
    def full_name(self) -> str:
        """`namespace/name` (Istio's `FullName` string)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def origin(self) -> Origin:
        return self.parsed.document.origin

    def origin_of(self, path: Path) -> Origin:
        """The line of a field (of its deepest written parent when the field itself is absent)."""
        return self.parsed.document.origin_of(path)

    def at(self, *path: str | int) -> Any:
        """The raw value at `path`, or None when any step is missing."""
        node: Any = self.data
        for step in path:
            if isinstance(step, int):
                node = node[step] if isinstance(node, list) and 0 <= step < len(node) else None
            else:
                node = node.get(step) if isinstance(node, dict) else None
            if node is None:
                return None
        return node


def resolved_namespace(document: ParsedDocument) -> str:
    """Where Kubernetes would put the object: as written, else `default`; `""` when cluster-scoped."""
    if not _is_namespaced(document.group, document.kind):
        return ""
    return document.namespace or DEFAULT_NAMESPACE
