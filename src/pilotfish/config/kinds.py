"""The one explicit list of kinds pilotfish reads, with their API versions and models."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from pilotfish.config import istio, k8s
from pilotfish.config.meshconfig import MeshConfig
from pilotfish.config.podstatus import PodStatusReport

ISTIO_NETWORKING = "networking.istio.io"
ISTIO_VERSIONS = ("v1alpha3", "v1beta1", "v1")
PILOTFISH_GROUP = "pilotfish.io"


@dataclass(frozen=True, slots=True)
class KindInfo:
    group: str
    kind: str
    versions: tuple[str, ...]
    model: type[BaseModel]
    namespaced: bool = True
    spec_only: bool = False
    """True for Istio-style kinds whose model validates `spec`; False for Kubernetes kinds whose model
    validates the whole object except apiVersion/kind/metadata."""


KINDS: tuple[KindInfo, ...] = (
    KindInfo("", "Namespace", ("v1",), k8s.Namespace, namespaced=False),
    KindInfo("", "Service", ("v1",), k8s.Service),
    KindInfo("", "Endpoints", ("v1",), k8s.Endpoints),
    KindInfo("", "Pod", ("v1",), k8s.Pod),
    KindInfo("", "ServiceAccount", ("v1",), k8s.ServiceAccount),
    KindInfo("", "ConfigMap", ("v1",), k8s.ConfigMap),
    KindInfo("apps", "Deployment", ("v1",), k8s.Deployment),
    KindInfo(ISTIO_NETWORKING, "Gateway", ISTIO_VERSIONS, istio.GatewaySpec, spec_only=True),
    KindInfo(ISTIO_NETWORKING, "VirtualService", ISTIO_VERSIONS, istio.VirtualServiceSpec, spec_only=True),
    KindInfo(ISTIO_NETWORKING, "DestinationRule", ISTIO_VERSIONS, istio.DestinationRuleSpec, spec_only=True),
    KindInfo(ISTIO_NETWORKING, "ServiceEntry", ISTIO_VERSIONS, istio.ServiceEntrySpec, spec_only=True),
    KindInfo(ISTIO_NETWORKING, "Sidecar", ISTIO_VERSIONS, istio.SidecarSpec, spec_only=True),
    KindInfo(PILOTFISH_GROUP, "MeshConfig", ("v1alpha1",), MeshConfig, namespaced=False, spec_only=True),
    KindInfo(PILOTFISH_GROUP, "PodStatus", ("v1alpha1",), PodStatusReport),
)

BY_GROUP_KIND: dict[tuple[str, str], KindInfo] = {(k.group, k.kind): k for k in KINDS}

# Kinds we recognise but do not implement: skipped with a warning instead of "unknown kind".
KNOWN_UNSUPPORTED: frozenset[tuple[str, str]] = frozenset(
    {
        (ISTIO_NETWORKING, "EnvoyFilter"),
        (ISTIO_NETWORKING, "WorkloadEntry"),
        (ISTIO_NETWORKING, "WorkloadGroup"),
        (ISTIO_NETWORKING, "ProxyConfig"),
        ("security.istio.io", "AuthorizationPolicy"),
        ("security.istio.io", "PeerAuthentication"),
        ("security.istio.io", "RequestAuthentication"),
        ("telemetry.istio.io", "Telemetry"),
        ("extensions.istio.io", "WasmPlugin"),
        ("gateway.networking.k8s.io", "Gateway"),
        ("gateway.networking.k8s.io", "GatewayClass"),
        ("gateway.networking.k8s.io", "HTTPRoute"),
        ("gateway.networking.k8s.io", "GRPCRoute"),
        ("gateway.networking.k8s.io", "TCPRoute"),
        ("gateway.networking.k8s.io", "TLSRoute"),
        ("gateway.networking.k8s.io", "ReferenceGrant"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("", "Secret"),
        ("", "Node"),
        ("networking.k8s.io", "Ingress"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
    }
)


def split_api_version(api_version: str) -> tuple[str, str]:
    """`networking.istio.io/v1` -> (`networking.istio.io`, `v1`); `v1` -> (``, `v1`)."""
    group, slash, version = api_version.rpartition("/")
    return (group, version) if slash else ("", api_version)
