"""Read the few X.509 facts the secret table shows, from PEM text, with a minimal DER reader.

`proxy-config secret` prints each certificate's serial number, validity window, whether it is a CA and
(for SPIFFE trust bundles) its trust domain. Those fields sit at fixed places in the DER structure
(RFC 5280: TBSCertificate = version, serial, signature algorithm, issuer, validity, subject, key,
extensions), so walking the TLV encoding is enough; no signature checking or crypto is needed, which keeps
the pure core free of a cryptography dependency.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

_SEQUENCE = 0x30
_INTEGER = 0x02
_BOOLEAN = 0x01
_OID = 0x06
_OCTET_STRING = 0x04
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_EXPLICIT_0 = 0xA0
_EXPLICIT_3 = 0xA3
_SAN_URI = 0x86

_BASIC_CONSTRAINTS = "2.5.29.19"
_SUBJECT_ALT_NAME = "2.5.29.17"


class CertificateError(ValueError):
    """The bytes are not a PEM certificate we can read."""


@dataclass(frozen=True)
class CertificateInfo:
    serial_number: int
    not_before: datetime
    not_after: datetime
    is_ca: bool
    uris: tuple[str, ...]

    @property
    def serial_hex(self) -> str:
        """Hex of the serial's minimal big-endian bytes (Go's `hex.EncodeToString(serial.Bytes())`)."""
        magnitude = abs(self.serial_number)
        return magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big").hex()

    def valid_at(self, now: datetime) -> bool:
        return self.not_before < now < self.not_after

    def spiffe_trust_domain(self) -> str:
        for uri in self.uris:
            if uri.startswith("spiffe://"):
                return uri[len("spiffe://") :].split("/", 1)[0]
        return ""


def first_pem_certificate(pem: str) -> bytes:
    """DER bytes of the first `CERTIFICATE` block of a PEM bundle."""
    begin = "-----BEGIN CERTIFICATE-----"
    start = pem.find(begin)
    end = pem.find("-----END CERTIFICATE-----", start + 1)
    if start < 0 or end < 0:
        raise CertificateError("no PEM certificate block")
    try:
        return base64.b64decode("".join(pem[start + len(begin) : end].split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CertificateError(f"bad PEM base64: {exc}") from exc


def parse_certificate(der: bytes) -> CertificateInfo:
    try:
        return _parse(der)
    except (IndexError, ValueError) as exc:
        raise CertificateError(f"not a DER certificate: {exc}") from exc


def _parse(der: bytes) -> CertificateInfo:
    tag, certificate, _ = _read(der, 0)
    _expect(tag, _SEQUENCE)
    tag, tbs, _ = _read(certificate, 0)
    _expect(tag, _SEQUENCE)
    items = _children(tbs)
    if items and items[0][0] == _EXPLICIT_0:  # version
        items = items[1:]
    _expect(items[0][0], _INTEGER)
    serial = int.from_bytes(items[0][1], "big", signed=True)
    validity = _children(items[3][1])
    not_before, not_after = _time(*validity[0]), _time(*validity[1])
    is_ca = False
    uris: list[str] = []
    for tag, body in items[6:]:
        if tag != _EXPLICIT_3:
            continue
        for _, extension in _children(_children(body)[0][1]):
            parts = _children(extension)
            oid = _oid(parts[0][1])
            value = parts[-1][1]
            if oid == _BASIC_CONSTRAINTS:
                constraints = _children(_read(value, 0)[1])
                is_ca = bool(constraints) and constraints[0][0] == _BOOLEAN and constraints[0][1] != b"\x00"
            elif oid == _SUBJECT_ALT_NAME:
                uris += [
                    name.decode("ascii", "replace")
                    for t, name in _children(_read(value, 0)[1])
                    if t == _SAN_URI
                ]
    return CertificateInfo(serial, not_before, not_after, is_ca, tuple(uris))


def _read(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """One TLV at `offset`: (tag, contents, offset after it)."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported length encoding")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise ValueError("truncated element")
    return tag, data[offset:end], end


def _children(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        tag, contents, offset = _read(data, offset)
        out.append((tag, contents))
    return out


def _expect(tag: int, wanted: int) -> None:
    if tag != wanted:
        raise ValueError(f"expected tag 0x{wanted:02x}, found 0x{tag:02x}")


def _oid(data: bytes) -> str:
    parts = [data[0] // 40, data[0] % 40]
    value = 0
    for byte in data[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _time(tag: int, data: bytes) -> datetime:
    text = data.decode("ascii")
    if tag == _UTC_TIME:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError("validity time has an unknown type")
    return datetime.strptime(text.rstrip("Z"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
