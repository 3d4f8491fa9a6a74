"""Analyzers read raw YAML: malformed objects give findings, never an internal error (IST0001)."""

from __future__ import annotations

from pilotfish.analyze.analyzers import run
from pilotfish.analyze.context import context_from_texts
from tests.paths import CONFORMANCE

MALFORMED = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, labels: [x]}
spec:
  hosts: reviews
  gateways: [1, null, mesh]
  http:
  - null
  - match: {uri: /x}
    route: [{destination: "reviews"}, {destination: {host: 5, port: {number: "80"}}}]
    mirror: reviews
  tcp: {route: []}
  tls: [{match: [null], route: null}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec:
  host: [reviews]
  subsets: "v1"
  trafficPolicy: {tls: "SIMPLE", portLevelSettings: [null, {tls: {mode: 7}}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a}
spec:
  selector: [istio]
  servers: [{port: "80", hosts: "*"}, null, {port: {number: 80}, hosts: [null], tls: {credentialName: 3}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: a}
spec: {workloadSelector: {labels: null}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
spec: {hosts: [null, "x.com"], ports: [{number: "x"}, null], addresses: "1.2.3.4", exportTo: "."}
---
apiVersion: v1
kind: Service
metadata: {name: a, annotations: {networking.istio.io/exportTo: 3}}
spec: {ports: [null, {port: "80"}], selector: [app]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: a}
spec: {replicas: "2", template: [1]}
---
apiVersion: v1
kind: Secret
metadata: {name: a}
data: [1]
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {version: 1, app: null}}
spec: null
"""


def test_malformed_objects_do_not_break_analyzers() -> None:
    found = run(context_from_texts([("malformed.yaml", MALFORMED)]))
    assert found
    assert not [d for d in found if d.code == "IST0001"], found


def test_every_vendored_yaml_analyzes_without_internal_errors() -> None:
    texts = [(str(p), p.read_text()) for p in sorted(CONFORMANCE.rglob("*.yaml"))]
    assert len(texts) > 100
    found = run(context_from_texts(texts))
    assert not [d for d in found if d.code == "IST0001"]
