"""Authentication plugin maths, client and server side.

* ``mysql_native_password``: the client sends SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))); the
  server stores only SHA1(SHA1(pw)) (``mysql.user`` shows it as ``*`` + 40 hex digits) and checks by
  undoing the XOR.
* ``caching_sha2_password`` fast path: XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) + scramble)); the
  server's cache holds SHA256(SHA256(pw)). Full auth sends the password itself: in clear over TLS, or
  RSA-OAEP(SHA1) encrypted as (pw + NUL) XOR scramble (repeated), with the server's public key.

Layouts follow MySQL's ``sql/auth/sha2_password.cc`` and ``password.cc``; the tests cross-check
every function against PyMySQL's independent implementation.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import TYPE_CHECKING

from binhub.wire.constants import SCRAMBLE_LENGTH

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import padding

#: caching_sha2_password AuthMoreData status bytes.
SHA2_REQUEST_PUBLIC_KEY = 0x02
SHA2_FAST_AUTH_SUCCESS = 0x03
SHA2_PERFORM_FULL_AUTH = 0x04
#: sha256_password: the client's "send me your public key" byte.
SHA256_REQUEST_PUBLIC_KEY = 0x01


@functools.cache
def _oaep() -> padding.OAEP:
    """MySQL's servers use RSA_PKCS1_OAEP_PADDING: OAEP with SHA-1 for both the hash and MGF1.

    cryptography is imported only here and in the RSA functions below: full authentication without
    TLS is rare, and importing it costs every process (a relay's start-up included) ~30 ms of CPU.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def _xor(a: bytes, b: bytes) -> bytes:
    # int XOR of the whole digest is C speed and avoids a per-byte Python loop.
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- mysql_native_password -------------------------------------------------------------------

def native_password_hash(password: bytes) -> bytes:
    """SHA1(SHA1(pw)): what the server stores (binary form of ``*HEX``)."""
    return _sha1(_sha1(password))


def native_password_hash_hex(password: bytes) -> str:
    """The ``mysql.user.authentication_string`` form: ``*`` + uppercase hex of SHA1(SHA1(pw))."""
    return "*" + native_password_hash(password).hex().upper()


def scramble_native_password(password: bytes, scramble: bytes) -> bytes:
    """Client response for mysql_native_password (empty for an empty password)."""
    if not password:
        return b""
    stage1 = _sha1(password)
    return _xor(stage1, _sha1(scramble[:SCRAMBLE_LENGTH] + _sha1(stage1)))


def verify_native_password(stored_hash: bytes, scramble: bytes, response: bytes) -> bool:
    """Server side: check ``response`` against the stored SHA1(SHA1(pw)) (20 bytes; b"" = no password)."""
    if not stored_hash:
        return not response
    if len(response) != 20 or len(stored_hash) != 20:
        return False
    stage1 = _xor(response, _sha1(scramble[:SCRAMBLE_LENGTH] + stored_hash))
    return hmac.compare_digest(_sha1(stage1), stored_hash)


# --- caching_sha2_password -------------------------------------------------------------------

def sha2_password_hash(password: bytes) -> bytes:
    """SHA256(SHA256(pw)): what the server's fast-auth cache holds."""
    return _sha256(_sha256(password))


def scramble_caching_sha2(password: bytes, scramble: bytes) -> bytes:
    """Client fast-path response for caching_sha2_password (empty for an empty password)."""
    if not password:
        return b""
    p1 = _sha256(password)
    return _xor(p1, _sha256(_sha256(p1) + scramble[:SCRAMBLE_LENGTH]))


def verify_caching_sha2(cached_hash: bytes, scramble: bytes, response: bytes) -> bool:
    """Server side fast path: check ``response`` against a cached SHA256(SHA256(pw))."""
    if not cached_hash:
        return not response
    if len(response) != 32 or len(cached_hash) != 32:
        return False
    p1 = _xor(response, _sha256(cached_hash + scramble[:SCRAMBLE_LENGTH]))
    return hmac.compare_digest(_sha256(p1), cached_hash)


def _xor_repeat(data: bytes, key: bytes) -> bytes:
    reps = len(data) // len(key) + 1
    return _xor(data, (key * reps)[:len(data)])


def rsa_encrypt_password(password: bytes, scramble: bytes, public_key_pem: bytes) -> bytes:
    """Full auth without TLS: RSA-OAEP(SHA1) of (pw + NUL) XOR scramble, as sha2_password.cc expects."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the server's public key is not an RSA key")
    message = _xor_repeat(password + b"\x00", scramble[:SCRAMBLE_LENGTH])
    return key.encrypt(message, _oaep())


def rsa_decrypt_password(private_key_pem: bytes, ciphertext: bytes, scramble: bytes) -> bytes:
    """Server side of :func:`rsa_encrypt_password`: the clear password (without the NUL)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    clear = _xor_repeat(key.decrypt(ciphertext, _oaep()), scramble[:SCRAMBLE_LENGTH])
    return clear[:-1] if clear.endswith(b"\x00") else clear


def generate_rsa_key_pair(bits: int = 2048) -> tuple[bytes, bytes]:
    """(private PEM, public PEM) for a server that offers caching_sha2 full auth without TLS."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public
