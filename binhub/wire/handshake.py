"""Connection-phase packets: HandshakeV10, SSLRequest, HandshakeResponse41, AuthSwitchRequest, AuthMoreData.

Each is a frozen dataclass with ``parse(payload)`` and ``build()``, so binhub's upstream client and
its own replication server share one definition of every byte.

MariaDB detail: a MariaDB server clears capability bit 0 (``CLIENT_MYSQL``) and puts its extended
capabilities (bits 32-63) in the last 4 of the 10 reserved bytes of HandshakeV10; a client that
speaks them answers in the last 4 of the 23 filler bytes of HandshakeResponse41.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from binhub.errors import MalformedPacket, UnexpectedPacket
from binhub.wire.codec import Buffer, Reader, lenenc_bytes, lenenc_int, u8_len_bytes, u16, u32
from binhub.wire.constants import (
    MARIADB_EXTENDED_CAPS_SHIFT,
    NATIVE_PASSWORD,
    SCRAMBLE_LENGTH,
    Capability,
    Charset,
    ServerStatus,
)

PROTOCOL_VERSION = 10
AUTH_SWITCH_HEADER = 0xFE
AUTH_MORE_DATA_HEADER = 0x01
#: MariaDB prefixes its version with this so that old MySQL replicas accept it ("RPL_VERSION_HACK").
MARIADB_VERSION_PREFIX = "5.5.5-"
DEFAULT_MAX_PACKET = 1 << 30


def _caps(value: int) -> Capability:
    return Capability(value & ((1 << 64) - 1))


def _low_caps(caps: int) -> int:
    return caps & 0xFFFFFFFF


def _ext_caps(caps: int) -> int:
    return (caps >> MARIADB_EXTENDED_CAPS_SHIFT) & 0xFFFFFFFF


def _uses_mariadb_ext(caps: int) -> bool:
    # Extended capabilities travel only when CLIENT_MYSQL (bit 0) is clear.
    return not caps & Capability.LONG_PASSWORD


@dataclass(frozen=True)
class HandshakeV10:
    """The server's greeting."""

    server_version: str
    connection_id: int
    scramble: bytes
    capabilities: Capability
    charset: int = Charset.UTF8MB4_GENERAL_CI
    status: ServerStatus = ServerStatus.AUTOCOMMIT
    auth_plugin: str = NATIVE_PASSWORD

    @property
    def is_mariadb(self) -> bool:
        return "mariadb" in self.server_version.lower()

    @property
    def display_version(self) -> str:
        """The version without MariaDB's ``5.5.5-`` replication prefix."""
        v = self.server_version
        if v.startswith(MARIADB_VERSION_PREFIX) and self.is_mariadb:
            return v[len(MARIADB_VERSION_PREFIX):]
        return v

    @classmethod
    def parse(cls, payload: Buffer) -> HandshakeV10:
        r = Reader(payload)
        proto = r.u8()
        if proto != PROTOCOL_VERSION:
            raise UnexpectedPacket(f"unsupported handshake protocol version {proto} (only 10 is spoken)")
        version = r.nul_str().decode("utf-8", "replace")
        conn_id = r.u32()
        part1 = r.fixed(8)
        r.skip(1)
        caps = r.u16()
        charset = status = 0
        plugin_data_len = 0
        part2 = b""
        plugin = b""
        if not r.at_end():
            charset = r.u8()
            status = r.u16()
            caps |= r.u16() << 16
            plugin_data_len = r.u8()
            reserved = r.fixed(10)
            if _uses_mariadb_ext(caps):
                caps |= int.from_bytes(reserved[6:], "little") << MARIADB_EXTENDED_CAPS_SHIFT
            if caps & Capability.SECURE_CONNECTION:
                n = max(13, plugin_data_len - 8)
                part2 = r.fixed(min(n, r.remaining))
                if part2.endswith(b"\x00"):
                    part2 = part2[:-1]
            if caps & Capability.PLUGIN_AUTH:
                plugin = r.nul_str_or_rest()
        scramble = part1 + part2
        return cls(version, conn_id, scramble, _caps(caps), charset, ServerStatus(status),
                   plugin.decode("ascii", "replace") or NATIVE_PASSWORD)

    def build(self) -> bytes:
        caps = int(self.capabilities)
        if len(self.scramble) < 8:
            raise ValueError("scramble must be at least 8 bytes")
        reserved = bytearray(10)
        if _uses_mariadb_ext(caps):
            reserved[6:] = u32(_ext_caps(caps))
        part2 = self.scramble[8:] + b"\x00"
        parts = [
            bytes((PROTOCOL_VERSION,)), self.server_version.encode() + b"\x00", u32(self.connection_id),
            self.scramble[:8], b"\x00", u16(caps & 0xFFFF), bytes((self.charset & 0xFF,)),
            u16(int(self.status)), u16((caps >> 16) & 0xFFFF),
            bytes((len(self.scramble) + 1 if caps & Capability.PLUGIN_AUTH else 0,)), bytes(reserved),
        ]
        if caps & Capability.SECURE_CONNECTION:
            parts.append(part2.ljust(13, b"\x00"))
        if caps & Capability.PLUGIN_AUTH:
            parts.append(self.auth_plugin.encode() + b"\x00")
        return b"".join(parts)


def _response_head(caps: int, max_packet: int, charset: int) -> bytes:
    filler = bytearray(23)
    if _uses_mariadb_ext(caps):
        filler[19:] = u32(_ext_caps(caps))
    return u32(_low_caps(caps)) + u32(max_packet) + bytes((charset & 0xFF,)) + bytes(filler)


def _parse_head(r: Reader) -> tuple[int, int, int]:
    caps = r.u32()
    max_packet = r.u32()
    charset = r.u8()
    filler = r.fixed(23)
    if _uses_mariadb_ext(caps):
        caps |= int.from_bytes(filler[19:], "little") << MARIADB_EXTENDED_CAPS_SHIFT
    return caps, max_packet, charset


@dataclass(frozen=True)
class SSLRequest:
    """The first 32 bytes of HandshakeResponse41, sent in clear before the TLS handshake."""

    capabilities: Capability
    max_packet: int = DEFAULT_MAX_PACKET
    charset: int = Charset.UTF8MB4_GENERAL_CI

    SIZE = 32

    @classmethod
    def parse(cls, payload: Buffer) -> SSLRequest:
        r = Reader(payload)
        caps, max_packet, charset = _parse_head(r)
        if not caps & Capability.SSL:
            raise UnexpectedPacket("SSLRequest without the CLIENT_SSL capability")
        return cls(_caps(caps), max_packet, charset)

    def build(self) -> bytes:
        return _response_head(int(self.capabilities | Capability.SSL), self.max_packet, self.charset)


def is_ssl_request(payload: Buffer) -> bool:
    """Tell an SSLRequest from a full HandshakeResponse41 (both start with the same 32 bytes)."""
    return len(payload) == SSLRequest.SIZE and bool(
        int.from_bytes(bytes(payload[:4]), "little") & Capability.SSL)


@dataclass(frozen=True)
class HandshakeResponse41:
    """The client's answer to the greeting: who it is and its first auth response."""

    capabilities: Capability
    user: str
    auth_response: bytes = b""
    database: str | None = None
    auth_plugin: str | None = NATIVE_PASSWORD
    attrs: Mapping[str, str] = field(default_factory=dict)
    max_packet: int = DEFAULT_MAX_PACKET
    charset: int = Charset.UTF8MB4_GENERAL_CI
    #: The zstd level the client wants (CLIENT_ZSTD_COMPRESSION_ALGORITHM: one byte after the attributes).
    zstd_level: int | None = None

    @classmethod
    def parse(cls, payload: Buffer) -> HandshakeResponse41:
        r = Reader(payload)
        caps, max_packet, charset = _parse_head(r)
        if not caps & Capability.PROTOCOL_41:
            raise UnexpectedPacket("client does not speak protocol 4.1 (HandshakeResponse320 is not supported)")
        user = r.nul_str().decode("utf-8", "replace")
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = r.lenenc_bytes()
        elif caps & Capability.SECURE_CONNECTION:
            auth = r.u8_len_bytes()
        else:
            auth = r.nul_str()
        database = None
        if caps & Capability.CONNECT_WITH_DB and not r.at_end():
            database = r.nul_str_or_rest().decode("utf-8", "replace")
        plugin = None
        if caps & Capability.PLUGIN_AUTH and not r.at_end():
            plugin = r.nul_str_or_rest().decode("ascii", "replace")
        attrs: dict[str, str] = {}
        if caps & Capability.CONNECT_ATTRS and not r.at_end():
            total = r.lenenc_int()
            if total > r.remaining:
                raise MalformedPacket(f"connect attributes claim {total} bytes, {r.remaining} left")
            end = r.pos + total
            while r.pos < end:
                key = r.lenenc_bytes().decode("utf-8", "replace")
                attrs[key] = r.lenenc_bytes().decode("utf-8", "replace")
            if r.pos != end:
                raise MalformedPacket("connect attributes overrun their declared length")
        zstd_level = None
        if caps & Capability.ZSTD_COMPRESSION_ALGORITHM and not r.at_end():
            zstd_level = r.u8()
        return cls(_caps(caps), user, auth, database, plugin, attrs, max_packet, charset, zstd_level)

    def build(self) -> bytes:
        caps = int(self.capabilities) | Capability.PROTOCOL_41
        if self.database:
            caps |= Capability.CONNECT_WITH_DB
        if self.auth_plugin is not None:
            caps |= Capability.PLUGIN_AUTH
        if self.attrs:
            caps |= Capability.CONNECT_ATTRS
        parts = [_response_head(caps, self.max_packet, self.charset), self.user.encode() + b"\x00"]
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            parts.append(lenenc_bytes(self.auth_response))
        elif caps & Capability.SECURE_CONNECTION:
            parts.append(u8_len_bytes(self.auth_response, "auth response"))
        else:
            parts.append(self.auth_response + b"\x00")
        if caps & Capability.CONNECT_WITH_DB:
            parts.append((self.database or "").encode() + b"\x00")
        if caps & Capability.PLUGIN_AUTH:
            parts.append((self.auth_plugin or "").encode() + b"\x00")
        if caps & Capability.CONNECT_ATTRS:
            body = b"".join(lenenc_bytes(k.encode()) + lenenc_bytes(v.encode()) for k, v in self.attrs.items())
            parts.append(lenenc_int(len(body)) + body)
        if caps & Capability.ZSTD_COMPRESSION_ALGORITHM:
            parts.append(bytes((self.zstd_level or 3,)))
        return b"".join(parts)


@dataclass(frozen=True)
class AuthSwitchRequest:
    """0xFE + plugin name + plugin data: the server wants another auth method (and gives a new scramble)."""

    plugin: str
    data: bytes = b""

    @property
    def scramble(self) -> bytes:
        """The challenge without the trailing NUL that native/sha2 servers append."""
        d = self.data
        return d[:-1] if len(d) == SCRAMBLE_LENGTH + 1 and d.endswith(b"\x00") else d

    @classmethod
    def parse(cls, payload: Buffer) -> AuthSwitchRequest:
        r = Reader(payload)
        if r.u8() != AUTH_SWITCH_HEADER:
            raise UnexpectedPacket("expected an AuthSwitchRequest (0xFE)")
        if r.at_end():
            # A bare 0xFE is the pre-4.1 "old password" switch, which no supported server sends.
            raise UnexpectedPacket("server asked for the pre-4.1 old password authentication")
        plugin = r.nul_str().decode("ascii", "replace")
        return cls(plugin, r.rest())

    def build(self) -> bytes:
        return bytes((AUTH_SWITCH_HEADER,)) + self.plugin.encode() + b"\x00" + self.data


@dataclass(frozen=True)
class AuthMoreData:
    """0x01 + data: a plugin's extra round (caching_sha2 status byte, a PEM public key, ...)."""

    data: bytes

    @classmethod
    def parse(cls, payload: Buffer) -> AuthMoreData:
        r = Reader(payload)
        if r.u8() != AUTH_MORE_DATA_HEADER:
            raise UnexpectedPacket("expected AuthMoreData (0x01)")
        return cls(r.rest())

    def build(self) -> bytes:
        return bytes((AUTH_MORE_DATA_HEADER,)) + self.data
