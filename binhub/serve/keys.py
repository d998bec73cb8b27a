"""The server's key material: the TLS certificate and the caching_sha2 RSA key pair.

* TLS: the configured ``tls_cert``/``tls_key``, or a self-signed pair generated once (like
  ``mysqld --auto-generate-certs``) and kept in the key directory, so replicas that use
  ``MASTER_SSL=1`` without verification work out of the box.
* RSA: caching_sha2_password's full authentication without TLS encrypts the password with the
  server's public key (``caching_sha2_password_auto_generate_rsa_keys``); the pair is generated
  once and kept, so clients that pinned the public key keep working across restarts.

Private keys are created with mode 0600 (:func:`binhub.store.fsutil.atomic_write` with ``mode``):
never readable by others, not even for a moment.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from binhub.errors import ConfigError
from binhub.store.fsutil import atomic_write

__all__ = ["RsaKeys", "load_or_create_rsa_keys", "load_or_create_server_uuid", "self_signed_pair",
           "server_ssl_context"]

RSA_BITS = 2048
CERT_DAYS = 3650

# MySQL's servers use RSA_PKCS1_OAEP_PADDING: OAEP with SHA-1 for both the hash and MGF1.
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, mode=0o600)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class RsaKeys:
    """The caching_sha2 key pair, the private key loaded once (decrypting is per full login)."""

    private: rsa.RSAPrivateKey
    public_pem: bytes

    def decrypt_password(self, ciphertext: bytes, scramble: bytes) -> bytes:
        """The clear password from RSA-OAEP((pw + NUL) XOR scramble), as sha2_password.cc sends it."""
        clear = self.private.decrypt(ciphertext, _OAEP)
        key = scramble[:20]
        reps = len(clear) // len(key) + 1
        mask = (key * reps)[:len(clear)]
        plain = bytes(a ^ b for a, b in zip(clear, mask, strict=True))
        return plain[:-1] if plain.endswith(b"\x00") else plain


def load_or_create_rsa_keys(directory: Path) -> RsaKeys:
    private_path = directory / "rsa_private.pem"
    if private_path.exists():
        loaded = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ConfigError("serve.rsa_key", f"{private_path} does not hold an RSA private key")
        key = loaded
    else:
        key = _new_key()
        _write_private(private_path, _pem(key))
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    public_path = directory / "rsa_public.pem"
    if not public_path.exists() or public_path.read_bytes() != public:
        atomic_write(public_path, public)
    return RsaKeys(key, public)


def self_signed_pair(directory: Path) -> tuple[Path, Path]:
    """(cert, key) paths of binhub's self-signed TLS pair in ``directory``, generated on first use."""
    cert_path, key_path = directory / "tls_cert.pem", directory / "tls_key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"binhub auto-generated {socket.gethostname()}"[:64])])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, _pem(key))
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("serve.tls_cert", f"cannot load the TLS certificate {cert} / key {key}: {exc}") from exc
    return ctx


def load_or_create_server_uuid(directory: Path) -> str:
    """binhub's own server_uuid towards MySQL replicas: generated once, then kept (like auto.cnf)."""
    path = directory / "server_uuid"
    if path.exists():
        text = path.read_text().strip()
        try:
            return str(uuid.UUID(text))
        except ValueError:
            pass  # a damaged file: make a new identity rather than refuse to start
    value = str(uuid.uuid4())
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (value + "\n").encode())
    return value
