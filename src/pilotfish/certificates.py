"""The few X.509 facts pilotfish reads from certificates (via `cryptography`, a chosen part).

`proxy-config secret` shows serial number, validity window, whether a certificate is a CA and the
SPIFFE trust domain of trust bundles; `analyze` checks that a gateway credential holds a certificate
valid now. Parsing bytes is pure: both the inspect and the analyze core use this module.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning


class CertificateError(ValueError):
    """The bytes are not a PEM/DER certificate."""


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


def _info(certificate: x509.Certificate) -> CertificateInfo:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(names.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        uris = ()
    return CertificateInfo(
        certificate.serial_number,
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
        is_ca,
        uris,
    )


@contextlib.contextmanager
def _lenient() -> Iterator[None]:
    """Certificates in the wild (and in Istio's test data) have serial 0, which RFC 5280 forbids and
    `cryptography` warns about; we only read them, so the warning is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def pem_certificates(pem: bytes) -> list[CertificateInfo]:
    """Every certificate of a PEM bundle, in order."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise CertificateError("no PEM CERTIFICATE block")
    try:
        with _lenient():
            return [_info(c) for c in x509.load_pem_x509_certificates(pem)]
    except ValueError as exc:
        raise CertificateError(f"not a readable certificate: {exc}") from None


def der_certificate(der: bytes) -> CertificateInfo:
    try:
        with _lenient():
            return _info(x509.load_der_x509_certificate(der))
    except ValueError as exc:
        raise CertificateError(f"not a DER certificate: {exc}") from None


def certificate_problem(pem: bytes, now: datetime) -> str:
    """Why `pem` is not a certificate valid at `now`; "" when it is."""
    try:
        first = pem_certificates(pem)[0]
    except CertificateError as exc:
        return str(exc)
    if now < first.not_before:
        return f"not valid before {first.not_before:%Y-%m-%d %H:%M:%S} UTC"
    if now > first.not_after:
        return f"expired at {first.not_after:%Y-%m-%d %H:%M:%S} UTC"
    return ""
