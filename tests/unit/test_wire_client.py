"""The sans-I/O ClientHandshake, driven by a scripted server built from binhub's own server-side codecs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from binhub.errors import AuthenticationFailed, UnexpectedPacket, UpstreamError
from binhub.wire import auth
from binhub.wire.client import ClientHandshake, ClientState
from binhub.wire.constants import Capability
from binhub.wire.handshake import (
    AuthMoreData,
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    SSLRequest,
)
from binhub.wire.messages import ErrPacket, OkPacket

SCRAMBLE = bytes(range(40, 60))
SERVER_CAPS = Capability(0xDFFFF7FF) | Capability.SSL


def greeting(plugin: str, caps: Capability = SERVER_CAPS) -> bytes:
    return HandshakeV10("8.0.36", 9, SCRAMBLE, caps, 255, auth_plugin=plugin).build()


def ok() -> bytes:
    return OkPacket().build()


def test_native_password() -> None:
    hs = ClientHandshake("repl", "secret", "db")
    step = hs.receive(greeting("mysql_native_password"))
    resp = HandshakeResponse41.parse(step.send[0])
    assert resp.user == "repl" and resp.database == "db" and resp.auth_plugin == "mysql_native_password"
    assert auth.verify_native_password(auth.native_password_hash(b"secret"), SCRAMBLE, resp.auth_response)
    assert resp.attrs["_client_name"] == "binhub"
    assert not resp.capabilities & Capability.SSL
    assert hs.receive(ok()).done and hs.state is ClientState.DONE


def test_caching_sha2_fast_path() -> None:
    hs = ClientHandshake("repl", "secret")
    resp = HandshakeResponse41.parse(hs.receive(greeting("caching_sha2_password")).send[0])
    assert resp.auth_plugin == "caching_sha2_password"
    assert auth.verify_caching_sha2(auth.sha2_password_hash(b"secret"), SCRAMBLE, resp.auth_response)
    assert hs.receive(AuthMoreData(bytes((auth.SHA2_FAST_AUTH_SUCCESS,))).build()).send == ()
    assert hs.receive(ok()).done


def test_caching_sha2_full_auth_rsa() -> None:
    private, public = auth.generate_rsa_key_pair()
    hs = ClientHandshake("repl", "secret")
    hs.receive(greeting("caching_sha2_password"))
    step = hs.receive(AuthMoreData(bytes((auth.SHA2_PERFORM_FULL_AUTH,))).build())
    assert step.send == (b"\x02",)  # request the public key
    step = hs.receive(AuthMoreData(public).build())
    assert auth.rsa_decrypt_password(private, step.send[0], SCRAMBLE) == b"secret"
    assert hs.receive(ok()).done


def test_caching_sha2_full_auth_over_tls() -> None:
    hs = ClientHandshake("repl", "secret", ssl_wanted=True)
    step = hs.receive(greeting("caching_sha2_password"))
    assert step.start_tls
    assert SSLRequest.parse(step.send[0]).capabilities & Capability.SSL
    step = hs.tls_started()
    assert HandshakeResponse41.parse(step.send[0]).capabilities & Capability.SSL
    step = hs.receive(AuthMoreData(bytes((auth.SHA2_PERFORM_FULL_AUTH,))).build())
    assert step.send == (b"secret\x00",)  # clear text is fine inside TLS
    assert hs.receive(ok()).done


def test_auth_switch_to_native() -> None:
    hs = ClientHandshake("repl", "pw")
    hs.receive(greeting("caching_sha2_password"))
    step = hs.receive(AuthSwitchRequest("mysql_native_password", b"N" * 20 + b"\x00").build())
    assert step.send == (auth.scramble_native_password(b"pw", b"N" * 20),)
    assert hs.receive(ok()).done


def test_auth_switch_to_caching_sha2() -> None:
    hs = ClientHandshake("repl", "pw")
    hs.receive(greeting("mysql_native_password"))
    step = hs.receive(AuthSwitchRequest("caching_sha2_password", b"S" * 20 + b"\x00").build())
    assert step.send == (auth.scramble_caching_sha2(b"pw", b"S" * 20),)


def test_unsupported_plugin_switch() -> None:
    hs = ClientHandshake("edu", "pw")
    hs.receive(greeting("mysql_native_password"))
    with pytest.raises(AuthenticationFailed, match="client_ed25519"):
        hs.receive(AuthSwitchRequest("client_ed25519", SCRAMBLE).build())


def test_unknown_greeting_plugin_falls_back_to_native() -> None:
    hs = ClientHandshake("u", "pw")
    resp = HandshakeResponse41.parse(hs.receive(greeting("client_ed25519")).send[0])
    assert resp.auth_plugin == "mysql_native_password"


def test_access_denied() -> None:
    hs = ClientHandshake("repl", "bad")
    hs.receive(greeting("mysql_native_password"))
    msg = "Access denied for user 'repl'@'10.0.0.5' (using password: YES)"
    with pytest.raises(AuthenticationFailed) as err:
        hs.receive(ErrPacket(1045, "28000", msg).build())
    assert err.value.code == 1045 and err.value.server_message == msg
    assert "'repl'@'10.0.0.5'" in str(err.value)


def test_other_error_is_upstream_error() -> None:
    hs = ClientHandshake("repl", "pw")
    with pytest.raises(UpstreamError) as err:
        hs.receive(ErrPacket(1040, "08004", "Too many connections").build())
    assert err.value.code == 1040 and not isinstance(err.value, AuthenticationFailed)


def test_tls_wanted_but_not_offered() -> None:
    hs = ClientHandshake("repl", "pw", ssl_wanted=True)
    with pytest.raises(UpstreamError, match="TLS"):
        hs.receive(greeting("mysql_native_password", SERVER_CAPS & ~Capability.SSL))


def test_negotiated_caps_are_intersection() -> None:
    hs = ClientHandshake("repl", "pw")
    caps = SERVER_CAPS & ~Capability.DEPRECATE_EOF
    hs.receive(greeting("mysql_native_password", caps))
    assert not hs.capabilities & Capability.DEPRECATE_EOF
    assert hs.capabilities & Capability.PROTOCOL_41


def test_packet_after_done() -> None:
    hs = ClientHandshake("repl", "")
    hs.receive(greeting("mysql_native_password"))
    hs.receive(ok())
    with pytest.raises(UnexpectedPacket):
        hs.receive(ok())


def test_wire_package_has_no_io() -> None:
    """binhub.wire is sans-I/O: no asyncio, socket, ssl or file access imports."""
    wire = Path(__file__).resolve().parents[2] / "binhub" / "wire"
    banned = {"asyncio", "socket", "ssl", "selectors"}
    for path in wire.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            assert not banned.intersection(names), f"{path.name} imports {names}"
