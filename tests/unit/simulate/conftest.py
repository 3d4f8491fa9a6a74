"""Meshes for the trace tests, built once per scenario (they are immutable snapshots)."""

from __future__ import annotations

from functools import cache

from pilotfish.model.mesh import Mesh
from pilotfish.pipeline import mesh_from_texts
from pilotfish.simulate.source import OfflineSource
from tests.trace_cases import scenario_texts


@cache
def scenario_mesh(name: str) -> Mesh:
    mesh, diagnostics = mesh_from_texts(scenario_texts(name))
    assert mesh is not None, [str(d) for d in diagnostics]
    return mesh


@cache
def scenario_source(name: str) -> OfflineSource:
    return OfflineSource(scenario_mesh(name))
