"""`parse_documents`: every document with its identity, valid or not (what `pilotfish analyze` reads),
and `parse_manifests` unchanged on top of it."""

from __future__ import annotations

from pilotfish.config.parse import parse_documents, parse_manifests

GOOD = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: reviews}
  spec:
    host: reviews
    trafficPolicy:
      tls: {mode: SIMPLE, credentialName: c}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: ratings}
  spec: {host: ratings}
"""
BROKEN = "kind: Service\nmetadata: [\n"


def test_every_document_keeps_its_identity() -> None:
    documents, file_problems = parse_documents([("good.yaml", GOOD), ("broken.yaml", BROKEN)])
    assert [(d.kind, d.namespace, d.name, d.index) for d in documents] == [
        ("Service", "shop", "reviews", 0),
        ("DestinationRule", "", "reviews", 1),
        ("DestinationRule", "", "ratings", 2),
    ]
    rejected = documents[1]
    assert rejected.obj is None and rejected.group == "networking.istio.io" and rejected.version == "v1"
    assert [d.code for d in rejected.diagnostics] == ["PF0004"]
    assert rejected.document.origin.line == 10  # the List item, not the List
    assert str(rejected.ref) == "DestinationRule reviews"
    assert [o.order for o in (documents[0].obj, documents[2].obj) if o is not None] == [0, 1]
    assert [d.code for d in file_problems] == ["PF0001"]


def test_parse_manifests_is_unchanged() -> None:
    """Objects as before (numbered among valid objects only) and diagnostics in input order."""
    objects, diagnostics = parse_manifests([("broken.yaml", BROKEN), ("good.yaml", GOOD)])
    assert [(o.kind, o.name, o.namespace, o.order) for o in objects] == [
        ("Service", "reviews", "shop", 0),
        ("DestinationRule", "ratings", "default", 1),
    ]
    assert [(d.code, d.origin.file if d.origin else "") for d in diagnostics] == [
        ("PF0001", "broken.yaml"),
        ("PF0004", "good.yaml"),
    ]
