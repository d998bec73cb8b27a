"""Connection-phase packets: greeting, SSLRequest, HandshakeResponse41, auth switch / more data."""

from __future__ import annotations

import pytest

from binhub.errors import MalformedPacket, UnexpectedPacket
from binhub.wire.constants import Capability, ServerStatus
from binhub.wire.handshake import (
    AuthMoreData,
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    SSLRequest,
    is_ssl_request,
)

SCRAMBLE = bytes(range(1, 21))
MYSQL_CAPS = Capability(0xDFFFF7FF)  # what MySQL 8.0 announces (everything but SSL_VERIFY... and SSL here)
MARIADB_CAPS = (Capability(0xF7FE) | Capability(0x81BF << 16)
                | Capability.MARIADB_PROGRESS | Capability.MARIADB_STMT_BULK_OPERATIONS
                | Capability.MARIADB_EXTENDED_METADATA | Capability.MARIADB_CACHE_METADATA)


def test_greeting_round_trip_mysql() -> None:
    hs = HandshakeV10("8.0.36", 42, SCRAMBLE, MYSQL_CAPS, 255, ServerStatus.AUTOCOMMIT, "caching_sha2_password")
    raw = hs.build()
    assert raw[0] == 10
    assert HandshakeV10.parse(raw) == hs
    assert not hs.is_mariadb and hs.display_version == "8.0.36"


def test_greeting_round_trip_mariadb_extended_caps() -> None:
    assert not MARIADB_CAPS & Capability.LONG_PASSWORD
    hs = HandshakeV10("5.5.5-10.11.6-MariaDB-log", 7, SCRAMBLE, MARIADB_CAPS, 45)
    raw = hs.build()
    parsed = HandshakeV10.parse(raw)
    assert parsed == hs
    assert parsed.capabilities & Capability.MARIADB_CACHE_METADATA
    assert parsed.is_mariadb and parsed.display_version == "10.11.6-MariaDB-log"


def test_greeting_known_layout() -> None:
    raw = HandshakeV10("5.7.44", 0x01020304, SCRAMBLE, MYSQL_CAPS).build()
    # version NUL, conn id, first 8 scramble bytes, filler
    assert raw[1:8] == b"5.7.44\x00"
    assert raw[8:12] == b"\x04\x03\x02\x01"
    assert raw[12:20] == SCRAMBLE[:8] and raw[20] == 0
    # auth-plugin-data-len = 21 and part 2 = 12 bytes + NUL
    assert raw[28] == 21
    assert raw[39:52] == SCRAMBLE[8:] + b"\x00"
    assert raw[52:] == b"mysql_native_password\x00"


def test_greeting_extended_caps_only_when_client_mysql_clear() -> None:
    caps = MYSQL_CAPS | Capability.MARIADB_PROGRESS  # bit 0 set: extended caps are not sent
    parsed = HandshakeV10.parse(HandshakeV10("8.0.1", 1, SCRAMBLE, caps).build())
    assert not parsed.capabilities & Capability.MARIADB_PROGRESS


def test_greeting_wrong_protocol_and_truncated() -> None:
    raw = HandshakeV10("8.0.36", 1, SCRAMBLE, MYSQL_CAPS).build()
    with pytest.raises(UnexpectedPacket):
        HandshakeV10.parse(b"\x09" + raw[1:])
    for cut in (1, 5, 12, 20):
        with pytest.raises(MalformedPacket):
            HandshakeV10.parse(raw[:cut])


CLIENT_CAPS = (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH
               | Capability.LONG_PASSWORD | Capability.TRANSACTIONS)


@pytest.mark.parametrize("caps", [CLIENT_CAPS, CLIENT_CAPS | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA])
def test_response_round_trip(caps: Capability) -> None:
    resp = HandshakeResponse41(caps | Capability.CONNECT_WITH_DB | Capability.CONNECT_ATTRS, "repl",
                               b"\x01" * 20, "db1", "mysql_native_password",
                               {"_client_name": "binhub", "program_name": "binhub"}, 1 << 24, 45)
    assert HandshakeResponse41.parse(resp.build()) == resp


def test_response_long_auth_needs_lenenc() -> None:
    long_auth = b"\x02" * 300  # an RSA blob is 256 bytes; larger needs the lenenc form
    resp = HandshakeResponse41(CLIENT_CAPS | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA, "u", long_auth)
    assert HandshakeResponse41.parse(resp.build()).auth_response == long_auth
    with pytest.raises(ValueError):
        HandshakeResponse41(CLIENT_CAPS, "u", long_auth).build()


def test_response_mariadb_extended_caps() -> None:
    caps = (CLIENT_CAPS & ~Capability.LONG_PASSWORD) | Capability.MARIADB_STMT_BULK_OPERATIONS
    resp = HandshakeResponse41(caps, "u", b"")
    raw = resp.build()
    assert raw[32 - 4:32] == (1 << 2).to_bytes(4, "little")
    assert HandshakeResponse41.parse(raw).capabilities & Capability.MARIADB_STMT_BULK_OPERATIONS


def test_response_without_plugin_auth() -> None:
    resp = HandshakeResponse41(Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION, "u", b"abc", auth_plugin=None)
    assert HandshakeResponse41.parse(resp.build()) == resp


def test_response_truncated_attrs() -> None:
    resp = HandshakeResponse41(CLIENT_CAPS, "u", b"", attrs={"k": "v"})
    raw = resp.build()
    with pytest.raises(MalformedPacket):
        HandshakeResponse41.parse(raw[:-2])


def test_ssl_request() -> None:
    req = SSLRequest(CLIENT_CAPS, 1 << 24, 45)
    raw = req.build()
    assert len(raw) == 32 and is_ssl_request(raw)
    assert SSLRequest.parse(raw) == SSLRequest(CLIENT_CAPS | Capability.SSL, 1 << 24, 45)
    full = HandshakeResponse41(CLIENT_CAPS | Capability.SSL, "u", b"").build()
    assert not is_ssl_request(full)
    with pytest.raises(UnexpectedPacket):
        SSLRequest.parse(HandshakeResponse41(CLIENT_CAPS, "u", b"").build()[:32])


def test_auth_switch_round_trip() -> None:
    sw = AuthSwitchRequest("caching_sha2_password", SCRAMBLE + b"\x00")
    raw = sw.build()
    assert raw[0] == 0xFE
    parsed = AuthSwitchRequest.parse(raw)
    assert parsed == sw and parsed.scramble == SCRAMBLE
    with pytest.raises(UnexpectedPacket, match="old password"):
        AuthSwitchRequest.parse(b"\xfe")


def test_auth_more_data_round_trip() -> None:
    more = AuthMoreData(b"\x04")
    assert more.build() == b"\x01\x04"
    assert AuthMoreData.parse(b"\x01\x04") == more
    with pytest.raises(UnexpectedPacket):
        AuthMoreData.parse(b"\x00")
