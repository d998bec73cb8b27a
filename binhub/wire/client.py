"""Sans-I/O client side of the connection phase: greeting → [TLS] → auth → OK.

:class:`ClientHandshake` is fed the server's payloads and answers with :class:`HandshakeStep`s:
payloads to send and whether to start TLS now. It never touches a socket; ``binhub.net.client``
drives it. One explicit state enum and one dispatch in :meth:`ClientHandshake.receive`, as in
asyncpg's ``coreproto``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from binhub.errors import AuthenticationFailed, UnexpectedPacket, UpstreamError
from binhub.wire import auth
from binhub.wire.codec import Buffer
from binhub.wire.compression import Algorithm, Compression, negotiated
from binhub.wire.constants import (
    CACHING_SHA2_PASSWORD,
    CLEAR_PASSWORD,
    NATIVE_PASSWORD,
    SHA256_PASSWORD,
    Capability,
    Charset,
)
from binhub.wire.errors import ClientErrorCode, ErrorCode
from binhub.wire.handshake import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    AuthMoreData,
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    SSLRequest,
)
from binhub.wire.messages import ERR_HEADER, OK_HEADER, ErrPacket, OkPacket

#: What binhub asks for; the negotiated set is this AND the server's.
CLIENT_CAPABILITIES = (
    Capability.LONG_PASSWORD | Capability.LONG_FLAG | Capability.PROTOCOL_41 | Capability.TRANSACTIONS
    | Capability.SECURE_CONNECTION | Capability.MULTI_RESULTS | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.CONNECT_ATTRS | Capability.DEPRECATE_EOF
)
#: Plugins this client can answer.
SUPPORTED_PLUGINS = frozenset({NATIVE_PASSWORD, CACHING_SHA2_PASSWORD, SHA256_PASSWORD, CLEAR_PASSWORD})
DEFAULT_ATTRS: Mapping[str, str] = {"_client_name": "binhub", "program_name": "binhub"}


class ClientState(enum.Enum):
    AWAIT_GREETING = "await greeting"
    AWAIT_TLS = "await tls"
    AWAIT_AUTH_RESULT = "await auth result"
    AWAIT_PUBLIC_KEY = "await public key"
    DONE = "done"


@dataclass(frozen=True)
class HandshakeStep:
    """What the adapter must do next: send ``send`` (in order), then start TLS if ``start_tls``."""

    send: tuple[bytes, ...] = ()
    start_tls: bool = False
    done: bool = False


#: Errors that mean "this user may not log in" when they answer the handshake.
_LOGIN_REFUSED = frozenset((ErrorCode.ACCESS_DENIED_ERROR, ErrorCode.DBACCESS_DENIED_ERROR,
                            ErrorCode.NOT_SUPPORTED_AUTH_MODE, ErrorCode.SERVER_IS_IN_SECURE_AUTH_MODE,
                            ErrorCode.ACCESS_DENIED_NO_PASSWORD_ERROR))


def raise_for_err(payload: Buffer, *, user: str = "", during_auth: bool = False) -> None:
    """Raise the binhub error for an ERR payload (AuthenticationFailed for access denied)."""
    err = ErrPacket.parse(payload)
    # After authentication "access denied" (e.g. COM_REGISTER_SLAVE without REPLICATION SLAVE) is a
    # missing privilege, not a bad password: only the handshake turns it into AuthenticationFailed.
    if during_auth and err.code in _LOGIN_REFUSED:
        raise AuthenticationFailed(
            err.code, err.sqlstate, err.message,
            hint=f"check the user name and password binhub uses for the upstream (user {user!r})")
    raise UpstreamError(err.code, err.sqlstate, err.message)


class ClientHandshake:
    """Drive one connection phase as the client."""

    def __init__(self, user: str, password: str | bytes, database: str | None = None, *,
                 ssl_wanted: bool = False, ssl_optional: bool = False, attrs: Mapping[str, str] | None = None,
                 charset: int = Charset.UTF8MB4_GENERAL_CI, compress: bool | Algorithm = False) -> None:
        self.user = user
        self.password = password.encode() if isinstance(password, str) else password
        self.database = database
        self.ssl_wanted = ssl_wanted
        self.ssl_optional = ssl_optional  # "preferred": use TLS when the server offers it, else go on without
        self.attrs = dict(DEFAULT_ATTRS if attrs is None else attrs)
        self.charset = charset
        # True: zstd where the server offers it, else zlib; an Algorithm: that one only; either way
        # the connection goes on uncompressed when the server has none of what is asked.
        self.compress = compress
        #: What the connection uses once the handshake is done (None: no compression).
        self.compression: Compression | None = None
        self.state = ClientState.AWAIT_GREETING
        self.greeting: HandshakeV10 | None = None
        self.capabilities = Capability(0)
        self.ok: OkPacket | None = None
        self.plugin = NATIVE_PASSWORD
        self.scramble = b""
        self.tls_active = False
        self.server_public_key: bytes | None = None

    # -- the dispatch loop -------------------------------------------------------------------------
    def receive(self, payload: Buffer) -> HandshakeStep:
        match self.state:
            case ClientState.AWAIT_GREETING:
                return self._process__greeting(payload)
            case ClientState.AWAIT_AUTH_RESULT:
                return self._process__auth_result(payload)
            case ClientState.AWAIT_PUBLIC_KEY:
                return self._process__public_key(payload)
            case _:
                raise UnexpectedPacket(f"packet from the server while the handshake is in state {self.state.value}")

    def tls_started(self) -> HandshakeStep:
        """The adapter finished the TLS handshake: send the real HandshakeResponse41 over it."""
        if self.state is not ClientState.AWAIT_TLS:
            raise UnexpectedPacket("tls_started() called when no TLS upgrade was requested")
        self.tls_active = True
        self.state = ClientState.AWAIT_AUTH_RESULT
        return HandshakeStep((self._handshake_response(),))

    # -- states --------------------------------------------------------------------------------
    def _process__greeting(self, payload: Buffer) -> HandshakeStep:
        if payload and payload[0] == ERR_HEADER:
            raise_for_err(payload, user=self.user, during_auth=True)  # e.g. "Host is not allowed to connect"
        greeting = HandshakeV10.parse(payload)
        self.greeting = greeting
        self.scramble = greeting.scramble
        wanted = CLIENT_CAPABILITIES
        if self.database:
            wanted |= Capability.CONNECT_WITH_DB
        if self.ssl_wanted and not greeting.capabilities & Capability.SSL and self.ssl_optional:
            self.ssl_wanted = False
        if self.ssl_wanted:
            if not greeting.capabilities & Capability.SSL:
                raise UpstreamError(ClientErrorCode.SSL_CONNECTION_ERROR, "HY000", "TLS was requested but the upstream server does not support it",
                                    hint="start the upstream with ssl enabled or connect without TLS")
            wanted |= Capability.SSL
        if isinstance(self.compress, Algorithm):
            wanted |= self.compress.capability
        elif self.compress:
            zstd = Algorithm.ZSTD.capability
            wanted |= zstd if greeting.capabilities & zstd else Algorithm.ZLIB.capability
        caps = wanted & greeting.capabilities
        if not caps & Capability.PROTOCOL_41:
            raise UnexpectedPacket(f"server {greeting.server_version} does not speak protocol 4.1")
        # MariaDB signals extended capabilities by clearing CLIENT_MYSQL; we ask for none of them,
        # so echoing the server's bit 0 keeps both flavours happy.
        self.capabilities = Capability(caps)
        self.compression = negotiated(caps, None)
        self.plugin = greeting.auth_plugin if greeting.auth_plugin in SUPPORTED_PLUGINS else NATIVE_PASSWORD
        if self.ssl_wanted:
            self.state = ClientState.AWAIT_TLS
            ssl_req = SSLRequest(self.capabilities, charset=self.charset).build()
            return HandshakeStep((ssl_req,), start_tls=True)
        self.state = ClientState.AWAIT_AUTH_RESULT
        return HandshakeStep((self._handshake_response(),))

    def _process__auth_result(self, payload: Buffer) -> HandshakeStep:
        if not payload:
            raise UnexpectedPacket("empty packet during authentication")
        header = payload[0]
        if header == OK_HEADER:
            self.ok = OkPacket.parse(payload, self.capabilities)
            self.state = ClientState.DONE
            return HandshakeStep(done=True)
        if header == ERR_HEADER:
            raise_for_err(payload, user=self.user, during_auth=True)
        if header == AUTH_SWITCH_HEADER:
            switch = AuthSwitchRequest.parse(payload)
            if switch.plugin not in SUPPORTED_PLUGINS:
                raise self._unsupported_plugin(switch.plugin)
            self.plugin = switch.plugin
            self.scramble = switch.scramble
            return HandshakeStep((self._first_auth_response(),))
        if header == AUTH_MORE_DATA_HEADER:
            more = AuthMoreData.parse(payload).data
            return self._process__more_data(more)
        raise UnexpectedPacket(f"unexpected packet 0x{header:02x} during authentication")

    def _process__more_data(self, data: bytes) -> HandshakeStep:
        if self.plugin == CACHING_SHA2_PASSWORD and len(data) == 1:
            if data[0] == auth.SHA2_FAST_AUTH_SUCCESS:
                return HandshakeStep()  # the OK packet follows
            if data[0] == auth.SHA2_PERFORM_FULL_AUTH:
                return self._full_auth()
        if self.plugin in (CACHING_SHA2_PASSWORD, SHA256_PASSWORD) and data.startswith(b"-----BEGIN"):
            self.server_public_key = data
            return HandshakeStep((auth.rsa_encrypt_password(self.password, self.scramble, data),))
        raise UnexpectedPacket(f"unexpected AuthMoreData for {self.plugin}: {data[:16]!r}")

    def _process__public_key(self, payload: Buffer) -> HandshakeStep:
        if payload and payload[0] == ERR_HEADER:
            raise_for_err(payload, user=self.user, during_auth=True)
        key = AuthMoreData.parse(payload).data
        self.server_public_key = key
        self.state = ClientState.AWAIT_AUTH_RESULT
        return HandshakeStep((auth.rsa_encrypt_password(self.password, self.scramble, key),))

    # -- helpers -------------------------------------------------------------------------------
    def _full_auth(self) -> HandshakeStep:
        if self.tls_active:
            return HandshakeStep((self.password + b"\x00",))
        # Without TLS the password must be RSA-encrypted with the server's key, which we ask for.
        self.state = ClientState.AWAIT_PUBLIC_KEY
        return HandshakeStep((bytes((auth.SHA2_REQUEST_PUBLIC_KEY,)),))

    def _first_auth_response(self) -> bytes:
        if self.plugin == NATIVE_PASSWORD:
            return auth.scramble_native_password(self.password, self.scramble)
        if self.plugin == CACHING_SHA2_PASSWORD:
            return auth.scramble_caching_sha2(self.password, self.scramble)
        if self.plugin == SHA256_PASSWORD:
            if not self.password:
                return b""
            if self.tls_active:
                return self.password + b"\x00"
            self.state = ClientState.AWAIT_PUBLIC_KEY
            return bytes((auth.SHA256_REQUEST_PUBLIC_KEY,))
        if self.plugin == CLEAR_PASSWORD:
            if not self.tls_active:
                raise AuthenticationFailed(
                    ClientErrorCode.AUTH_PLUGIN_CANNOT_LOAD, "HY000",
                    "the upstream asks for mysql_clear_password, which binhub only sends over TLS",
                    hint="connect with TLS or give the user a hashed password plugin")
            return self.password + b"\x00"
        raise self._unsupported_plugin(self.plugin)

    def _handshake_response(self) -> bytes:
        level = self.compression.level if self.compression is not None else None
        return HandshakeResponse41(
            self.capabilities, self.user, self._first_auth_response(), self.database, self.plugin,
            self.attrs, charset=self.charset, zstd_level=level,
        ).build()

    def _unsupported_plugin(self, plugin: str) -> AuthenticationFailed:
        return AuthenticationFailed(
            ClientErrorCode.AUTH_PLUGIN_CANNOT_LOAD, "HY000",
            f"the upstream asks for authentication plugin {plugin!r} for user {self.user!r}, "
            f"which binhub does not support",
            hint="give the replication user mysql_native_password or caching_sha2_password, e.g. "
                 "ALTER USER ... IDENTIFIED VIA mysql_native_password USING PASSWORD('...') on MariaDB")
