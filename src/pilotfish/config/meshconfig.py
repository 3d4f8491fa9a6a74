"""Mesh-wide settings: Istio's MeshConfig (the subset pilotfish implements) plus pilotfish's profile.

Sources, in order of precedence (the last one found wins, with a warning when there are several):
a `kind: MeshConfig` document (apiVersion `pilotfish.io/v1alpha1`, fields under `spec`), or the
`istio` ConfigMap in `istio-system` whose `mesh` key holds MeshConfig YAML, as Istio reads it.
Absent fields take Istio's defaults (helm defaults of the seed's 1.3 install where they differ
from code defaults, e.g. connectTimeout 10s).

pilotfish extensions (not in Istio's MeshConfig): `profile` ("1.3" = the seed's behaviour, default;
"modern" = current Istio naming/defaults) and `domainSuffix` (Istio's `--domain` flag).
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import Field

from pilotfish.config.istio import OutboundTrafficPolicy
from pilotfish.config.types import Duration, DurationField, Lax, Lenient, Strict


class Profile(enum.StrEnum):
    ISTIO_1_3 = "1.3"
    MODERN = "modern"


class AccessLogEncoding(enum.StrEnum):
    TEXT = "TEXT"
    JSON = "JSON"


class ProxyConfig(Lenient):
    """`defaultConfig`: per-proxy settings. Read by the agent; kept as given."""

    proxy_metadata: dict[str, str] = Field(default_factory=dict)
    concurrency: int | None = None


class MeshConfig(Strict):
    outbound_traffic_policy: OutboundTrafficPolicy = Field(default_factory=OutboundTrafficPolicy)
    connect_timeout: DurationField = Field(default_factory=lambda: Duration(10 * 10**9))
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    access_log_file: str = ""
    access_log_encoding: Annotated[AccessLogEncoding, Lax] = AccessLogEncoding.TEXT
    access_log_format: str = ""
    enable_tracing: bool = False
    protocol_detection_timeout: DurationField = Field(default_factory=lambda: Duration(100_000_000))
    ingress_service: str = "istio-ingressgateway"
    ingress_controller_mode: str = "STRICT"
    ingress_class: str = "istio"
    ingress_selector: str = "ingressgateway"
    enable_auto_mtls: bool = False
    default_config: ProxyConfig = Field(default_factory=ProxyConfig)
    # pilotfish extensions
    profile: Annotated[Profile, Lax] = Profile.ISTIO_1_3
    domain_suffix: str = "cluster.local"


DEFAULT_MESH_CONFIG = MeshConfig()

# Top-level MeshConfig fields of Istio that pilotfish does not implement: reported as "not supported
# yet" rather than as unknown fields.
ISTIO_MESH_FIELDS: frozenset[str] = frozenset(
    {
        "accessLogFile",
        "accessLogFormat",
        "accessLogEncoding",
        "enableEnvoyAccessLogService",
        "enableTracing",
        "defaultConfig",
        "outboundTrafficPolicy",
        "inboundTrafficPolicy",
        "connectTimeout",
        "tcpKeepalive",
        "ingressClass",
        "ingressService",
        "ingressControllerMode",
        "ingressSelector",
        "enableAutoMtls",
        "trustDomain",
        "trustDomainAliases",
        "rootNamespace",
        "localityLbSetting",
        "dnsRefreshRate",
        "h2UpgradePolicy",
        "protocolDetectionTimeout",
        "defaultServiceExportTo",
        "defaultVirtualServiceExportTo",
        "defaultDestinationRuleExportTo",
        "outboundClusterStatName",
        "inboundClusterStatName",
        "configSources",
        "certificates",
        "serviceSettings",
        "extensionProviders",
        "defaultProviders",
        "discoverySelectors",
        "pathNormalization",
        "defaultHttpRetryPolicy",
        "meshMTLS",
        "tlsDefaults",
        "caCertificates",
        "proxyListenPort",
        "proxyInboundListenPort",
        "proxyHttpPort",
        "mixerCheckServer",
        "mixerReportServer",
        "disablePolicyChecks",
        "policyCheckFailOpen",
        "sidecarToTelemetrySessionAffinity",
        "sdsUdsPath",
        "enablePrometheusMerge",
        "verifyCertificateAtClient",
        "ca",
        "meshNetworks",
        "thriftConfig",
        "serviceAwareness",
        "enableSdsTokenMount",
        "sdsUseK8sSaJwt",
        "reportBatchMaxEntries",
        "reportBatchMaxTime",
        "rbacSettings",
    }
)
