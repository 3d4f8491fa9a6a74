"""Models of the Kubernetes kinds pilotfish reads: Namespace, Service, Endpoints, Pod, Deployment,
ServiceAccount, ConfigMap.

The fields the mesh uses are typed strictly and unknown fields there are errors (a typo in a
Service port must not pass). Pod and container specs carry many fields that matter only to a real
kubelet (resources, volumes, securityContext...): those two levels accept and ignore other fields.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from pilotfish.config.types import Labels, Lenient, PortNumber, Strict


class OwnerReference(Lenient):
    kind: str = ""
    name: str = ""


class ObjectMeta(Strict):
    name: str = Field(default="", max_length=253)
    generate_name: str = ""
    namespace: str = ""
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)
    uid: str = ""
    resource_version: str = ""
    generation: int | None = None
    creation_timestamp: Any = None
    deletion_timestamp: Any = None
    owner_references: list[OwnerReference] = Field(default_factory=list)
    finalizers: list[str] = Field(default_factory=list)
    managed_fields: list[Any] = Field(default_factory=list)
    self_link: str = ""


# --- Service --------------------------------------------------------------------------------------


class ServicePort(Strict):
    name: str = ""
    port: PortNumber
    target_port: PortNumber | str | None = None
    protocol: str = "TCP"
    app_protocol: str = ""
    node_port: int | None = None

    @model_validator(mode="after")
    def _protocol(self) -> Self:
        if self.protocol not in ("TCP", "UDP", "SCTP"):
            raise ValueError(f"protocol {self.protocol!r} must be TCP, UDP or SCTP")
        return self


class ServiceSpec(Strict):
    ports: list[ServicePort] = Field(default_factory=list)
    selector: Labels | None = None
    cluster_ip: str = Field(default="", alias="clusterIP")
    cluster_ips: list[str] = Field(default_factory=list, alias="clusterIPs")
    type: str = "ClusterIP"
    external_name: str = ""
    external_ips: list[str] = Field(default_factory=list, alias="externalIPs")
    session_affinity: str = ""
    session_affinity_config: Any = None
    publish_not_ready_addresses: bool = False
    ip_families: list[str] = Field(default_factory=list)
    ip_family_policy: str = ""
    internal_traffic_policy: str = ""
    external_traffic_policy: str = ""
    load_balancer_ip: str = Field(default="", alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] = Field(default_factory=list)
    load_balancer_class: str = ""
    allocate_load_balancer_node_ports: bool | None = None
    health_check_node_port: int | None = None
    traffic_distribution: str = ""

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.type not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            raise ValueError(f"type {self.type!r} must be ClusterIP, NodePort, LoadBalancer or ExternalName")
        if self.type == "ExternalName" and not self.external_name:
            raise ValueError("type ExternalName needs externalName")
        if len(self.ports) > 1 and any(not p.name for p in self.ports):
            raise ValueError("ports: every port must have a name when there is more than one")
        names = [p.name for p in self.ports]
        if len(names) != len(set(names)):
            raise ValueError("ports: port names must be unique")
        return self


class Service(Strict):
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: Any = None


# --- Endpoints ------------------------------------------------------------------------------------


class EndpointAddress(Strict):
    ip: str
    hostname: str = ""
    node_name: str = ""
    target_ref: Any = None


class EndpointPort(Strict):
    name: str = ""
    port: PortNumber
    protocol: str = "TCP"
    app_protocol: str = ""


class EndpointSubset(Strict):
    addresses: list[EndpointAddress] = Field(default_factory=list)
    not_ready_addresses: list[EndpointAddress] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)


class Endpoints(Strict):
    subsets: list[EndpointSubset] = Field(default_factory=list)


# --- Pods and Deployments ---------------------------------------------------------------------------


class ContainerPort(Strict):
    container_port: PortNumber
    name: str = ""
    protocol: str = "TCP"
    host_port: int | None = None
    host_ip: str = Field(default="", alias="hostIP")


class EnvVar(Strict):
    name: str = Field(min_length=1)
    value: str = ""
    value_from: Any = None


class Probe(Lenient):
    http_get: Any = None
    tcp_socket: Any = None


class Container(Lenient):
    name: str = Field(min_length=1)
    image: str = ""
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    working_dir: str = ""
    env: list[EnvVar] = Field(default_factory=list)
    ports: list[ContainerPort] = Field(default_factory=list)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None


class PodSpec(Lenient):
    containers: list[Container] = Field(min_length=1)
    init_containers: list[Container] = Field(default_factory=list)
    service_account_name: str = ""
    service_account: str = ""
    host_network: bool = False


POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


class PodCondition(Strict):
    """One entry of a pod's `status.conditions` (`Ready`, `ContainersReady`, `PodScheduled`, ...)."""

    type: str = Field(min_length=1)
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_probe_time: Any = None
    last_transition_time: Any = None
    observed_generation: int | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f'must be the string "{value}" (quote it: YAML reads bare true/false '
                             "as booleans)")
        return value


def check_phase(phase: str) -> str:
    if phase and phase not in POD_PHASES:
        raise ValueError(f"phase {phase!r} must be one of {', '.join(POD_PHASES)}")
    return phase


def pod_ready(phase: str, conditions: list[PodCondition]) -> bool:
    """Kubernetes' rule (`IsPodReady`, used by the endpoints controller): ready when the `Ready`
    condition is "True". A pod whose status reports nothing (no phase, no conditions) counts as
    ready: manifests describe a running mesh and nothing probes it (`config.podstatus`)."""
    if phase and phase != "Running":
        return False
    if not conditions:
        return True
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


class PodStatus(Lenient):
    """A Pod's `status` as `kubectl get pod -o yaml` shows it; the mesh reads the address and readiness."""

    pod_ip: str = Field(default="", alias="podIP")
    phase: str = ""
    conditions: list[PodCondition] = Field(default_factory=list)

    @field_validator("phase")
    @classmethod
    def _phase(cls, value: str) -> str:
        return check_phase(value)

    @property
    def ready(self) -> bool:
        return pod_ready(self.phase, self.conditions)


class Pod(Strict):
    spec: PodSpec
    status: PodStatus | None = None


class LabelSelector(Strict):
    match_labels: Labels = Field(default_factory=dict)
    match_expressions: list[Any] = Field(default_factory=list)


class PodTemplate(Strict):
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec


class DeploymentSpec(Strict):
    replicas: int = Field(default=1, ge=0, le=1000)
    selector: LabelSelector | None = None
    template: PodTemplate
    strategy: Any = None
    min_ready_seconds: int | None = None
    revision_history_limit: int | None = None
    progress_deadline_seconds: int | None = None
    paused: bool = False

    @model_validator(mode="after")
    def _selector(self) -> Self:
        if self.selector is not None:
            labels = self.template.metadata.labels
            missing = {k: v for k, v in self.selector.match_labels.items() if labels.get(k) != v}
            if missing:
                raise ValueError(f"selector.matchLabels {missing} do not match template.metadata.labels")
        return self


class Deployment(Strict):
    spec: DeploymentSpec
    status: Any = None


# --- the rest -------------------------------------------------------------------------------------


class Namespace(Strict):
    spec: Any = None
    status: Any = None


class ServiceAccount(Lenient):
    """Accepted and unused (identities come from the pod's serviceAccountName)."""


class ConfigMap(Strict):
    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] = Field(default_factory=dict)
    immutable: bool | None = None
