"""Auth plugin maths: known answers, PyMySQL as an independent oracle, server-side verification."""

from __future__ import annotations

import hashlib

import pytest
from pymysql import _auth as pymysql_auth  # type: ignore[import-untyped]

from binhub.wire import auth

SCRAMBLE = bytes(range(1, 21))


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def test_native_known_answer() -> None:
    # PASSWORD('secret') as MySQL 5.x printed it: a value documented all over the web.
    assert auth.native_password_hash_hex(b"secret") == "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
    assert auth.scramble_native_password(b"secret", SCRAMBLE).hex() == "b32bb3a583e1340c0a1108d58b1be49781ad8c2f"


def test_native_matches_definition() -> None:
    pw = b"p@ss"
    sha1 = hashlib.sha1
    expected = _xor(sha1(pw).digest(), sha1(SCRAMBLE + sha1(sha1(pw).digest()).digest()).digest())
    assert auth.scramble_native_password(pw, SCRAMBLE) == expected


@pytest.mark.parametrize("pw", [b"", b"a", b"secret", "pässwörd".encode(), bytes(range(256))])
def test_native_matches_pymysql(pw: bytes) -> None:
    assert auth.scramble_native_password(pw, SCRAMBLE) == pymysql_auth.scramble_native_password(pw, SCRAMBLE)


def test_native_verify() -> None:
    stored = auth.native_password_hash(b"secret")
    good = pymysql_auth.scramble_native_password(b"secret", SCRAMBLE)
    assert auth.verify_native_password(stored, SCRAMBLE, good)
    assert not auth.verify_native_password(stored, SCRAMBLE, pymysql_auth.scramble_native_password(b"x", SCRAMBLE))
    assert not auth.verify_native_password(stored, bytes(20), good)
    assert not auth.verify_native_password(stored, SCRAMBLE, b"")
    assert auth.verify_native_password(b"", SCRAMBLE, b"")


def test_sha2_known_answer() -> None:
    assert auth.scramble_caching_sha2(b"secret", SCRAMBLE).hex() == (
        "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9")


def test_sha2_matches_definition() -> None:
    pw = b"p@ss"
    sha = hashlib.sha256
    p1 = sha(pw).digest()
    expected = _xor(p1, sha(sha(p1).digest() + SCRAMBLE).digest())
    assert auth.scramble_caching_sha2(pw, SCRAMBLE) == expected


@pytest.mark.parametrize("pw", [b"", b"a", b"secret", "pässwörd".encode(), b"x" * 100])
def test_sha2_matches_pymysql(pw: bytes) -> None:
    assert auth.scramble_caching_sha2(pw, SCRAMBLE) == pymysql_auth.scramble_caching_sha2(pw, SCRAMBLE)


def test_sha2_verify() -> None:
    cached = auth.sha2_password_hash(b"secret")
    assert auth.verify_caching_sha2(cached, SCRAMBLE, pymysql_auth.scramble_caching_sha2(b"secret", SCRAMBLE))
    assert not auth.verify_caching_sha2(cached, SCRAMBLE, pymysql_auth.scramble_caching_sha2(b"nope", SCRAMBLE))
    assert not auth.verify_caching_sha2(cached, SCRAMBLE, b"\x00" * 31)


@pytest.fixture(scope="module")
def key_pair() -> tuple[bytes, bytes]:
    return auth.generate_rsa_key_pair()


@pytest.mark.parametrize("pw", [b"secret", b"", b"a-password-longer-than-the-twenty-byte-scramble"])
def test_rsa_round_trip(key_pair: tuple[bytes, bytes], pw: bytes) -> None:
    private, public = key_pair
    blob = auth.rsa_encrypt_password(pw, SCRAMBLE, public)
    assert len(blob) == 256
    assert auth.rsa_decrypt_password(private, blob, SCRAMBLE) == pw


def test_rsa_interoperates_with_pymysql(key_pair: tuple[bytes, bytes]) -> None:
    private, public = key_pair
    # PyMySQL encrypts, we decrypt: the (pw + NUL) XOR scramble layout must agree.
    blob = pymysql_auth.sha2_rsa_encrypt(b"long-password-123456789", SCRAMBLE, public)
    assert auth.rsa_decrypt_password(private, blob, SCRAMBLE) == b"long-password-123456789"


def test_rsa_rejects_non_rsa_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError):
        auth.rsa_encrypt_password(b"x", SCRAMBLE, pem)
