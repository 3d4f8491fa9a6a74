"""`proxy-config secret` (modern istioctl): the SDS secrets an Envoy holds and their certificates.

One row per secret, warming ones first: `RESOURCE NAME TYPE STATUS VALID CERT SERIAL NUMBER NOT AFTER
NOT BEFORE`. TYPE is `CA` or `Cert Chain` from the first certificate's basic constraints; VALID CERT
compares the validity window with `now` (a parameter, so the core stays free of clocks). When a secret
validates with SPIFFE trust bundles (SPIRE) there is one row per trust domain and a TRUST DOMAIN column,
filled for certificate chains from their `spiffe://<domain>/...` SAN.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime

from pilotfish.certificates import CertificateError, pem_certificates
from pilotfish.inspect.configdump import ConfigDump, JsonObject, get, get_list, get_obj
from pilotfish.inspect.protojson import normalize
from pilotfish.inspect.tabwriter import tabulate

SECRETS_CONFIG_DUMP_TYPE = "envoy.admin.v3.SecretsConfigDump"
NO_SECRETS = "No active or warming secrets found.\n"


@dataclass(frozen=True)
class SecretRow:
    name: str
    type: str = ""
    status: str = ""
    valid: bool = False
    serial: str = ""
    not_after: str = ""
    not_before: str = ""
    trust_domain: str = ""


def rows(dump: ConfigDump, now: datetime) -> tuple[list[SecretRow], bool]:
    """The secret rows and whether any secret uses SPIFFE trust domains (adds a column)."""
    warming, active = dump.secrets()
    out: list[SecretRow] = []
    spiffe = False
    for wrapper, state in [(w, "WARMING") for w in warming] + [(a, "ACTIVE") for a in active]:
        if state == "ACTIVE" and get(wrapper, "version_info") == "uninitialized":
            state = "UNINITIALIZED"
        name = str(get(wrapper, "name", ""))
        secret = get_obj(wrapper, "secret")
        chain = _data_source(get_obj(get_obj(secret, "tls_certificate"), "certificate_chain"))
        validation = get_obj(secret, "validation_context")
        trust_domains = get_list(
            get_obj(get_obj(validation, "custom_validator_config"), "typed_config"), "trust_domains"
        )
        if chain:
            out.append(_row(name, state, chain, now, spiffe_san=True))
        elif trust_domains:
            spiffe = True
            for domain in trust_domains:
                bundle = _data_source(get_obj(domain, "trust_bundle"))
                out.append(_row(name, state, bundle, now, trust_domain=str(get(domain, "name", ""))))
        else:
            out.append(_row(name, state, _data_source(get_obj(validation, "trusted_ca")), now))
    if not spiffe:
        out = [replace(r, trust_domain="") for r in out]
    return out, spiffe


def summary(dump: ConfigDump, now: datetime, *, name_column: bool = False) -> str:
    warming, active = dump.secrets()
    if not warming and not active:
        return NO_SECRETS
    secret_rows, spiffe = rows(dump, now)
    header = ["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE"]
    table = [header + (["TRUST DOMAIN"] if spiffe else [])]
    for row in secret_rows:
        cells = [
            f"secret/{row.name}" if name_column else row.name,
            row.type,
            row.status,
            "true" if row.valid else "false",
            row.serial,
            row.not_after,
            row.not_before,
        ]
        table.append(cells + ([row.trust_domain] if spiffe else []))
    return tabulate(table, padding=5)


def dump_object(dump: ConfigDump) -> JsonObject:
    return normalize(dump.secrets_section(), SECRETS_CONFIG_DUMP_TYPE)


def _row(
    name: str, state: str, pem: str, now: datetime, *, spiffe_san: bool = False, trust_domain: str = ""
) -> SecretRow:
    if not pem:
        return SecretRow(name=name, status=state)
    try:
        cert = pem_certificates(pem.encode())[0]
    except CertificateError:
        return SecretRow(name=name, status=state)
    return SecretRow(
        name=name,
        type="CA" if cert.is_ca else "Cert Chain",
        status=state,
        valid=cert.valid_at(now),
        serial=cert.serial_hex,
        not_after=_rfc3339(cert.not_after),
        not_before=_rfc3339(cert.not_before),
        trust_domain=cert.spiffe_trust_domain() if spiffe_san else trust_domain,
    )


def _data_source(source: JsonObject) -> str:
    """The PEM text of an Envoy DataSource (`inline_bytes` is base64 in JSON, `inline_string` is text)."""
    inline_bytes = get(source, "inline_bytes")
    if isinstance(inline_bytes, str) and inline_bytes:
        try:
            return base64.b64decode(inline_bytes).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            return ""
    inline_string = get(source, "inline_string")
    return inline_string if isinstance(inline_string, str) else ""


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
