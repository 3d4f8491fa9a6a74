"""Synthetic meshes for the benchmarks, in the shapes of Istio's pilot benchmarks.

Istio's `pilot/pkg/xds/bench_test.go` renders Go-templated YAML per case (`perf-and-peers.md` §B2).
The functions here write the same shapes as plain YAML text (same kinds, names, counts, ports and
hosts), so `ms/op` and `kb/msg` can be set side by side with Istio's on the same machine. Each shape
also carries the pods the measured proxies run as (Istio's fake proxy is a node id; ours must be a
pod of the mesh so generation sees its inbound side), two of each so the "Nth proxy of the same
shape" can be measured.

Everything is pure text building; `build` runs the real pipeline on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.pipeline import MeshLoader, proxy_for_workload

BENCH_LABEL = "istio.io/benchmark"


def http_services(count: int, replicas: int = 1, namespace: str = "default", client_replicas: int = 2) -> str:
    """`count` Kubernetes HTTP services, each a Deployment of `replicas` pods (svc-0 has at least
    two: the measured proxies), plus a client Deployment: the issue-2 "1,000-service mesh" when
    `count` is 1000."""
    docs = [
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
  replicas: {max(replicas, 2) if i == 0 else replicas}
  template:
    metadata: {{labels: {{app: svc-{i}, version: v1}}}}
    spec: {{containers: [{{name: app, ports: [{{containerPort: 8080}}]}}]}}
"""
        for i in range(count)
    ]
    docs.append(
        f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: client, namespace: {namespace}}}
spec:
  replicas: {client_replicas}
  template:
    metadata: {{labels: {{app: client}}}}
    spec: {{containers: [{{name: app}}]}}
"""
    )
    return "---\n".join(docs)


def weighted_route(service: int, weight: int) -> str:
    """A DestinationRule with subsets v1/v2 and a VirtualService sending `weight`% of svc-<service>
    to v1: moving the weight changes every sidecar's route for port 8080 (an RDS change)."""
    host = f"svc-{service}"
    return f"""apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {{name: {host}, namespace: default}}
spec:
  host: {host}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: {host}, namespace: default}}
spec:
  hosts: [{host}]
  http:
  - route:
    - destination: {{host: {host}, subset: v1}}
      weight: {weight}
    - destination: {{host: {host}, subset: v2}}
      weight: {100 - weight}
"""


def extra_pod(round_: int) -> str:
    """One more pod behind svc-0: only svc-0's endpoints change for the other proxies (an EDS change)."""
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: svc-0-extra-{round_}
  namespace: default
  labels: {{app: svc-0, version: v1}}
spec:
  containers: [{{name: app, ports: [{{containerPort: 8080}}]}}]
"""


def _vip(prefix: str, i: int) -> str:
    """Istio's `240.240.{i/255}.{i%255}` addressing."""
    return f"{prefix}.{i // 255}.{i % 255}"


def _pods(namespace: str, labels: dict[str, str], base_ip: str, count: int = 2) -> str:
    """The measured proxies: `count` pods with fixed IPs (Istio's proxy runs as 1.1.1.1)."""
    label_text = ", ".join(f'{k}: "{v}"' for k, v in labels.items())
    head, last = base_ip.rsplit(".", 1)
    return "---\n".join(
        f"""apiVersion: v1
kind: Pod
metadata:
  name: bench-proxy-{n}
  namespace: {namespace}
  labels: {{{label_text}}}
spec: {{containers: [{{name: app}}]}}
status: {{podIP: {head}.{int(last) + n}}}
"""
        for n in range(count)
    )


def _proxy_instance(ports: list[tuple[int, str, str]], label: str | None = None) -> str:
    """Istio's `proxy-service-instance`: a ServiceEntry whose endpoint is the proxy's IP."""
    port_text = "\n".join(f"  - {{number: {n}, name: {name}, protocol: {proto}}}" for n, name, proto in ports)
    labels = f"\n    labels: {{{label}}}" if label else ""
    return f"""apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: proxy-service-instance}}
spec:
  hosts: [example.com]
  ports:
{port_text}
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
  - address: 1.1.1.1{labels}
"""


def _se_with_vip(i: int, port: int, name: str, protocol: str) -> str:
    return f"""apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: service-{i}}}
spec:
  addresses: [{_vip("240.240", i)}]
  hosts: [random-{i}.host.example]
  ports: [{{number: {port}, name: {name}, protocol: {protocol}}}]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
  - address: {_vip("240.241", i)}
    labels: {{security.istio.io/tlsMode: istio}}
"""


def _se_plain(i: int) -> str:
    return f"""apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: service-{i}, namespace: default}}
spec:
  hosts: [random-{i}.host.example]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 1.2.3.4}}]
"""


def istio_http(count: int) -> str:
    """Istio's `http` case: `count` ServiceEntries, HTTP port 80, one VIP and one endpoint each."""
    docs = [_proxy_instance([(80, "http", "HTTP")], "security.istio.io/tlsMode: istio")]
    docs += [_se_with_vip(i, 80, "http", "HTTP") for i in range(count)]
    docs.append(_pods("default", {BENCH_LABEL: "true"}, "1.1.1.1"))
    return "---\n".join(docs)


def istio_tcp(count: int) -> str:
    """Istio's `tcp` case: as `http`, with TCP port 7070 (one VIP listener per service)."""
    docs = [_proxy_instance([(7070, "tcp", "TCP")], "security.istio.io/tlsMode: istio")]
    docs += [_se_with_vip(i, 7070, "tcp", "TCP") for i in range(count)]
    docs.append(_pods("default", {BENCH_LABEL: "true"}, "1.1.1.1"))
    return "---\n".join(docs)


def istio_virtualservice(count: int) -> str:
    """Istio's `virtualservice` case: per service a VirtualService with a prefix and a regex match
    and a URI rewrite, and a ServiceEntry without VIP."""
    docs = [_proxy_instance([(80, "http", "HTTP")])]
    for i in range(count):
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs-{i}, namespace: default}}
spec:
  hosts: [random-{i}.host.example]
  http:
  - name: match-route
    match:
    - uri: {{prefix: /foo}}
    - uri: {{regex: /bar}}
    rewrite: {{uri: /new-url}}
    route:
    - destination: {{host: random-{i}.host.example}}
"""
        )
        docs.append(_se_plain(i))
    docs.append(_pods("default", {BENCH_LABEL: "true"}, "1.1.1.1"))
    return "---\n".join(docs)


_HOSTS3 = "[random-a-{i}.host.example, random-b-{i}.host.example, random-c-{i}.host.example]"
_SIMPLE_TLS = (
    "{mode: SIMPLE, serverCertificate: /etc/certs/servercert.pem, privateKey: /etc/certs/privatekey.pem}"
)


def istio_gateways(count: int) -> str:
    """Istio's `gateways` case: per i a Gateway (HTTP 80, HTTPS 443 ISTIO_MUTUAL and six SIMPLE
    HTTPS servers on 443, all for three hosts), a VirtualService for those hosts and a ServiceEntry."""
    docs = [_gateway_instance()]
    for i in range(count):
        hosts = _HOSTS3.format(i=i)
        simple = "\n".join(
            f"""  - port: {{number: 443, name: https-simple-{n}, protocol: HTTPS}}
    hosts: {hosts}
    tls: {_SIMPLE_TLS}"""
            for n in range(1, 7)
        )
        docs.append(
            f"""apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: vs-{i}, namespace: gateway}}
spec:
  hosts: {hosts}
  gateways: [gateway/gateway-{i}]
  http:
  - match: [{{uri: {{prefix: /route-{i}}}}}]
    route: [{{destination: {{host: random-{i}.host.example}}}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {{name: gateway-{i}, namespace: gateway}}
spec:
  selector: {{{BENCH_LABEL}: "true"}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: {hosts}
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: {hosts}
    tls: {{mode: ISTIO_MUTUAL}}
{simple}
"""
        )
        docs.append(_se_plain(i))
    docs.append(_gateway_pods())
    return "---\n".join(docs)


def istio_gateways_shared(count: int) -> str:
    """Istio's `gateways-shared` case: one Gateway for three hosts and `count` VirtualServices on
    those hosts, each routing six path prefixes (one big route configuration)."""
    docs = [
        _gateway_instance(),
        f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gateway, namespace: gateway}}
spec:
  selector: {{{BENCH_LABEL}: "true"}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [random-1.host.example, random-2.host.example, random-3.host.example]
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [random-1.host.example, random-2.host.example, random-3.host.example]
    tls: {{mode: ISTIO_MUTUAL}}
""",
    ]
    for i in range(count):
        matches = ", ".join(f"{{uri: {{prefix: /route-{x}-{i}}}}}" for x in "abcdef")
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs-{i}, namespace: gateway}}
spec:
  hosts: [random-1.host.example, random-2.host.example, random-3.host.example]
  gateways: [gateway/gateway]
  http:
  - match: [{matches}]
    route: [{{destination: {{host: random-{i}.host.example}}}}]
"""
        )
        docs.append(_se_plain(i))
    docs.append(_gateway_pods())
    return "---\n".join(docs)


def _gateway_instance() -> str:
    return _proxy_instance([(80, "http", "HTTP"), (443, "https", "HTTPS")], f'{BENCH_LABEL}: "true"')


def _gateway_pods() -> str:
    return _pods("gateway", {"istio": "ingressgateway", BENCH_LABEL: "true"}, "1.1.1.1")


def istio_endpoints(endpoints: int, services: int) -> str:
    """Istio's endpoint grid: `services` STATIC ServiceEntries `foo-<n>.com` with `endpoints`
    addresses each (Istio spreads them over 4 networks; pilotfish has no multi-network yet)."""
    docs = []
    for s in range(services):
        addresses = "\n".join(
            f"  - {{address: 10.{s % 200}.{e // 250}.{e % 250 + 1}, labels: {{app: foo}}}}"
            for e in range(endpoints)
        )
        docs.append(
            f"""apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {{name: foo-{s}, namespace: default}}
spec:
  hosts: [foo-{s}.com]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
{addresses}
"""
        )
    docs.append(_pods("default", {BENCH_LABEL: "true"}, "10.3.3.3"))
    return "---\n".join(docs)


def build(text: str) -> Mesh:
    """The mesh as the discovery server loads it (`MeshLoader`: parsed, built, frozen for the GC)."""
    mesh, diagnostics = MeshLoader().from_texts([("bench.yaml", text)])
    if mesh is None:
        raise SystemExit("\n".join(map(str, diagnostics)))
    return mesh


@dataclass(frozen=True, slots=True)
class Shape:
    """One benchmark case: a name (Istio's), its service count, the manifest text and how to pick
    the first and the Nth proxy of the same shape."""

    name: str
    services: int
    text: Callable[[], str]
    namespace: str = "default"
    deployment: str = ""
    """Measure pods of this Deployment; empty: the `bench-proxy-<n>` pods."""

    def proxies(self, mesh: Mesh) -> tuple[Proxy, Proxy]:
        """The first proxy and a second one of the same shape (same namespace and labels)."""
        if self.deployment:
            pods = [w for w in mesh.workloads if w.deployment == self.deployment][:2]
        else:
            pods = [w for w in (mesh.workload(f"bench-proxy-{n}", self.namespace) for n in (0, 1)) if w]
        assert len(pods) == 2, f"{self.name}: the measured pods are missing"
        return proxy_for_workload(mesh, pods[0]), proxy_for_workload(mesh, pods[1])


def istio_shapes(scale: float = 1.0) -> list[Shape]:
    """Istio's generation cases; `scale` < 1 shrinks every count (for `--quick` and the smoke test)."""

    def n(count: int) -> int:
        return max(1, int(count * scale))

    shapes = [
        Shape("http", n(100), lambda: istio_http(n(100))),
        Shape("tcp", n(100), lambda: istio_tcp(n(100))),
        Shape("virtualservice", n(100), lambda: istio_virtualservice(n(100))),
        Shape("gateways", n(1000), lambda: istio_gateways(n(1000)), namespace="gateway"),
        Shape("gateways-shared", n(1000), lambda: istio_gateways_shared(n(1000)), namespace="gateway"),
    ]
    for endpoints, services in ((1, 100), (10, 10), (100, 10), (1000, 1)):
        shapes.append(
            Shape(
                f"endpoints-{endpoints}/{services}",
                n(services),
                lambda e=endpoints, s=services: istio_endpoints(n(e), n(s)),
            )
        )
    return shapes


def sidecar_1000(count: int = 1000) -> Shape:
    """The issue-2 figure: the full sidecar config for a `count`-service Kubernetes mesh; the
    measured proxies are the two pods of svc-0 (inbound and outbound side, same labels)."""
    return Shape(f"sidecar-{count}", count, lambda: http_services(count), deployment="svc-0")
