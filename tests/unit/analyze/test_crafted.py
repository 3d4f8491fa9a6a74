"""Crafted broken configs: mistakes Istio users report, each giving exactly the right diagnostics.

Every case is `tests/data/analyze/base.yaml` (a small mesh with no findings) plus one YAML file with
one mistake. A line ending in `#! <code> <Kind> <namespace>/<name>` is where a finding is expected;
all analyzers run, and the findings must be exactly the marked ones: code, resource and file:line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from pilotfish.analyze.analyzers import run
from pilotfish.analyze.context import context_from_texts
from tests.paths import REPO

BASE = REPO / "tests" / "data" / "analyze" / "base.yaml"
FILE = "crafted.yaml"
_MARK = re.compile(r"#! (\S+) (.+)$")


@dataclass(frozen=True)
class Case:
    name: str
    mistake: str
    text: str


CASES = [
    Case(
        "subset-without-destinationrule",
        "routes to a subset of a host that has no DestinationRule (503 NC: no cluster)",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination:
        host: ratings
        subset: v1  #! IST0101 VirtualService default/ratings
""",
    ),
    Case(
        "subset-not-in-destinationrule",
        "routes to subset v3 that the DestinationRule does not define",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v3}  #! IST0101 VirtualService default/reviews
""",
    ),
    Case(
        "destination-host-typo",
        "a typo in the destination host",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reveiws  #! IST0101 VirtualService default/reviews
""",
    ),
    Case(
        "virtualservice-host-typo",
        "the VirtualService's own host is misspelled, so sidecars never apply it",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts:
  - reviw  #! PF0101 VirtualService default/reviews
  http:
  - route:
    - destination: {host: reviews, subset: v2}
""",
    ),
    Case(
        "gateway-name-typo",
        "the VirtualService names a Gateway that does not exist",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: ["bookinfo.example.com"]
  gateways:
  - bookinfo-gatway  #! IST0101 VirtualService default/shop #! IST0132 VirtualService default/shop
  http:
  - route:
    - destination: {host: reviews}
""",
    ),
    Case(
        "route-shadowed-by-catch-all",
        "a catch-all rule before a header match: the jason rule never matches",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
  - match:  #! IST0130 VirtualService default/reviews
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
""",
    ),
    Case(
        "weights-not-100",
        "route weights that do not add up to 100",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:  #! IST0106 VirtualService default/reviews
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 40
""",
    ),
    Case(
        "destinationrule-for-missing-host",
        "a DestinationRule for a host that does not exist (does nothing)",
        """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details  #! IST0174 DestinationRule default/details
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
""",
    ),
    Case(
        "subset-selects-no-pods",
        "a subset whose labels match no pod (503 UH when routed to)",
        """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}  #! IST0173 DestinationRule default/ratings
""",
    ),
    Case(
        "sidecar-selects-nothing",
        "a Sidecar whose workload selector matches no pod",
        """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector:
    labels:
      app: reveiws  #! IST0101 Sidecar default/reviews
  egress:
  - hosts: ["./*"]
""",
    ),
    Case(
        "port-named-web",
        "a Service port named `web`: no protocol, so no HTTP routing",
        """
apiVersion: v1
kind: Service
metadata: {name: details, namespace: default}
spec:
  selector: {app: details}
  ports:
  - name: web  #! IST0118 Service default/details
    port: 9080
""",
    ),
    Case(
        "two-virtualservices-one-host",
        "two mesh VirtualServices for the same host: only one takes effect",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-v1  #! IST0109 VirtualService default/reviews-v1
  namespace: default
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-jason  #! IST0109 VirtualService default/reviews-jason
  namespace: default
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
""",
    ),
    Case(
        "two-destinationrules-one-host",
        "a second DestinationRule for a host that already has one",
        """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-pool, namespace: default}
spec:
  host: reviews.default.svc.cluster.local  #! PF0102 DestinationRule default/reviews-pool
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 10}
""",
    ),
    Case(
        "gateway-selector-typo",
        "the Gateway's selector matches no gateway pod",
        """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: default}
spec:
  selector:
    istio: ingresgateway  #! IST0101 Gateway default/shop-gateway
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop.example.com"]
""",
    ),
    Case(
        "gateway-port-not-on-service",
        "a Gateway server on a port the ingress Service does not expose",
        """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: default}
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 8443  #! IST0162 Gateway default/shop-gateway
      name: http-alt
      protocol: HTTP
    hosts: ["shop.example.com"]
""",
    ),
    Case(
        "virtualservice-host-not-in-gateway",
        "the gateway VirtualService's host is not among the Gateway's hosts (404 NR at the gateway)",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: ["bookinfo.exmaple.com"]
  gateways:
  - bookinfo-gateway  #! IST0132 VirtualService default/shop
  http:
  - route:
    - destination: {host: reviews, subset: v1}
""",
    ),
    Case(
        "field-not-supported-by-pilotfish",
        "valid Istio config that pilotfish does not implement yet",
        """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting: {enabled: true}  #! PF0004 DestinationRule default/ratings
""",
    ),
    Case(
        "misspelled-field",
        "a misspelled field name (unknown to Istio)",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - rout:  #! IST0106 VirtualService default/reviews
    - destination: {host: reviews, subset: v1}
""",
    ),
    Case(
        "tcp-serviceentry-without-addresses",
        "a TCP ServiceEntry without addresses: sidecars cannot tell its traffic apart",
        """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo, namespace: default}
spec:
  hosts: [mongo.example.com]
  ports:
  - number: 27017  #! IST0134 ServiceEntry default/mongo
    name: mongo
    protocol: TCP
  resolution: DNS
""",
    ),
    Case(
        "port-required-for-multi-port-service",
        "a destination without port for a Service with two ports",
        """
apiVersion: v1
kind: Service
metadata: {name: details, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
  - {name: http-admin, port: 9090}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: default}
spec:
  hosts: [details]
  http:
  - route:
    - destination:  #! IST0112 VirtualService default/details
        host: details
""",
    ),
    Case(
        "destination-port-not-exposed",
        "a destination port the Service does not have",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination:
        host: ratings
        port:
          number: 8080  #! IST0101 VirtualService default/ratings
""",
    ),
    Case(
        "duplicate-match",
        "the same match in two rules: the second rule is dead",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /reviews}
    route:
    - destination: {host: reviews, subset: v1}
  - match:  #! IST0130 VirtualService default/reviews
    - uri: {prefix: /reviews}  #! IST0131 VirtualService default/reviews
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
""",
    ),
    Case(
        "shorter-prefix-first",
        "a shorter URI prefix before a longer one takes all its requests",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {prefix: /api}
    route:
    - destination: {host: reviews, subset: v1}
  - match:
    - uri: {prefix: /api/v2}  #! IST0131 VirtualService default/reviews
    route:
    - destination: {host: reviews, subset: v2}
""",
    ),
    Case(
        "export-to-hides-service",
        "the destination Service is exported only to its own namespace",
        """
apiVersion: v1
kind: Service
metadata:
  name: billing
  namespace: payments
  annotations: {networking.istio.io/exportTo: "."}
spec:
  selector: {app: billing}
  ports:
  - {name: http, port: 8080}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: billing, namespace: default}
spec:
  hosts: [billing.payments.svc.cluster.local]  #! PF0101 VirtualService default/billing
  exportTo: ["."]
  http:
  - route:
    - destination:
        host: billing.payments.svc.cluster.local  #! IST0101 VirtualService default/billing
""",
    ),
    Case(
        "mirror-to-unknown-host",
        "traffic mirroring to a host that does not exist",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    mirror:
      host: reviews-shadow  #! IST0101 VirtualService default/reviews
""",
    ),
    Case(
        "tls-origination-without-ca",
        "TLS origination (SIMPLE) without caCertificates: the server is not verified",
        """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  ports:
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.example.com
  trafficPolicy:
    tls:
      mode: SIMPLE  #! IST0128 DestinationRule default/api
""",
    ),
    Case(
        "two-namespace-wide-sidecars",
        "two Sidecars without workload selector in one namespace",
        """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}  #! IST0111 Sidecar default/default
spec:
  egress:
  - hosts: ["./*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: restricted, namespace: default}  #! IST0111 Sidecar default/restricted
spec:
  egress:
  - hosts: ["./*", "istio-system/*"]
""",
    ),
    Case(
        "deprecated-fault-percent",
        "fault.delay.percent, deprecated in favour of percentage",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - fault:
      delay:
        fixedDelay: 7s
        percent: 100  #! IST0002 VirtualService default/ratings
    route:
    - destination: {host: ratings}
""",
    ),
    Case(
        "static-serviceentry-without-endpoints",
        "resolution STATIC without endpoints: nothing to send the traffic to",
        """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:  #! IST0106 ServiceEntry default/legacy
  hosts: [legacy.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  resolution: STATIC
""",
    ),
    Case(
        "deployment-selector-not-matching-template",
        "a Deployment whose selector does not match its pod template's labels",
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: details-v1, namespace: default}
spec:  #! IST0106 Deployment default/details-v1
  selector:
    matchLabels: {app: details, version: v1}
  template:
    metadata:
      labels: {app: detail, version: v1}
    spec:
      containers:
      - {name: details, image: details}
""",
    ),
    Case(
        "pod-status-unquoted-condition",
        "a hand-written pod status whose Ready condition is a YAML boolean instead of the string",
        """
apiVersion: pilotfish.io/v1alpha1
kind: PodStatus
metadata: {name: details-v1-0, namespace: default}
status:
  conditions:
  - type: Ready
    status: true  #! IST0106 PodStatus default/details-v1-0
""",
    ),
    Case(
        "yaml-syntax-error",
        "broken indentation: nothing of the file is used",
        """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings}
   timeout: 1s  #! PF0001 -
""",
    ),
]


def expected(case: Case) -> set[tuple[str, str, str]]:
    result = set()
    for number, line in enumerate(case.text.splitlines(), start=1):
        for mark in line.split("#! ")[1:]:
            code, resource = mark.strip().split(" ", 1)
            result.add((code, resource.strip(), f"{FILE}:{number}"))
    return result


def test_enough_cases() -> None:
    assert len(CASES) >= 20
    assert len({c.name for c in CASES}) == len(CASES)


def test_base_is_clean() -> None:
    assert run(context_from_texts([(str(BASE), BASE.read_text())])) == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_crafted(case: Case) -> None:
    context = context_from_texts([(str(BASE), BASE.read_text()), (FILE, case.text)])
    found = run(context)
    actual = {(d.code, str(d.resource) if d.resource else "-", str(d.origin)) for d in found}
    assert actual == expected(case), "\n".join(str(d) for d in found)
    for diagnostic in found:
        assert "Fix:" in diagnostic.message or diagnostic.code == "PF0001", diagnostic


def test_every_analyzer_is_exercised() -> None:
    """Each analyzer (except the per-kind schema ones of rarely used kinds) reports something on the
    crafted cases or Istio's analyzer inputs, so none is dead code."""
    from pilotfish.analyze.analyzers import ALL
    from tests.paths import CONFORMANCE

    inputs = [[(str(BASE), BASE.read_text()), (FILE, case.text)] for case in CASES]
    testdata = CONFORMANCE / "istio-analyze" / "testdata"
    defaults = CONFORMANCE / "istio-analyze" / "default-resources.yaml"
    inputs += [
        [(str(p), p.read_text()), (str(defaults), defaults.read_text())]
        for p in sorted(testdata.glob("*.yaml"))
        if "mesh-cfg" not in p.name
    ]
    reporting: set[str] = set()
    for texts in inputs:
        context = context_from_texts(texts)
        reporting |= {a.name for a in ALL if a.name not in reporting and run(context, [a])}
    idle = {a.name for a in ALL} - reporting
    rarely_used = {
        f"schema.ValidationAnalyzer.{k}" for k in ("Namespace", "Endpoints", "ServiceAccount", "ConfigMap")
    }
    assert idle <= rarely_used | {"schema.ValidationAnalyzer.MeshConfig"}, idle
