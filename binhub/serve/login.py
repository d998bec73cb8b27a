"""The connection phase, server side: greeting → [TLS] → HandshakeResponse41 → auth → OK or ERR 1045.

Two plugins are verified, both against hashes only (:mod:`binhub.serve.users`):

* ``mysql_native_password``: the scramble response checked against SHA1(SHA1(pw));
* ``caching_sha2_password``: the fast path checks the scramble against a cache of
  SHA256(SHA256(pw)) filled by the user's last successful full login; otherwise the server asks for
  full authentication (AuthMoreData 0x04) and gets the password itself, in clear over TLS or
  RSA-encrypted with binhub's public key (sent on request, AuthMoreData with the PEM), and checks it
  against the ``$A$005$`` SHA-256 crypt. As in MySQL, a wrong fast-path answer falls back to full
  authentication rather than failing at once.

A client offering another plugin (sha256_password, ed25519, dialog, ...) gets an AuthSwitchRequest
to one of the two. Every failure is ERR 1045 with MySQL's wording, whatever went wrong (unknown
user, bad password), so the reply says nothing about which accounts exist.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field

from binhub.errors import MalformedPacket, ProtocolError, UnexpectedPacket
from binhub.net.server import ServerConnection
from binhub.serve.keys import RsaKeys
from binhub.serve.users import User, UserDirectory, verify_sha2_crypt
from binhub.wire import auth
from binhub.wire.constants import (
    CACHING_SHA2_PASSWORD,
    CLEAR_PASSWORD,
    NATIVE_PASSWORD,
    SHA256_PASSWORD,
    Capability,
)
from binhub.wire.errors import ErrorCode, MysqlError
from binhub.wire.handshake import (
    AuthMoreData,
    AuthSwitchRequest,
    HandshakeResponse41,
    SSLRequest,
    is_ssl_request,
)

__all__ = ["AuthResult", "LoginFailed", "Sha2Cache", "authenticate"]

log = logging.getLogger("binhub.serve")

#: At most this many SHA-256 crypts (≈3 ms of CPU each) run at once, so a flood of bad logins
#: queues up instead of starving the dumps.
FULL_AUTH_CONCURRENCY = 2


class LoginFailed(MysqlError):
    """The login failed: sent as an ERR packet, then the connection closes."""

    def __init__(self, code: ErrorCode, message: str, *, counted: bool = True) -> None:
        super().__init__(code, message)
        self.counted = counted  # a bad password counts as a failed login; a broken packet does not


@dataclass
class Sha2Cache:
    """caching_sha2's fast-path cache: user → SHA256(SHA256(pw)), keyed on the stored crypt too,
    so changing a user's password in the users file invalidates the entry."""

    entries: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def get(self, user: User) -> bytes | None:
        return self.entries.get((user.name, user.sha2_crypt))

    def put(self, user: User, password: bytes) -> None:
        self.entries[(user.name, user.sha2_crypt)] = auth.sha2_password_hash(password)


@dataclass(frozen=True)
class AuthResult:
    user: User
    response: HandshakeResponse41
    plugin: str


async def authenticate(conn: ServerConnection, scramble: bytes, *, users: UserDirectory, cache: Sha2Cache,
                       rsa_keys: RsaKeys, tls: ssl.SSLContext | None, client_host: str,
                       limiter: asyncio.Semaphore) -> AuthResult:
    """Run the connection phase after the greeting was sent; raise LoginFailed.

    ``limiter`` bounds concurrent SHA-256 crypts (one per server, see FULL_AUTH_CONCURRENCY).
    """
    try:
        payload = await _read(conn)
        if is_ssl_request(payload):
            if tls is None:
                raise LoginFailed(ErrorCode.HANDSHAKE_ERROR, "Bad handshake: TLS was not offered", counted=False)
            SSLRequest.parse(payload)
            await conn.start_tls(tls)
            payload = await _read(conn)
        response = HandshakeResponse41.parse(payload)
    except (MalformedPacket, UnexpectedPacket) as exc:
        raise LoginFailed(ErrorCode.HANDSHAKE_ERROR, f"Bad handshake: {exc}", counted=False) from None
    using_pw = "YES" if response.auth_response else "NO"
    user = users.get(response.user)
    # A client that names no plugin (or lacks PLUGIN_AUTH) speaks mysql_native_password, as in mysqld.
    plugin = (response.auth_plugin or NATIVE_PASSWORD) if response.capabilities & Capability.PLUGIN_AUTH \
        else NATIVE_PASSWORD
    data = response.auth_response
    switch = plugin not in (NATIVE_PASSWORD, CACHING_SHA2_PASSWORD)
    if switch:
        # sha256_password speakers are MySQL clients, which all know caching_sha2; others get native.
        plugin = CACHING_SHA2_PASSWORD if plugin in (SHA256_PASSWORD, CLEAR_PASSWORD) else NATIVE_PASSWORD
    elif not data and plugin == NATIVE_PASSWORD and user is not None and user.native_hash:
        # MariaDB's client (and replica IO threads) answer a caching_sha2 greeting with the native
        # plugin and no data, expecting an AuthSwitch to the plugin it named, as mariadbd sends.
        switch = True
    if switch:
        conn.write_packets([AuthSwitchRequest(plugin, scramble + b"\x00").build()])
        data = await _read(conn)
        using_pw = "YES" if data else "NO"
    fail = LoginFailed(ErrorCode.ACCESS_DENIED_ERROR, f"Access denied for user '{response.user}'@'{client_host}' (using password: {using_pw})")
    if user is None:
        raise fail
    if plugin == NATIVE_PASSWORD:
        if not auth.verify_native_password(user.native_stage2, scramble, data):
            raise fail
        return AuthResult(user, response, plugin)
    if not user.sha2_crypt:  # empty password: nothing to cache, nothing to send
        if data:
            raise fail
        return AuthResult(user, response, plugin)
    cached = cache.get(user)
    if cached is not None and data and auth.verify_caching_sha2(cached, scramble, data):
        conn.write_packets([AuthMoreData(bytes((auth.SHA2_FAST_AUTH_SUCCESS,))).build()])
        return AuthResult(user, response, plugin)
    if not data:
        raise fail
    password = await _full_auth(conn, scramble, rsa_keys)
    async with limiter:
        ok = await asyncio.to_thread(verify_sha2_crypt, user.sha2_crypt, password)
    if not ok:
        raise fail
    cache.put(user, password)
    return AuthResult(user, response, plugin)


async def _read(conn: ServerConnection) -> bytes:
    """Read the client's next packet; whatever the server writes next answers it (sequence id + 1)."""
    try:
        payload = await conn.read_packet()
    except ProtocolError as exc:
        raise LoginFailed(ErrorCode.HANDSHAKE_ERROR, f"Bad handshake: {exc}", counted=False) from None
    conn.reply_to_last()
    return payload


async def _full_auth(conn: ServerConnection, scramble: bytes, rsa_keys: RsaKeys) -> bytes:
    """AuthMoreData(0x04) and read the clear password: as sent over TLS, or RSA-decrypted."""
    conn.write_packets([AuthMoreData(bytes((auth.SHA2_PERFORM_FULL_AUTH,))).build()])
    data = await _read(conn)
    if conn.tls:
        return data[:-1] if data.endswith(b"\x00") else data
    if data == bytes((auth.SHA2_REQUEST_PUBLIC_KEY,)):
        conn.write_packets([AuthMoreData(rsa_keys.public_pem).build()])
        data = await _read(conn)
    try:
        return rsa_keys.decrypt_password(data, scramble)
    except ValueError:
        # Not RSA ciphertext: a client sending its password in clear over a plain socket. Refuse
        # (as MySQL does) rather than read it.
        log.debug("caching_sha2 full auth without TLS and without RSA from %s", conn.peer)
        return b"\x00invalid"
