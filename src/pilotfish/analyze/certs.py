"""Just enough X.509 reading to tell whether a Secret holds a usable certificate, and until when.

The gateway credential check needs: is there a PEM certificate, does it parse as DER, and is `now`
inside its validity. Python's standard library has no public X.509 parser and no dependency of
pilotfish provides one, so this walks the DER structure up to the `validity` field (RFC 5280
4.1: Certificate -> tbsCertificate -> [version] serialNumber signature issuer validity).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)
_SEQUENCE, _INTEGER, _EXPLICIT_0 = 0x30, 0x02, 0xA0
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18


class CertificateError(ValueError):
    """The bytes are not a certificate pilotfish can read."""


def pem_certificates(data: bytes) -> list[bytes]:
    """The DER bytes of every PEM `CERTIFICATE` block."""
    result = []
    for block in _PEM.findall(data):
        try:
            result.append(base64.b64decode(b"".join(block.split()), validate=True))
        except binascii.Error as exc:
            raise CertificateError(f"bad base64 in PEM block: {exc}") from None
    return result


def validity(der: bytes) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of a DER certificate."""
    tag, certificate, _ = _read(der, 0)
    _expect(tag, _SEQUENCE, "Certificate")
    tag, tbs, _ = _read(certificate, 0)
    _expect(tag, _SEQUENCE, "tbsCertificate")
    pos = 0
    tag, _, end = _read(tbs, pos)
    if tag == _EXPLICIT_0:  # version
        pos = end
        tag, _, end = _read(tbs, pos)
    _expect(tag, _INTEGER, "serialNumber")
    for name in ("signature", "issuer"):
        tag, _, pos = _read(tbs, end)
        _expect(tag, _SEQUENCE, name)
        end = pos
    tag, times, _ = _read(tbs, end)
    _expect(tag, _SEQUENCE, "validity")
    tag, not_before, end = _read(times, 0)
    before = _time(tag, not_before)
    tag, not_after, _ = _read(times, end)
    return before, _time(tag, not_after)


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER TLV at `pos`: (tag, content, position after it)."""
    if pos + 2 > len(data):
        raise CertificateError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise CertificateError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise CertificateError("truncated DER")
    return tag, data[pos : pos + length], pos + length


def _expect(tag: int, wanted: int, what: str) -> None:
    if tag != wanted:
        raise CertificateError(f"{what}: unexpected DER tag 0x{tag:02x}")


def _time(tag: int, content: bytes) -> datetime:
    try:
        value = content.decode("ascii")
        if tag == _UTC_TIME:  # RFC 5280: YY >= 50 is 19YY, else 20YY
            century = "19" if int(value[:2]) >= 50 else "20"
            parsed = datetime.strptime(century + value, "%Y%m%d%H%M%SZ")
        elif tag == _GENERALIZED_TIME:
            parsed = datetime.strptime(value, "%Y%m%d%H%M%SZ")
        else:
            raise CertificateError(f"validity: unexpected DER tag 0x{tag:02x}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CertificateError(f"bad certificate time: {exc}") from None
    return parsed.replace(tzinfo=UTC)


def certificate_problem(pem: bytes, now: datetime) -> str:
    """Why `pem` is not a certificate valid at `now`; "" when it is."""
    try:
        blocks = pem_certificates(pem)
        if not blocks:
            return "no PEM CERTIFICATE block"
        not_before, not_after = validity(blocks[0])
    except CertificateError as exc:
        return str(exc)
    if now < not_before:
        return f"not valid before {not_before:%Y-%m-%d %H:%M:%S} UTC"
    if now > not_after:
        return f"expired at {not_after:%Y-%m-%d %H:%M:%S} UTC"
    return ""
