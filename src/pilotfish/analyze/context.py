"""What analyzers read: every input object (valid or not), the mesh config, and the mesh when it builds.

Istio's analyzers run on whatever the user wrote, including objects a webhook would reject; pilotfish's
strict loader rejects more (fields it does not implement yet, sloppy test manifests). So the context
keeps every document with its identity and raw data (`Resource`), plus the validated model when there
is one, and `Inventory` reads hosts and pods leniently from the raw data. The `Mesh` built from the
valid objects is kept for analyzers (and later sources, e.g. the live mesh) that want the model.

Pure: built from parsed documents; reading files is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from pilotfish.analyze.inventory import Inventory, build_inventory
from pilotfish.analyze.resource import ISTIO, Resource, resolved_namespace
from pilotfish.config.diagnostics import Diagnostic
from pilotfish.config.meshconfig import DEFAULT_MESH_CONFIG, MeshConfig
from pilotfish.config.parse import ParsedDocument, parse_documents, parse_mesh_config
from pilotfish.config.yamltext import parse_yaml
from pilotfish.model.build import build_mesh
from pilotfish.model.mesh import Mesh
from pilotfish.model.names import ISTIO_SYSTEM_NAMESPACE


@dataclass(frozen=True, eq=False)
class AnalysisContext:
    """Everything one analysis run reads. Build it with `build_context` or `context_from_texts`."""

    resources: tuple[Resource, ...]
    input_diagnostics: tuple[Diagnostic, ...] = ()
    """Problems that belong to no single object's schema: YAML syntax, mesh building (duplicates...)."""
    mesh_config: MeshConfig = DEFAULT_MESH_CONFIG
    mesh: Mesh | None = None
    """The mesh built from the valid objects (None when they contradict each other)."""
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    """The time certificates are checked against (a parameter: analysis stays a pure function)."""

    @cached_property
    def _by_kind(self) -> dict[tuple[str, str], tuple[Resource, ...]]:
        index: dict[tuple[str, str], list[Resource]] = {}
        for resource in self.resources:
            index.setdefault((resource.group, resource.kind), []).append(resource)
        return {key: tuple(value) for key, value in index.items()}

    @cached_property
    def inventory(self) -> Inventory:
        """Hosts and pods, read leniently from every input object (see `inventory`)."""
        return build_inventory(self.resources, self.domain_suffix)

    @property
    def istio_namespace(self) -> str:
        return ISTIO_SYSTEM_NAMESPACE

    @property
    def domain_suffix(self) -> str:
        return self.mesh_config.domain_suffix

    def of_kind(self, kind: str, group: str = ISTIO) -> tuple[Resource, ...]:
        """Resources of one kind in input order (`group` defaults to Istio networking)."""
        return self._by_kind.get((group, kind), ())

    def find(self, kind: str, namespace: str, name: str, group: str = ISTIO) -> Resource | None:
        return next(
            (r for r in self.of_kind(kind, group) if r.namespace == namespace and r.name == name), None
        )


def build_context(
    documents: Sequence[ParsedDocument],
    input_diagnostics: Iterable[Diagnostic] = (),
    mesh_config: MeshConfig | None = None,
    now: datetime | None = None,
) -> AnalysisContext:
    """The context for parsed documents. `mesh_config` overrides the one the inputs define."""
    resources = tuple(Resource(d, resolved_namespace(d)) for d in documents if d.kind)
    not_objects = [problem for d in documents if not d.kind for problem in d.diagnostics]
    mesh, build_problems = build_mesh([d.obj for d in documents if d.obj is not None])
    config = mesh_config or (mesh.mesh_config if mesh is not None else DEFAULT_MESH_CONFIG)
    return AnalysisContext(
        resources=resources,
        input_diagnostics=(*input_diagnostics, *not_objects, *build_problems),
        mesh_config=config,
        mesh=mesh,
        now=now or datetime.now(UTC),
    )


def context_from_texts(
    texts: Sequence[tuple[str, str]],
    mesh_config_text: tuple[str, str] | None = None,
    now: datetime | None = None,
    read_problems: Iterable[Diagnostic] = (),
) -> AnalysisContext:
    """Parse `(file name, text)` manifests (and an optional mesh config file) into a context.
    `read_problems` are the reader's (files that could not be read), reported with the rest."""
    documents, problems = parse_documents(texts)
    problems[:0] = read_problems
    mesh_config = None
    if mesh_config_text is not None:
        mesh_config, more = parse_mesh_config_text(*mesh_config_text)
        problems.extend(more)
    return build_context(documents, problems, mesh_config, now)


def parse_mesh_config_text(file: str, text: str) -> tuple[MeshConfig | None, list[Diagnostic]]:
    """A MeshConfig file (the `mesh` key of Istio's ConfigMap, as `istioctl analyze --meshConfigFile`
    reads it). On errors: None and the diagnostics (the caller falls back to the defaults)."""
    documents, problems = parse_yaml(text, file)
    if problems or not documents:
        return None, problems
    return parse_mesh_config(documents[0])


def selector_text(selector: Mapping[str, str]) -> str:
    """How Kubernetes prints a label selector (`app=reviews,version=v1`, keys sorted)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
