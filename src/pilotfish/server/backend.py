"""The three operations the discovery server needs from the config -> model -> xds pipeline.

The server depends on this small interface instead of importing the pipeline directly, so its tests
can run against a fake that builds Envoy protos by hand, and so the IO shell (files, gRPC, HTTP) stays
separate from the pure core. `PipelineBackend` adapts `pilotfish.pipeline` (the real thing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pilotfish.model.proxy import Proxy
from pilotfish.xds.resources import ProxyResources


@runtime_checkable
class MeshLike(Protocol):
    """An immutable mesh snapshot; equal versions mean equal content."""

    @property
    def version(self) -> str: ...


class DiagnosticLike(Protocol):
    """One input problem. `str(d)` is one line, `file:line: Kind ns/name: message` when known."""

    @property
    def level(self) -> str: ...


class Backend(Protocol):
    def load_mesh(self, paths: Sequence[Path]) -> tuple[MeshLike | None, list[Any]]:
        """Parse and build a mesh. None (with error diagnostics) means: keep the last good one."""
        ...

    def resolve_proxy(self, mesh: MeshLike, node_id: str, metadata: Mapping[str, Any]) -> Proxy:
        """The proxy behind a node id; `known=False` for an unknown pod; ValueError when malformed."""
        ...

    def generate(self, mesh: MeshLike, proxy: Proxy) -> ProxyResources:
        """Everything this proxy should have (pure; cached per mesh by the implementation)."""
        ...


class PipelineBackend:
    """`pilotfish.pipeline` behind the `Backend` interface (imported lazily: it is heavy).

    Loads go through one `MeshLoader`: unchanged files are not parsed again, and a change that only
    touches workloads or routing builds on the last snapshot and keeps what was generated for it
    that the change cannot affect (so a rollout pushes endpoints, not everything, and costs little).
    """

    def __init__(self) -> None:
        import importlib

        self._pipeline: Any = importlib.import_module("pilotfish.pipeline")
        self._loader: Any = self._pipeline.MeshLoader()

    def load_mesh(self, paths: Sequence[Path]) -> tuple[MeshLike | None, list[Any]]:
        mesh, diagnostics = self._loader.load(paths)
        return mesh, list(diagnostics)

    @property
    def last_update(self) -> str:
        """How the last load was built, for the server's log: `endpoints`, `routing`, both, or `full`."""
        groups: frozenset[str] = self._loader.incremental
        return "+".join(sorted(groups)) or "full"

    def resolve_proxy(self, mesh: MeshLike, node_id: str, metadata: Mapping[str, Any]) -> Proxy:
        proxy: Proxy = self._pipeline.resolve_proxy(mesh, node_id, metadata)
        return proxy

    def generate(self, mesh: MeshLike, proxy: Proxy) -> ProxyResources:
        resources: ProxyResources = self._pipeline.generate(mesh, proxy)
        return resources
