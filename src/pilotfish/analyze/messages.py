"""The analyzer message catalogue: every code `pilotfish analyze` can print, with its level and text.

Istio's codes, names, levels and templates are used wherever the meaning is the same (Istio's
`pkg/config/analysis/msg/messages.yaml`, vendored under tests/data/conformance/istio-analyze/), so a
user can look a code up in Istio's documentation and scripts that grep for `IST0101` keep working.
Codes `PF....` are pilotfish's own: `PF00xx` come from loading the input (shared with every other
command, see `pilotfish.config.diagnostics`), `PF01xx` from pilotfish-only analyzers.

Templates use `{}` placeholders filled in order. Istio's templates are Go format strings: `%q`
arguments are passed through `quoted()`, `%v` lists through `golist()`, so the text reads the same
as istioctl's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from pilotfish.config import diagnostics as loader
from pilotfish.config.diagnostics import Level


@dataclass(frozen=True, slots=True)
class MessageType:
    code: str
    name: str
    level: Level
    template: str
    description: str

    def format(self, *args: object) -> str:
        return self.template.format(*args)


def quoted(text: str) -> str:
    """Go's `%q` of a string (a double-quoted literal with escapes)."""
    return json.dumps(text, ensure_ascii=False)


def golist(items: Iterable[object]) -> str:
    """Go's `%v` of a slice: `[a b c]`."""
    return "[" + " ".join(str(i) for i in items) + "]"


def _istio(code: str, name: str, level: Level, template: str, description: str) -> MessageType:
    return MessageType(code, name, level, template, description)


E, W, I = Level.ERROR, Level.WARNING, Level.INFO  # noqa: E741 - Istio's three levels, by initial

# --- Istio's codes ---------------------------------------------------------------------------------

INTERNAL_ERROR = _istio(
    "IST0001",
    "InternalError",
    E,
    "Internal error: {}",
    "An analyzer failed: a bug in pilotfish, please report it.",
)
DEPRECATED = _istio(
    "IST0002",
    "Deprecated",
    W,
    "Deprecated: {}",
    "A feature that the configuration is depending on is deprecated.",
)
REFERENCED_RESOURCE_NOT_FOUND = _istio(
    "IST0101",
    "ReferencedResourceNotFound",
    E,
    "Referenced {} not found: {}",
    "A referenced resource does not exist.",
)
SCHEMA_VALIDATION_ERROR = _istio(
    "IST0106",
    "SchemaValidationError",
    E,
    "Schema validation error: {}",
    "The resource has a schema validation error.",
)
CONFLICTING_MESH_GATEWAY_VS_HOSTS = _istio(
    "IST0109",
    "ConflictingMeshGatewayVirtualServiceHosts",
    E,
    "The VirtualServices {} associated with mesh gateway define the same host {} which can lead to undefined "
    "behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
    "Conflicting hosts on VirtualServices associated with the mesh gateway.",
)
CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = _istio(
    "IST0110",
    "ConflictingSidecarWorkloadSelectors",
    E,
    "The Sidecars {} in namespace {} select the same workload pod {}, which can lead to undefined behavior.",
    "A Sidecar resource selects the same workloads as another Sidecar resource.",
)
MULTIPLE_SIDECARS_WITHOUT_SELECTORS = _istio(
    "IST0111",
    "MultipleSidecarsWithoutWorkloadSelectors",
    E,
    "The Sidecars {} in namespace {} have no workload selector, which can lead to undefined behavior.",
    "More than one Sidecar resource in a namespace has no workload selector.",
)
DESTINATION_PORT_SELECTOR_REQUIRED = _istio(
    "IST0112",
    "VirtualServiceDestinationPortSelectorRequired",
    E,
    "This VirtualService routes to a service {} that exposes multiple ports {}. Specifying a port in the "
    "destination is required to disambiguate.",
    "A VirtualService routes to a service with several ports but does not say which one to use.",
)
PORT_NAME_NOT_UNDER_CONVENTION = _istio(
    "IST0118",
    "PortNameIsNotUnderNamingConvention",
    I,
    "Port name {} (port: {}, targetPort: {}) doesn't follow the naming convention of Istio port.",
    "Port name is not under naming convention. Protocol detection is applied to the port.",
)
NO_SERVER_CERT_VERIFICATION_DESTINATION = _istio(
    "IST0128",
    "NoServerCertificateVerificationDestinationLevel",
    W,
    "DestinationRule {} in namespace {} has TLS mode set to {} but no caCertificates are set to validate "
    "server identity for host: {}",
    "No caCertificates are set in DestinationRule, this results in no verification of server identity.",
)
NO_SERVER_CERT_VERIFICATION_PORT = _istio(
    "IST0129",
    "NoServerCertificateVerificationPortLevel",
    W,
    "DestinationRule {} in namespace {} has TLS mode set to {} but no caCertificates are set to validate "
    "server identity for host: {} at port {}",
    "No caCertificates are set in a DestinationRule port-level setting.",
)
VS_UNREACHABLE_RULE = _istio(
    "IST0130",
    "VirtualServiceUnreachableRule",
    W,
    "VirtualService rule {} not used ({}).",
    "A VirtualService rule will never be used because a previous rule uses the same match.",
)
VS_INEFFECTIVE_MATCH = _istio(
    "IST0131",
    "VirtualServiceIneffectiveMatch",
    I,
    "VirtualService rule {} match {} is not used (duplicate/overlapping match in rule {}).",
    "A VirtualService rule match duplicates a match in a previous rule.",
)
VS_HOST_NOT_FOUND_IN_GATEWAY = _istio(
    "IST0132",
    "VirtualServiceHostNotFoundInGateway",
    W,
    "one or more host {} defined in VirtualService {} not found in Gateway {}.",
    "Host defined in VirtualService not found in Gateway.",
)
SERVICE_ENTRY_ADDRESSES_REQUIRED = _istio(
    "IST0134",
    "ServiceEntryAddressesRequired",
    W,
    "ServiceEntry addresses are required for this protocol.",
    "Virtual IP addresses are required for ServiceEntry with TCP (or unset) protocol.",
)
GATEWAY_DUPLICATE_CERTIFICATE = _istio(
    "IST0138",
    "GatewayDuplicateCertificate",
    W,
    "Duplicate certificate in multiple gateways {} may cause 404s if clients re-use HTTP2 connections.",
    "Duplicate certificate in multiple gateways may cause 404s if clients re-use HTTP2 connections.",
)
INGRESS_ROUTE_RULES_NOT_AFFECTED = _istio(
    "IST0140",
    "IngressRouteRulesNotAffected",
    W,
    "Subset in virtual service {} has no effect on ingress gateway {} requests",
    "Route rules have no effect on ingress gateway requests.",
)
CONFLICTING_GATEWAYS = _istio(
    "IST0145",
    "ConflictingGateways",
    E,
    "Conflict with gateways {} (workload selector {}, port {}, hosts {}).",
    "Gateways should not have the same selector, port and matched hosts of server.",
)
JWT_CLAIM_ROUTING_WITHOUT_REQUEST_AUTHN = _istio(
    "IST0149",
    "JwtClaimBasedRoutingWithoutRequestAuthN",
    E,
    "The virtual service uses the JWT claim based routing (key: {}) but found no request authentication for "
    "the gateway ({}) pod ({}). The request authentication must first be applied for the gateway pods to "
    "validate the JWT token and make the claims available for routing.",
    "Virtual service using JWT claim based routing without request authentication.",
)
EXTERNAL_NAME_INVALID_PORT_NAME = _istio(
    "IST0150",
    "ExternalNameServiceTypeInvalidPortName",
    W,
    "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic "
    "for ports serving TCP protocol from being forwarded correctly",
    "Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol.",
)
INVALID_GATEWAY_CREDENTIAL = _istio(
    "IST0161",
    "InvalidGatewayCredential",
    E,
    "The credential referenced by the Gateway {} in namespace {} is invalid, which can cause the traffic "
    "not to work as expected.",
    "Invalid Gateway Credential.",
)
GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = _istio(
    "IST0162",
    "GatewayPortNotDefinedOnService",
    W,
    "The gateway is listening on a target port (port {}) that is not defined in the Service associated with "
    "its workload instances (Pod selector {}). If you need to access the gateway port through the gateway "
    "Service, it will not be available.",
    "Gateway port not exposed by the Service of its workload.",
)
REFERENCED_INTERNAL_GATEWAY = _istio(
    "IST0165",
    "ReferencedInternalGateway",
    W,
    "Gateway reference in VirtualService {} is to an implementation-generated internal Gateway: {}.",
    "VirtualServices should not reference internal Gateways.",
)
INEFFECTIVE_POLICY = _istio(
    "IST0167", "IneffectivePolicy", W, "The policy has no impact: {}.", "The policy applied has no impact."
)
SUBSET_NOT_SELECT_PODS = _istio(
    "IST0173",
    "DestinationRuleSubsetNotSelectPods",
    E,
    "The Subset {} defined in the DestinationRule does not select any pods. Which may lead to 503 UH "
    "(NoHealthyUpstream).",
    "Subsets defined in a DestinationRule select no pods.",
)
UNKNOWN_DESTINATION_RULE_HOST = _istio(
    "IST0174",
    "UnknownDestinationRuleHost",
    W,
    "The host {} defined in the DestinationRule does not match any services in the mesh.",
    "A DestinationRule's host matches no service.",
)
CONFLICTING_SERVICE_ENTRY_PROTOCOL = _istio(
    "IST0177",
    "ConflictingServiceEntryProtocol",
    W,
    "Multiple ServiceEntries ({}) define the same host {} and port {} with conflicting protocols ({}).",
    "ServiceEntries visible to the same namespace give one host and port different protocols.",
)

# --- pilotfish's codes -----------------------------------------------------------------------------

YAML_SYNTAX = MessageType(
    loader.YAML_SYNTAX, "YamlSyntaxError", E, "{}", "A file is not valid YAML (nothing of it is used)."
)
INVALID_DOCUMENT = MessageType(
    loader.INVALID_DOCUMENT, "InvalidDocument", E, "{}", "A document is not a Kubernetes object."
)
UNKNOWN_KIND = MessageType(loader.UNKNOWN_KIND, "UnknownKind", E, "{}", "A kind pilotfish does not know.")
UNSUPPORTED = MessageType(
    loader.UNSUPPORTED,
    "NotSupportedByPilotfish",
    E,
    "{}",
    "Valid Istio config that pilotfish does not implement yet: an error for fields (the object is not "
    "used), a warning for whole kinds (they are ignored).",
)
DUPLICATE = MessageType(
    loader.DUPLICATE, "DuplicateObject", E, "{}", "Two objects of one kind share a namespace and name."
)
VS_HOST_NOT_IN_REGISTRY = MessageType(
    "PF0101",
    "VirtualServiceHostNotInRegistry",
    W,
    "VirtualService host {} matches no service visible from its namespace: sidecars apply it only to "
    "plain HTTP on port 80 (for other ports the VirtualService does nothing).",
    "A mesh VirtualService names a host no Service or ServiceEntry defines (often a typo).",
)
CONFLICTING_DESTINATION_RULES = MessageType(
    "PF0102",
    "ConflictingDestinationRules",
    W,
    "DestinationRules {} in namespace {} all apply to host {}; only {} is used, the others are ignored.",
    "Several DestinationRules for the same host and workloads: pilotfish applies one (as Istio 1.3 did).",
)

CATALOGUE: tuple[MessageType, ...] = (
    INTERNAL_ERROR,
    DEPRECATED,
    REFERENCED_RESOURCE_NOT_FOUND,
    SCHEMA_VALIDATION_ERROR,
    CONFLICTING_MESH_GATEWAY_VS_HOSTS,
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
    MULTIPLE_SIDECARS_WITHOUT_SELECTORS,
    DESTINATION_PORT_SELECTOR_REQUIRED,
    PORT_NAME_NOT_UNDER_CONVENTION,
    NO_SERVER_CERT_VERIFICATION_DESTINATION,
    NO_SERVER_CERT_VERIFICATION_PORT,
    VS_UNREACHABLE_RULE,
    VS_INEFFECTIVE_MATCH,
    VS_HOST_NOT_FOUND_IN_GATEWAY,
    SERVICE_ENTRY_ADDRESSES_REQUIRED,
    GATEWAY_DUPLICATE_CERTIFICATE,
    INGRESS_ROUTE_RULES_NOT_AFFECTED,
    CONFLICTING_GATEWAYS,
    JWT_CLAIM_ROUTING_WITHOUT_REQUEST_AUTHN,
    EXTERNAL_NAME_INVALID_PORT_NAME,
    INVALID_GATEWAY_CREDENTIAL,
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    REFERENCED_INTERNAL_GATEWAY,
    INEFFECTIVE_POLICY,
    SUBSET_NOT_SELECT_PODS,
    UNKNOWN_DESTINATION_RULE_HOST,
    CONFLICTING_SERVICE_ENTRY_PROTOCOL,
    YAML_SYNTAX,
    INVALID_DOCUMENT,
    UNKNOWN_KIND,
    UNSUPPORTED,
    DUPLICATE,
    VS_HOST_NOT_IN_REGISTRY,
    CONFLICTING_DESTINATION_RULES,
)

BY_CODE: dict[str, MessageType] = {m.code: m for m in CATALOGUE}
