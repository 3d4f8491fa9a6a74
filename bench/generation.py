"""Generation tier (no network): Istio's pilot benchmark shapes plus the issue-2 sidecar figure.

For each shape: the mesh build from YAML (Istio's `InitPushContext` plus our YAML parsing), then
for one proxy `ms/op`, `KB/msg` and `resources/msg` per xDS type, as `bench_test.go` reports them:

- caching off ("cold"): the snapshot's memo is emptied before each run, so nothing generated for
  another proxy helps (Istio runs its benchmarks with the XDS cache disabled);
- caching on ("nth"): the memo holds what the first proxy of the same shape left behind, and a
  second pod of the same Deployment/labels is generated: the cost of each further proxy.

An op is "ready to push": the resources built, serialized into their `Any` and content-hashed
(the server needs all three), since Istio's generators also return marshalled resources.

The same process also times a plain protobuf build of the same number of clusters, load
assignments and virtual hosts (the §B4 cost floor), in turns with the sidecar shape's cold op (so
both see the box at the same speed): the ratio to it says how far generation is from what Python
and upb can do at all, independently of how fast this machine is today.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from bench import meshes
from bench.figures import Figure, time_ms, time_pair_ms
from pilotfish.model.mesh import Mesh
from pilotfish.model.proxy import Proxy
from pilotfish.xds.generate import generate, generate_type
from pilotfish.xds.protos import (
    ZERO,
    ads_source,
    cluster_pb2,
    endpoint_pb2,
    pack,
    previous_hosts_pb2,
    route_pb2,
    socket_address,
    u32,
)
from pilotfish.xds.resources import PUSH_ORDER, ProxyResources, ResourceSet, TypeUrl

FIRST_PROXY_TARGET_MS = 50.0
NTH_PROXY_TARGET_MS = 5.0


def ready(resources: Iterable[ResourceSet]) -> None:
    """Make a proxy's config ready to push: every resource serialized and hashed, and each set's
    content version (a SotW response's version) computed. All of it is cached, per resource and
    per (shared) set, so what is left to do is what this proxy really costs."""
    for resource_set in resources:
        resource_set.prepare()


def _restore(mesh: Mesh, keys: set[object]) -> Callable[[], None]:
    """Setup for an "Nth proxy" run: drop what the previous run added to the memo."""

    def setup() -> None:
        for key in [k for k in mesh.memo if k not in keys]:
            del mesh.memo[key]

    return setup


def run_shape(
    shape: meshes.Shape, repeat: int, budget_s: float, baseline: Callable[[], object] | None = None
) -> list[Figure]:
    """The shape's figures; with a `baseline` (the cost floor) its cold op is timed in turns with
    the baseline, and the floor and the ratio to it are figures too."""
    prefix = f"generation.{shape.name}"
    text = shape.text()
    build_ms = time_ms(lambda: meshes.build(text), repeat=max(1, repeat // 2), budget_s=budget_s)
    mesh = meshes.build(text)
    first, second = shape.proxies(mesh)
    figures = [Figure(f"{prefix}.mesh_build", build_ms, "ms")]
    figures += _sizes(prefix, generate(mesh, first))

    cold_op = partial(_ready_all, mesh, first)
    if baseline is None:
        cold = time_ms(cold_op, mesh.memo.clear, repeat, budget_s)
    else:
        cold, floor = time_pair_ms(cold_op, baseline, mesh.memo.clear, repeat, budget_s)
    mesh.memo.clear()
    ready(generate(mesh, first))
    warm_keys = set(mesh.memo)
    nth = time_ms(lambda: ready(generate(mesh, second)), _restore(mesh, warm_keys), repeat, budget_s)
    is_target = shape.name == "sidecar-1000"
    figures.append(
        Figure(f"{prefix}.cold.ms_per_op", cold, "ms", FIRST_PROXY_TARGET_MS if is_target else None)
    )
    figures.append(Figure(f"{prefix}.nth.ms_per_op", nth, "ms", NTH_PROXY_TARGET_MS if is_target else None))
    if baseline is not None:
        figures.append(Figure(f"generation.floor.{shape.name}.ms_per_op", floor, "ms"))
        figures.append(Figure(f"{prefix}.cold.vs_floor", cold / floor, "x"))
    figures += _per_type(prefix, mesh, first, second, warm_keys, repeat, budget_s)
    return figures


def _ready_all(mesh: Mesh, proxy: Proxy) -> None:
    ready(generate(mesh, proxy))


def _sizes(prefix: str, resources: ProxyResources) -> list[Figure]:
    figures = []
    for resource_set in resources:
        short = resource_set.type_url.short
        size = sum(r.size for r in resource_set)
        figures.append(Figure(f"{prefix}.{short}.kb_per_msg", size / 1024, "KB"))
        figures.append(Figure(f"{prefix}.{short}.resources_per_msg", len(resource_set), "resources"))
    return figures


def _per_type(
    prefix: str, mesh: Mesh, first: Proxy, second: Proxy, warm_keys: set[object], repeat: int, budget_s: float
) -> list[Figure]:
    """ms/op per xDS type, each type generated alone after the earlier ones (as Istio's per-type
    benchmarks run after the push context is built): cold for the first proxy, warm for the Nth."""
    figures = []
    for mode, proxy, reset in (("cold", first, mesh.memo.clear), ("nth", second, _restore(mesh, warm_keys))):
        for position, type_url in enumerate(PUSH_ORDER):
            setup = partial(_before_type, mesh, proxy, reset, PUSH_ORDER[:position])
            ms = time_ms(partial(_one_type, mesh, proxy, type_url), setup, repeat, budget_s)
            figures.append(Figure(f"{prefix}.{mode}.{type_url.short}.ms_per_op", ms, "ms"))
    return figures


def _before_type(mesh: Mesh, proxy: Proxy, reset: Callable[[], None], earlier: tuple[TypeUrl, ...]) -> None:
    reset()
    for type_url in earlier:
        generate_type(mesh, proxy, type_url)


def _one_type(mesh: Mesh, proxy: Proxy, type_url: TypeUrl) -> None:
    ready([generate_type(mesh, proxy, type_url)])


# --- the cost floor ------------------------------------------------------------------------------------


def floor_op(services: int) -> Callable[[], int]:
    """Plain protobuf: `services` EDS clusters, one-endpoint load assignments and virtual hosts of
    12 domains with one retrying route, built with constructors and serialized once each."""

    def build() -> int:
        total = 0
        config = route_pb2.RouteConfiguration(name="8080")
        for i in range(services):
            host = f"svc-{i}.default.svc.cluster.local"
            name = f"outbound|8080||{host}"
            cluster = cluster_pb2.Cluster(
                name=name,
                type=cluster_pb2.Cluster.EDS,
                connect_timeout=ZERO,
                eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
                    eds_config=ads_source(), service_name=name
                ),
            )
            cluster.circuit_breakers.thresholds.add(max_retries=u32(1024))
            total += len(pack(cluster).value)
            cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
            cla.endpoints.add().lb_endpoints.add().endpoint.address.CopyFrom(
                socket_address("10.44.0.1", 8080)
            )
            total += len(pack(cla).value)
            vhost = config.virtual_hosts.add(name=f"{host}:8080", domains=[f"{host}{n}" for n in range(12)])
            route = vhost.routes.add(name="default")
            route.match.prefix = "/"
            route.route.cluster = name
            policy = route.route.retry_policy
            policy.retry_on = "connect-failure,refused-stream"
            policy.num_retries.value = 2
            policy.retry_host_predicate.add(
                name="previous_hosts", typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate())
            )
        return total + len(pack(config).value)

    return build


def run(quick: bool, only: str = "") -> list[Figure]:
    """Every shape (or those whose name contains `only`); `quick` shrinks the shapes tenfold and
    runs each op fewer times."""
    scale, repeat, budget = (0.1, 3, 1.0) if quick else (1.0, 7, 8.0)
    shapes = [*meshes.istio_shapes(scale), meshes.sidecar_1000(100 if quick else 1000)]
    shapes = [s for s in shapes if only in s.name]
    figures: list[Figure] = []
    for shape in shapes:
        baseline = floor_op(shape.services) if shape.name.startswith("sidecar-") else None
        figures += run_shape(shape, repeat, budget, baseline)
    return figures
