"""The processor's key (BEY-6, OpenDSR reference §6): an RSA key and a self-signed X.509
certificate that sign erasure receipts and the `X-OpenDSR-Signature` of status callbacks.
`GET /v3/discovery` hands out the certificate, so a controller (or an audit, offline)
checks a signature with it alone.

The key and certificate are kept together as one PEM bundle (private key, then
certificate) where the composition root says: a file (`[privacy] processor_key_file`), or
else the store, made by the first process that needs it, so that every process sharing
the store signs with the same key. Rotation replaces the bundle and keeps the old
certificate among the `retired` ones, so receipts signed before still verify.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import threading
from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from kindred.domain.errors import ConfigError

__all__ = [
    "ProcessorKey",
    "Signer",
    "certificate_fingerprint",
    "generate_bundle",
    "split_certificates",
    "verify_signature",
]

_KEY_BITS = 2048
_VALID_DAYS = 3650
_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"


def generate_bundle(common_name: str, now: datetime.datetime | None = None) -> bytes:
    """A new RSA key and a self-signed certificate for it, as one PEM bundle."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = now or datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - datetime.timedelta(minutes=5))
        .not_valid_after(start + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private + certificate.public_bytes(serialization.Encoding.PEM)


def split_certificates(pem: bytes | str) -> list[str]:
    """Each certificate of a PEM text, as PEM."""
    data = pem.encode() if isinstance(pem, str) else pem
    parts = data.split(_CERT_BEGIN)[1:]
    return [(_CERT_BEGIN + part).decode().strip() + "\n" for part in parts]


def certificate_fingerprint(certificate_pem: str) -> str:
    """SHA-256 (hex) of the certificate's DER form."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def verify_signature(certificate_pem: str, data: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` is the RSA-SHA256 (PKCS#1 v1.5) signature of `data` by the
    certificate's key."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        public = certificate.public_key()
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return False
    if not isinstance(public, rsa.RSAPublicKey):
        return False
    try:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _signature(key: rsa.RSAPrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode()


class Signer:
    """A processor key loaded (see `ProcessorKey.signer`): signs in memory."""

    def __init__(self, key: rsa.RSAPrivateKey, certificate: str) -> None:
        self._key = key
        self.certificate = certificate
        self.fingerprint = certificate_fingerprint(certificate)

    def sign(self, data: bytes) -> str:
        """As `ProcessorKey.sign`."""
        return _signature(self._key, data)


class ProcessorKey:
    """Signs with the processor's key; its certificate for discovery and receipts."""

    def __init__(
        self,
        load: Callable[[], bytes],
        *,
        retired: Callable[[], bytes] | None = None,
        rotate: Callable[[], None] | None = None,
        where: str = "the store",
    ) -> None:
        """`load`: the PEM bundle (made on first use by whoever keeps it); `retired`: the
        certificates of keys rotated out (PEM, concatenated); `rotate`: replace the key."""
        self._load = load
        self._retired = retired or (lambda: b"")
        self._rotate = rotate
        self.where = where
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None
        self._certificate = ""

    def _loaded(self) -> tuple[rsa.RSAPrivateKey, str]:
        with self._lock:
            if self._key is None:
                bundle = self._load()
                try:
                    key = serialization.load_pem_private_key(bundle, password=None)
                except ValueError as exc:
                    raise ConfigError(f"the processor key ({self.where}): {exc}") from None
                certificates = split_certificates(bundle)
                if not isinstance(key, rsa.RSAPrivateKey) or not certificates:
                    raise ConfigError(
                        f"the processor key ({self.where}) must hold an RSA key and its"
                        " certificate (PEM)"
                    )
                self._key, self._certificate = key, certificates[0]
            return self._key, self._certificate

    @property
    def certificate(self) -> str:
        """The certificate (PEM) of the key in use."""
        return self._loaded()[1]

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate)

    def sign(self, data: bytes) -> str:
        """Base64 of the RSA-SHA256 (PKCS#1 v1.5) signature of `data`."""
        key, _ = self._loaded()
        return _signature(key, data)

    def signer(self) -> Signer:
        """The key in use, loaded now: it signs later without reading where the key is
        kept (inside a store transaction, which that read could wait for), even if the key
        is rotated meanwhile."""
        key, certificate = self._loaded()
        return Signer(key, certificate)

    def trusted(self) -> dict[str, str]:
        """The certificates receipts may be signed with, by fingerprint: the current one
        and those of keys rotated out."""
        found = {self.fingerprint: self.certificate}
        for pem in split_certificates(self._retired()):
            found[certificate_fingerprint(pem)] = pem
        return found

    def rotate(self) -> str:
        """A new key and certificate (the old certificate kept as retired); the new
        certificate's fingerprint."""
        if self._rotate is None:
            raise ConfigError(f"the processor key comes from {self.where}: replace it there")
        self._rotate()
        with self._lock:
            self._key = None
        return self.fingerprint
