"""Request cases for `pilotfish trace`: a mesh scenario, a request, and what Envoy would do with it.

Each case names a scenario (manifests from the repository plus inline YAML), a request (source pod
or `ingress`, URL, headers), and the expected result as the *first* Envoy on the path would log it
(`%UPSTREAM_CLUSTER%`, `%RESPONSE_FLAGS%`, the code it answers by itself) plus where the request
ends. The offline tests check the simulator against these; the local-mesh tests will send the same
requests to real Envoys and check that their access logs agree, so keep the cases runnable there:
sources are pods of the scenario, URLs use the names the pods can resolve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pilotfish.model.mesh import Mesh
from pilotfish.sources.manifests import manifest_files
from tests.paths import REPO

NETWORKING = "tests/data/conformance/istio-samples/bookinfo/networking"
BOOKINFO = ("samples/bookinfo", "samples/sleep/sleep.yaml")
DR_ALL = f"{NETWORKING}/destination-rule-all.yaml"


def _net(name: str) -> str:
    return f"{NETWORKING}/{name}.yaml"


REGISTRY_ONLY = """
apiVersion: pilotfish.io/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
"""

MODERN = """
apiVersion: pilotfish.io/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  profile: modern
"""

REVIEWS_V4 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v4
"""

DETAILS_ROUTES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: details
  namespace: default
spec:
  hosts:
  - details
  http:
  - match:
    - uri:
        prefix: /old/
    redirect:
      uri: /details/0
  - match:
    - uri:
        exact: /teapot
    directResponse:
      status: 418
  - match:
    - uri:
        regex: /shout/[0-9]+
      ignoreUriCase: true
    route:
    - destination:
        host: details
        port:
          number: 9080
  - match:
    - queryParams:
        debug:
          exact: "1"
      method:
        exact: POST
    fault:
      abort:
        httpStatus: 503
        percentage:
          value: 100
    route:
    - destination:
        host: details
  - match:
    - uri:
        prefix: /details
    route:
    - destination:
        host: details
"""

HOSTED_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: hosted
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 8081
      name: http-hosted
      protocol: HTTP
    hosts:
    - bookinfo.example.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: hosted
  namespace: default
spec:
  hosts:
  - bookinfo.example.com
  gateways:
  - hosted
  http:
  - route:
    - destination:
        host: reviews
        port:
          number: 9080
"""

TLS_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: secure
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - bookinfo.example.com
    tls:
      mode: SIMPLE
      serverCertificate: /etc/istio/ingressgateway-certs/tls.crt
      privateKey: /etc/istio/ingressgateway-certs/tls.key
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - bookinfo.example.com
    tls:
      httpsRedirect: true
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: secure
  namespace: default
spec:
  hosts:
  - bookinfo.example.com
  gateways:
  - secure
  http:
  - route:
    - destination:
        host: productpage
        port:
          number: 9080
"""

CAPTURE_EXCEPTIONS = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleep-nocapture
  namespace: default
spec:
  selector:
    matchLabels:
      app: sleep-nocapture
  template:
    metadata:
      labels:
        app: sleep-nocapture
      annotations:
        traffic.sidecar.istio.io/excludeOutboundIPRanges: 10.96.0.0/16
        traffic.sidecar.istio.io/excludeOutboundPorts: "9090"
    spec:
      containers:
      - name: sleep
        image: docker.io/curlimages/curl:8.16.0
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ratings-v2
  namespace: default
spec:
  selector:
    matchLabels:
      app: ratings
      version: v2
  template:
    metadata:
      labels:
        app: ratings
        version: v2
      annotations:
        traffic.sidecar.istio.io/excludeInboundPorts: "9080"
    spec:
      containers:
      - name: ratings
        image: registry.istio.io/release/examples-bookinfo-ratings-v2:1.20.3
        ports:
        - containerPort: 9080
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts:
  - ratings
  http:
  - route:
    - destination:
        host: ratings
        subset: v2
"""

EMPTY_SUBSET = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v9
    labels:
      version: v9
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v9
"""


SIDECAR_AND_LEGACY = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: default
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  egress:
  - hosts:
    - "./*"
---
apiVersion: v1
kind: Namespace
metadata:
  name: legacy
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy-client
  namespace: legacy
spec:
  selector:
    matchLabels:
      app: legacy-client
  template:
    metadata:
      labels:
        app: legacy-client
      annotations:
        sidecar.istio.io/inject: "false"
    spec:
      containers:
      - name: client
        image: docker.io/curlimages/curl:8.16.0
"""


@dataclass(frozen=True)
class Scenario:
    files: tuple[str, ...]
    """Manifest files or directories, relative to the repository root."""
    inline: tuple[str, ...] = ()
    """Extra YAML documents."""


SCENARIOS: dict[str, Scenario] = {
    "bookinfo": Scenario(BOOKINFO),
    "dr-all": Scenario((*BOOKINFO, DR_ALL)),
    "test-v2": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-reviews-test-v2"))),
    "jason-v2-v3": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-reviews-jason-v2-v3"))),
    "50-v3": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-reviews-50-v3"))),
    "80-20": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-reviews-80-20"))),
    "all-v1": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-all-v1"))),
    "all-v1-no-dr": Scenario((*BOOKINFO, _net("virtual-service-all-v1"))),
    "v4": Scenario((*BOOKINFO, DR_ALL), (REVIEWS_V4,)),
    "empty-subset": Scenario(BOOKINFO, (EMPTY_SUBSET,)),
    "abort": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-ratings-test-abort"))),
    "delay": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-ratings-test-delay"))),
    "details-fault": Scenario((*BOOKINFO, _net("fault-injection-details-v1"))),
    "details-v2": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-details-v2"))),
    "details-routes": Scenario(BOOKINFO, (DETAILS_ROUTES,)),
    "capture": Scenario((*BOOKINFO, DR_ALL), (CAPTURE_EXCEPTIONS,)),
    "hosted-gateway": Scenario(BOOKINFO, (HOSTED_GATEWAY,)),
    "tls-gateway": Scenario(BOOKINFO, (TLS_GATEWAY,)),
    "modern-test-v2": Scenario((*BOOKINFO, DR_ALL, _net("virtual-service-reviews-test-v2")), (MODERN,)),
    "registry-only": Scenario(BOOKINFO, (REGISTRY_ONLY,)),
    "sidecar-and-legacy": Scenario(BOOKINFO, (SIDECAR_AND_LEGACY,)),
    "registry-only-googleapis": Scenario((*BOOKINFO, _net("egress-rule-google-apis")), (REGISTRY_ONLY,)),
    "registry-only-github": Scenario(
        (*BOOKINFO, "tests/data/conformance/istio-samples/external/github.yaml"), (REGISTRY_ONLY,)
    ),
    "tcp-echo": Scenario(
        (
            *BOOKINFO,
            "tests/data/conformance/istio-samples/tcp-echo/tcp-echo-services.yaml",
            "tests/data/conformance/istio-samples/tcp-echo/tcp-echo-all-v1.yaml",
        )
    ),
}


def scenario_texts(name: str) -> list[tuple[str, str]]:
    """The scenario's manifests as (repository-relative name, text), inline documents last."""
    scenario = SCENARIOS[name]
    files, diagnostics = manifest_files([REPO / f for f in scenario.files])
    assert not diagnostics, diagnostics
    texts = [(str(Path(f).relative_to(REPO)), Path(f).read_text()) for f in files]
    texts += [(f"inline/{name}-{i}.yaml", text) for i, text in enumerate(scenario.inline)]
    return texts


def expand(text: str, mesh: Mesh) -> str:
    """Fill `{vip:<service>}` (cluster IP in `default`) and `{pod:<deployment>}` (its first pod's IP)."""

    def value(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "vip":
            service = mesh.service(f"{name}.default.svc.{mesh.domain_suffix}")
            assert service is not None, name
            return service.address
        return next(w.ip for w in mesh.workloads if w.deployment == name)

    return re.sub(r"\{(vip|pod):([a-z0-9-]+)\}", value, text)


@dataclass(frozen=True)
class Case:
    id: str
    scenario: str
    source: str
    """A pod (`deploy/<name>`) or `ingress`."""
    url: str
    cluster: str | None
    """`%UPSTREAM_CLUSTER%` of the first Envoy ("-": none chosen); None when no Envoy logs (no
    listener, no filter chain: Istio configures no listener-level access log)."""
    flags: str = "-"
    """`%RESPONSE_FLAGS%` of the first Envoy, or of the outcome when no Envoy logs."""
    code: int | None = None
    """The status code an Envoy answers by itself (None: the application answers)."""
    end: str = "delivered"
    reached: str = ""
    """Prefix of `<pod>` (delivered) or the address (left the mesh) where the request ends."""
    headers: tuple[str, ...] = ()
    method: str = "GET"
    pick: str | None = None
    gateway_port: int | None = None


PP = "deploy/productpage-v1"
SLEEP = "deploy/sleep"


def _out(port: int, host: str, subset: str = "") -> str:
    fqdn = host if "." in host else f"{host}.default.svc.cluster.local"
    return f"outbound|{port}|{subset}|{fqdn}"


CASES: tuple[Case, ...] = (
    # --- the seed's path and plain Bookinfo -------------------------------------------------------
    Case("pp-reviews-default", "bookinfo", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews"),
         reached="reviews-v"),
    Case("pp-details-default", "bookinfo", PP, "http://details:9080/details/0", _out(9080, "details"),
         reached="details-v1-"),
    Case("pp-reviews-fqdn", "bookinfo", PP, "http://reviews.default.svc.cluster.local:9080/reviews/0",
         _out(9080, "reviews"), reached="reviews-v"),
    Case("pp-reviews-vip-literal", "bookinfo", PP, "http://{vip:reviews}:9080/", _out(9080, "reviews"),
         reached="reviews-v"),
    Case("pp-self", "bookinfo", PP, "http://productpage:9080/health", _out(9080, "productpage"),
         reached="productpage-v1-"),
    Case("sleep-productpage", "bookinfo", SLEEP, "http://productpage:9080/productpage",
         _out(9080, "productpage"), reached="productpage-v1-"),
    Case("ingress-productpage", "bookinfo", "ingress", "http://127.0.0.1:18080/productpage",
         _out(9080, "productpage"), reached="productpage-v1-"),
    Case("ingress-static", "bookinfo", "ingress", "http://127.0.0.1:18080/static/img/x.png",
         _out(9080, "productpage"), reached="productpage-v1-"),
    Case("ingress-login-post", "bookinfo", "ingress", "http://127.0.0.1:18080/login",
         _out(9080, "productpage"), reached="productpage-v1-", method="POST"),
    Case("ingress-api", "bookinfo", "ingress", "http://127.0.0.1:18080/api/v1/products/0/reviews",
         _out(9080, "productpage"), reached="productpage-v1-"),
    Case("ingress-unknown-path", "bookinfo", "ingress", "http://127.0.0.1:18080/admin", "-", "NR", 404,
         "local-reply"),
    Case("ingress-dot-segments", "bookinfo", "ingress", "http://127.0.0.1:18080/static/../productpage",
         _out(9080, "productpage"), reached="productpage-v1-"),
    # --- routing by header, weights ------------------------------------------------------------------
    Case("dr-only-no-routing", "dr-all", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews"),
         reached="reviews-v"),
    Case("test-v2-jason", "test-v2", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v2"),
         headers=("end-user: jason",), reached="reviews-v2-"),
    Case("test-v2-anonymous", "test-v2", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v1"),
         reached="reviews-v1-"),
    Case("test-v2-other-user", "test-v2", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v1"),
         headers=("end-user: kim",), reached="reviews-v1-"),
    Case("jason-v2-v3-jason", "jason-v2-v3", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v2"),
         headers=("End-User: jason",), reached="reviews-v2-"),
    Case("jason-v2-v3-other", "jason-v2-v3", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v3"),
         reached="reviews-v3-"),
    Case("50-v3-heaviest", "50-v3", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v1"),
         reached="reviews-v1-"),
    Case("50-v3-pick-v3", "50-v3", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v3"),
         reached="reviews-v3-", pick="v3"),
    Case("80-20-heaviest", "80-20", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v1"),
         reached="reviews-v1-"),
    Case("all-v1-ratings", "all-v1", "deploy/reviews-v2", "http://ratings:9080/ratings/0",
         _out(9080, "ratings", "v1"), reached="ratings-v1-"),
    Case("all-v1-ingress", "all-v1", "ingress", "http://127.0.0.1:18080/productpage",
         _out(9080, "productpage"), reached="productpage-v1-"),
    # --- missing clusters and endpoints --------------------------------------------------------------
    Case("v4-missing-subset", "v4", PP, "http://reviews:9080/reviews/0", "-", "NC", 503, "local-reply"),
    Case("all-v1-without-dr", "all-v1-no-dr", PP, "http://reviews:9080/reviews/0", "-", "NC", 503,
         "local-reply"),
    Case("details-v2-no-pods", "details-v2", PP, "http://details:9080/details/0", _out(9080, "details", "v2"),
         "UH", 503, "local-reply"),
    Case("empty-subset", "empty-subset", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v9"),
         "UH", 503, "local-reply"),
    # --- faults ---------------------------------------------------------------------------------------
    Case("abort-jason", "abort", "deploy/reviews-v2", "http://ratings:9080/ratings/0",
         _out(9080, "ratings", "v1"), "FI", 500, "local-reply", headers=("end-user: jason",)),
    Case("abort-anonymous", "abort", "deploy/reviews-v2", "http://ratings:9080/ratings/0",
         _out(9080, "ratings", "v1"), reached="ratings-v1-"),
    Case("delay-jason", "delay", "deploy/reviews-v2", "http://ratings:9080/ratings/0",
         _out(9080, "ratings", "v1"), "DI", reached="ratings-v1-", headers=("end-user: jason",)),
    Case("delay-anonymous", "delay", "deploy/reviews-v2", "http://ratings:9080/ratings/0",
         _out(9080, "ratings", "v1"), reached="ratings-v1-"),
    Case("details-abort-555", "details-fault", PP, "http://details:9080/details/0",
         _out(9080, "details", "v1"), "FI", 555, "local-reply"),
    # --- more VirtualService features -----------------------------------------------------------------
    Case("vs-redirect", "details-routes", SLEEP, "http://details:9080/old/page", "-", code=301,
         end="local-reply"),
    Case("vs-direct-response", "details-routes", SLEEP, "http://details:9080/teapot", "-", code=418,
         end="local-reply"),
    Case("vs-regex", "details-routes", SLEEP, "http://details:9080/shout/42",
         _out(9080, "details"), reached="details-v1-"),
    # ignoreUriCase sets the route's case_sensitive: false, which Envoy ignores for regex paths
    Case("vs-regex-ignore-case-has-no-effect", "details-routes", SLEEP, "http://details:9080/SHOUT/42", "-",
         "NR", 404, "local-reply"),
    Case("vs-method-query-fault", "details-routes", SLEEP, "http://details:9080/details/0?debug=1",
         _out(9080, "details"), "FI", 503, "local-reply", method="POST"),
    Case("vs-query-needs-post", "details-routes", SLEEP, "http://details:9080/details/0?debug=1",
         _out(9080, "details"), reached="details-v1-"),
    Case("vs-no-route", "details-routes", SLEEP, "http://details:9080/other", "-", "NR", 404, "local-reply"),
    Case("hosted-gateway-host", "hosted-gateway", "ingress", "http://bookinfo.example.com:8081/reviews/0",
         _out(9080, "reviews"), reached="reviews-v"),
    Case("hosted-gateway-wrong-host", "hosted-gateway", "ingress", "http://other.example.com:8081/",
         "-", "NR", 404, "local-reply"),
    Case("tls-gateway-https", "tls-gateway", "ingress", "https://bookinfo.example.com/productpage",
         _out(9080, "productpage"), reached="productpage-v1-"),
    Case("tls-gateway-https-redirect", "tls-gateway", "ingress", "http://bookinfo.example.com/productpage",
         "-", code=301, end="local-reply"),
    Case("tls-gateway-plaintext-on-443", "tls-gateway", "ingress", "http://bookinfo.example.com:443/",
         None, "NR", end="closed"),
    Case("gateway-no-listener", "bookinfo", "ingress", "http://127.0.0.1:9999/", None, end="closed",
         gateway_port=9999),
    # --- capture exceptions ------------------------------------------------------------------------------
    Case("excluded-outbound-range", "capture", "deploy/sleep-nocapture", "http://reviews:9080/reviews/0",
         None, end="bypass"),
    Case("excluded-inbound-port", "capture", PP, "http://ratings:9080/ratings/0", _out(9080, "ratings", "v2"),
         reached="ratings-v2-"),
    Case("unknown-port-passthrough", "bookinfo", PP, "http://{pod:reviews-v2}:8000/", "PassthroughCluster",
         reached="reviews-v2-"),
    Case("no-sidecar-to-pod-ip", "sidecar-and-legacy", "deploy/legacy-client", "http://{pod:reviews-v3}:9080/",
         "inbound|9080|http|reviews.default.svc.cluster.local", reached="reviews-v3-"),
    Case("no-sidecar-to-cluster-ip", "sidecar-and-legacy", "deploy/legacy-client",
         "http://reviews.default:9080/", None, end="bypass"),
    # --- leaving the mesh: ALLOW_ANY, REGISTRY_ONLY, ServiceEntry --------------------------------------
    Case("allow-any-http", "bookinfo", SLEEP, "http://example.com/", "PassthroughCluster", end="left-mesh",
         reached="198.51.100.1:80"),
    Case("allow-any-other-port", "bookinfo", SLEEP, "https://example.com:8443/", "PassthroughCluster",
         end="left-mesh", reached="198.51.100.1:8443"),
    Case("registry-only-http", "registry-only", SLEEP, "http://example.com/", "-", code=502,
         end="local-reply"),
    Case("registry-only-other-port", "registry-only", SLEEP, "https://example.com:8443/", "BlackHoleCluster",
         "UH", end="closed"),
    Case("sidecar-registry-only", "sidecar-and-legacy", SLEEP, "http://example.com/", "-", code=502,
         end="local-reply"),
    Case("registry-only-se-http", "registry-only-googleapis", SLEEP, "http://www.googleapis.com/books",
         _out(443, "www.googleapis.com"), end="left-mesh", reached="www.googleapis.com:443"),
    Case("registry-only-se-https-sni", "registry-only-github", SLEEP, "https://github.com/",
         _out(443, "github.com"), end="left-mesh"),
    Case("registry-only-https-unknown", "registry-only-github", SLEEP, "https://pypi.org/",
         "BlackHoleCluster", "UH", end="closed"),
    Case("registry-only-se-cidr-tcp", "registry-only-github", SLEEP, "tcp://13.229.188.59:22",
         _out(22, "dummy.github.com"), end="left-mesh", reached="13.229.188.59:22"),
    # --- the modern profile (domains without ports, named chains) -----------------------------------------
    Case("modern-jason", "modern-test-v2", PP, "http://reviews:9080/reviews/0", _out(9080, "reviews", "v2"),
         headers=("end-user: jason",), reached="reviews-v2-"),
    Case("modern-ingress", "modern-test-v2", "ingress", "http://127.0.0.1:18080/productpage",
         _out(9080, "productpage"), reached="productpage-v1-"),
    Case("modern-unknown-host", "modern-test-v2", SLEEP, "http://example.com/", "PassthroughCluster",
         end="left-mesh", reached="198.51.100.1:80"),
    # --- TCP ---------------------------------------------------------------------------------------------
    Case("tcp-echo", "tcp-echo", SLEEP, "tcp://tcp-echo:9000", _out(9000, "tcp-echo"),
         reached="tcp-echo-v"),
    Case("tcp-echo-other-port", "tcp-echo", SLEEP, "tcp://tcp-echo:9001", _out(9001, "tcp-echo"),
         reached="tcp-echo-v"),
    Case("tcp-echo-ingress", "tcp-echo", "ingress", "tcp://127.0.0.1:31400", _out(9000, "tcp-echo", "v1"),
         reached="tcp-echo-v1-"),
    Case("tcp-to-http-port", "bookinfo", SLEEP, "tcp://reviews:9080", "-", "DPE", 400, "closed"),
)
