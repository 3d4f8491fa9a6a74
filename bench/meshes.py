"""Synthetic meshes for the benchmarks, in the shapes of Istio's pilot benchmarks."""

from __future__ import annotations

from pilotfish.model.mesh import Mesh
from pilotfish.pipeline import mesh_from_texts


def http_services(count: int, replicas: int = 1, namespace: str = "default") -> str:
    """`count` HTTP services, each a Deployment of `replicas` pods, plus a client Deployment."""
    docs = []
    for i in range(count):
        docs.append(
            f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: {namespace}}}
spec:
  selector: {{app: svc-{i}}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: svc-{i}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  template:
    metadata: {{labels: {{app: svc-{i}, version: v1}}}}
    spec: {{containers: [{{name: app, ports: [{{containerPort: 8080}}]}}]}}
"""
        )
    docs.append(
        f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: client, namespace: {namespace}}}
spec:
  replicas: 2
  template:
    metadata: {{labels: {{app: client}}}}
    spec: {{containers: [{{name: app}}]}}
"""
    )
    return "---\n".join(docs)


def build(text: str) -> Mesh:
    mesh, diagnostics = mesh_from_texts([("bench.yaml", text)])
    if mesh is None:
        raise SystemExit("\n".join(map(str, diagnostics)))
    return mesh
