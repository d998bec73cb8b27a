"""Config: precedence (file < env < flags), every refusal names its key, the example file loads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from binhub.errors import ConfigError
from binhub.ops.config import Config, env_name, load_config
from binhub.ops.parsers import parse_duration, parse_listen, parse_size
from binhub.relay.config import DEFAULT_SERVER_ID, SourceDSN, parse_source_dsn
from binhub.store.durability_policy import Durability

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "binhub.toml"

MINIMAL = """
[store]
data_dir = "/srv/binhub"

[relay]
source = "mysql://repl:secret@db1:3306"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "binhub.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None,
         overrides: dict[str, object] | None = None) -> Config:
    return load_config(write(tmp_path, text), env=env or {}, overrides=overrides)


def refused(tmp_path: Path, text: str, env: dict[str, str] | None = None,
            overrides: dict[str, object] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env or {}, overrides=overrides or {})
    # The key is in the exception *and* in the sentence the operator reads.
    assert info.value.key in str(info.value)
    return info.value


# -- the example and the defaults --------------------------------------------------------------


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.store.data_dir == EXAMPLE.parent / "data"
    assert config.store.durability == Durability("txn")
    assert config.store.retention.max_age == 7 * 86400
    assert config.store.retention.max_size == 50 * 2**30
    assert config.relay is not None and config.relay.source.scheme == "mariadb"
    assert config.serve is None  # disabled in the example
    assert (config.http.host, config.http.port) == ("127.0.0.1", 9307)


def test_example_documents_every_key() -> None:
    from binhub.ops.config import KNOWN_KEYS

    text = EXAMPLE.read_text()
    for key in KNOWN_KEYS:
        assert f"{key.rsplit('.', 1)[-1]} =" in text or f"{key.rsplit('.', 1)[-1]}:" in text, key


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    relay = config.relay
    assert relay is not None
    assert relay.server_id == DEFAULT_SERVER_ID
    assert relay.source == SourceDSN("db1", 3306, "repl", "secret", scheme="mysql")
    assert (relay.heartbeat_period, relay.reconnect_max_backoff, relay.ssl_mode) == (1.0, 30.0, "preferred")
    assert relay.start_gtid is None and relay.start_file is None and not relay.from_now
    assert config.store.durability == Durability("txn")
    assert config.store.retention.max_age is None
    assert config.serve is None
    assert config.http.enabled and config.http.host == "127.0.0.1"
    assert (config.log.level, config.log.format) == ("info", "text")


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.store = config.store  # type: ignore[misc]


# -- precedence ----------------------------------------------------------------------------------


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    text = MINIMAL + "server_id = 11\n"
    assert load(tmp_path, text).relay.server_id == 11  # type: ignore[union-attr]
    env = {"BINHUB_RELAY_SERVER_ID": "22"}
    assert load(tmp_path, text, env).relay.server_id == 22  # type: ignore[union-attr]
    config = load_config(write(tmp_path, text), env=env, overrides={"relay.server_id": 33})
    assert config.relay is not None and config.relay.server_id == 33


def test_flags_given_as_none_are_ignored(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + "server_id = 11\n"), env={},
                         overrides={"relay.server_id": None, "log.level": None})
    assert config.relay is not None and config.relay.server_id == 11


def test_env_alone_can_configure(tmp_path: Path) -> None:
    env = {
        "BINHUB_STORE_DATA_DIR": str(tmp_path / "d"),
        "BINHUB_STORE_DURABILITY": "interval:50",
        "BINHUB_STORE_RETENTION_MAX_AGE": "12h",
        "BINHUB_RELAY_SOURCE": "mariadb://r@h",
        "BINHUB_RELAY_SEMI_SYNC": "yes",
        "BINHUB_RELAY_HEARTBEAT_PERIOD": "500ms",
        "BINHUB_LOG_FORMAT": "json",
        "BINHUB_SANDBOX_DIR": "/elsewhere",  # not a config section: ignored
    }
    config = load_config(None, env=env)
    assert config.store.durability == Durability("interval", 50)
    assert config.store.retention.max_age == 12 * 3600
    assert config.relay is not None and config.relay.semi_sync and config.relay.heartbeat_period == 0.5
    assert config.log.format == "json"


def test_env_name() -> None:
    assert env_name("store.retention.max_age") == "BINHUB_STORE_RETENTION_MAX_AGE"


def test_flags_override_paths_and_durability(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL, overrides={"store.data_dir": "rel", "store.durability": "rotate"})
    assert config.store.data_dir == Path("rel")  # from a flag: relative to the working directory
    assert config.store.durability == Durability("rotate")


def test_relative_paths_in_file_are_relative_to_the_file(tmp_path: Path) -> None:
    config = load(tmp_path, '[store]\ndata_dir = "data"\narchive_dir = "~/arch"\n')
    assert config.store.data_dir == tmp_path.resolve() / "data"
    assert config.store.archive_dir == Path("~/arch").expanduser()


def test_env_references_in_file(tmp_path: Path) -> None:
    text = '[store]\ndata_dir = "${BASE}/x$$y"\n'
    assert load(tmp_path, text, {"BASE": "/srv"}).store.data_dir == Path("/srv/x$y")
    err = refused(tmp_path, text)
    assert err.key == "store.data_dir" and "${BASE}" in err.reason


# -- passwords ---------------------------------------------------------------------------------


def test_password_from_env_and_file(tmp_path: Path) -> None:
    text = '[store]\ndata_dir = "/d"\n[relay]\nsource = "mysql://repl@db1"\n'
    config = load(tmp_path, text, {"BINHUB_RELAY_PASSWORD": "from-env"})
    assert config.relay is not None and config.relay.source.password == "from-env"

    (tmp_path / "pw").write_text("from-file\n")
    config = load(tmp_path, text + 'password_file = "pw"\n')
    assert config.relay is not None and config.relay.source.password == "from-file"

    err = refused(tmp_path, text + 'password_file = "pw"\n', {"BINHUB_RELAY_PASSWORD": "x"})
    assert err.key == "relay.password"
    assert refused(tmp_path, text + 'password_file = "missing"\n').key == "relay.password_file"


def test_password_never_shown(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    assert config.relay is not None
    assert "secret" not in repr(config) and "secret" not in str(config.relay.source)
    assert str(config.relay.source) == "mysql://repl:***@db1:3306"


def test_password_env_alone_does_not_enable_the_relay(tmp_path: Path) -> None:
    config = load(tmp_path, '[store]\ndata_dir = "/d"\n', {"BINHUB_RELAY_PASSWORD": "x"})
    assert config.relay is None


# -- sections ------------------------------------------------------------------------------------


def test_relay_disabled_or_absent(tmp_path: Path) -> None:
    assert load(tmp_path, MINIMAL + "enabled = false\n").relay is None
    assert load(tmp_path, '[store]\ndata_dir = "/d"\n').relay is None


def test_start_options(tmp_path: Path) -> None:
    relay = load(tmp_path, MINIMAL + 'start_file = "mysql-bin.000042"\n').relay
    assert relay is not None and (relay.start_file, relay.start_pos) == ("mysql-bin.000042", 4)
    relay = load(tmp_path, MINIMAL + 'start_gtid = "0-1-100,1-2-5"\n').relay
    assert relay is not None and relay.start_gtid == "0-1-100,1-2-5"
    relay = load(tmp_path, MINIMAL + 'start_gtid = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7"\n').relay
    assert relay is not None and relay.start_gtid is not None
    relay = load(tmp_path, MINIMAL + "from_now = true\n").relay
    assert relay is not None and relay.from_now


def test_serve_section(tmp_path: Path) -> None:
    text = MINIMAL + 'server_id = 77\n[serve]\nusers_file = "users.toml"\nlisten = "[::1]:3310"\n'
    serve = load(tmp_path, text).serve
    assert serve is not None
    assert (serve.host, serve.port, serve.server_id) == ("::1", 3310, 77)
    assert serve.users_file == tmp_path.resolve() / "users.toml"


def test_serve_default_auth(tmp_path: Path) -> None:
    base = MINIMAL + '[serve]\nusers_file = "users.toml"\n'
    serve = load(tmp_path, base).serve
    assert serve is not None and serve.default_auth is None  # auto: as the upstream's flavour
    serve = load(tmp_path, base + 'default_auth = "caching_sha2_password"\n').serve
    assert serve is not None and serve.default_auth == "caching_sha2_password"
    err = refused(tmp_path, base + 'default_auth = "ed25519"\n')
    assert err.key == "serve.default_auth"


def test_serve_replica_ahead_wait(tmp_path: Path) -> None:
    base = MINIMAL + '[serve]\nusers_file = "users.toml"\n'
    serve = load(tmp_path, base).serve
    assert serve is not None and serve.replica_ahead_wait == 30.0
    serve = load(tmp_path, base + 'replica_ahead_wait = "2m"\n').serve
    assert serve is not None and serve.replica_ahead_wait == 120.0
    serve = load(tmp_path, base + "replica_ahead_wait = 0\n").serve
    assert serve is not None and serve.replica_ahead_wait == 0.0  # refuse at once, as a primary does
    err = refused(tmp_path, base + "replica_ahead_wait = -1\n")
    assert err.key == "serve.replica_ahead_wait"


def test_serve_one_user_from_env_keeps_only_hashes(tmp_path: Path) -> None:
    env = {"BINHUB_STORE_DATA_DIR": "/d", "BINHUB_SERVE_USER": "repl", "BINHUB_SERVE_PASSWORD": "s3cret"}
    serve = load_config(None, env=env).serve
    assert serve is not None and serve.users_file is None
    (user,) = serve.users
    assert user.name == "repl" and user.native_hash.startswith("*") and user.sha2_crypt.startswith("$A$005$")
    assert "s3cret" not in repr(serve)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"BINHUB_SERVE_USER": "repl"}, "serve.password"),
        ({"BINHUB_SERVE_USER": "repl", "BINHUB_SERVE_PASSWORD": "pw", "BINHUB_SERVE_USERS_FILE": "u"}, "serve.user"),
        ({"BINHUB_SERVE_USERS_FILE": "u", "BINHUB_SERVE_PASSWORD": "pw"}, "serve.password"),
        ({"BINHUB_SERVE_USER": "re pl", "BINHUB_SERVE_PASSWORD": "pw"}, "serve.user"),
        ({"BINHUB_SERVE_USERS_FILE": "u", "BINHUB_SERVE_TLS": "off", "BINHUB_SERVE_TLS_CERT": "c",
          "BINHUB_SERVE_TLS_KEY": "k"}, "serve.tls_cert"),
    ],
)
def test_serve_users_and_tls_refusals(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"BINHUB_STORE_DATA_DIR": "/d", **env})
    assert info.value.key == key


def test_serve_password_alone_does_not_enable_serve() -> None:
    config = load_config(None, env={"BINHUB_STORE_DATA_DIR": "/d", "BINHUB_SERVE_PASSWORD": "pw"})
    assert config.serve is None


def test_serve_tls_off_and_server_id_from_relay_section(tmp_path: Path) -> None:
    text = MINIMAL + 'server_id = 77\n[serve]\nusers_file = "u"\ntls = false\n'
    serve = load_config(write(tmp_path, text), env={}, service="serve").serve
    # binhub serve from a shared file: the relay is not run, yet its identity is the server's default.
    assert serve is not None and not serve.tls and serve.server_id == 77


def test_a_command_runs_its_service_alone(tmp_path: Path) -> None:
    text = MINIMAL + '[serve]\nusers_file = "u"\n'
    both = load_config(write(tmp_path, text), env={})
    assert both.relay is not None and both.serve is not None and both.http.enabled
    relay_only = load_config(write(tmp_path, text), env={}, service="relay")
    assert relay_only.relay is not None and relay_only.serve is None
    assert not relay_only.http.enabled  # a relay and a server side by side must not fight over one port
    serve_only = load_config(write(tmp_path, text), env={}, service="serve")
    assert serve_only.serve is not None and serve_only.relay is None
    # The service a command runs is required, enabled = false or not; the admin API when asked for.
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"BINHUB_STORE_DATA_DIR": "/d"}, service="relay")
    assert info.value.key == "relay.source"
    disabled = load_config(write(tmp_path, MINIMAL + "enabled = false\n[http]\nlisten = '127.0.0.1:0'\n"), env={},
                           service="relay")
    assert disabled.relay is not None and disabled.http.enabled and disabled.http.port == 0


def test_flags_may_give_paths_as_path_objects(tmp_path: Path) -> None:
    # click hands `binhub serve --users FILE --tls-cert C` over as Path objects.
    config = load_config(None, env={}, service="serve", overrides={
        "store.data_dir": tmp_path, "serve.users_file": Path("u.json"), "serve.tls_cert": Path("c"),
        "serve.tls_key": Path("k")})
    assert config.store.data_dir == tmp_path
    assert config.serve is not None and config.serve.users_file == Path("u.json")
    assert (config.serve.tls_cert, config.serve.tls_key) == (Path("c"), Path("k"))


def test_until_caught_up(tmp_path: Path) -> None:
    relay = load(tmp_path, MINIMAL, env={"BINHUB_RELAY_UNTIL_CAUGHT_UP": "true"}).relay
    assert relay is not None and relay.until_caught_up
    relay = load(tmp_path, MINIMAL).relay
    assert relay is not None and not relay.until_caught_up


def test_http_listen_port_zero(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL, overrides={"http.listen": "127.0.0.1:0"})
    assert config.http.port == 0


# -- refusals: each names its key ------------------------------------------------------------------


def test_unknown_key_suggests(tmp_path: Path) -> None:
    err = refused(tmp_path, MINIMAL + "sever_id = 5\n")
    assert err.key == "relay.sever_id"
    assert "unknown key" in str(err) and "did you mean server_id?" in str(err)


def test_unknown_section_and_subkey(tmp_path: Path) -> None:
    assert "did you mean relay?" in str(refused(tmp_path, MINIMAL + "[relya]\nx = 1\n"))
    err = refused(tmp_path, MINIMAL + "[store.retention]\nmax_agee = '7d'\n")
    assert err.key == "store.retention.max_agee" and "max_age" in err.reason
    assert refused(tmp_path, MINIMAL + "[relay.ssl]\nmode = 'required'\n").key == "relay.ssl"
    assert refused(tmp_path, "log = 5\n" + MINIMAL).key == "log"


def test_unknown_env_and_flag(tmp_path: Path) -> None:
    err = refused(tmp_path, MINIMAL, env={"BINHUB_RELAY_SEVER_ID": "5"})
    assert err.key == "BINHUB_RELAY_SEVER_ID" and "BINHUB_RELAY_SERVER_ID" in str(err)
    assert refused(tmp_path, MINIMAL, overrides={"relay.sever_id": 5}).key == "relay.sever_id"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("server_id = 0", "relay.server_id"),
        ("server_id = 4294967296", "relay.server_id"),
        ("server_id = 'abc'", "relay.server_id"),
        ("server_id = true", "relay.server_id"),
        ("semi_sync = 'maybe'", "relay.semi_sync"),
        ("heartbeat_period = 0", "relay.heartbeat_period"),
        ("heartbeat_period = 'soon'", "relay.heartbeat_period"),
        ("connect_timeout = -1", "relay.connect_timeout"),
        ("reconnect_max_backoff = 'inf'", "relay.reconnect_max_backoff"),
        ("ssl_mode = 'verify_identity'", "relay.ssl_mode"),
        ("ssl_mode = 'disabled'\nssl_ca = 'ca.pem'", "relay.ssl_ca"),
        ("start_gtid = '0-1-1'\nfrom_now = true", "relay.from_now"),
        ("start_gtid = '0-1-1'\nstart_file = 'b.000001'", "relay.start_file"),
        ("start_gtid = 'mysql-bin.000001'", "relay.start_gtid"),
        ("start_pos = 120", "relay.start_pos"),
        ("start_file = 'b.000001'\nstart_pos = 2", "relay.start_pos"),
        ("source = ''", "relay.source"),
        ("source = 'postgres://u@h'", "relay.source"),
        ("source = 'mysql://h:3306'", "relay.source"),
        ("source = 'mysql://u@h:99999'", "relay.source"),
        ("source = 'mysql://u@h/db'", "relay.source"),
    ],
)
def test_invalid_relay_values(tmp_path: Path, extra: str, key: str) -> None:
    text = MINIMAL.replace('source = "mysql://repl:secret@db1:3306"', "") if extra.startswith("source") else MINIMAL
    assert refused(tmp_path, text + extra + "\n").key == key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[store]\n", "store.data_dir"),
        ("[store]\ndata_dir = ''\n", "store.data_dir"),
        ("[store]\ndata_dir = 5\n", "store.data_dir"),
        ("[store]\ndata_dir = '/d'\ndurability = 'sometimes'\n", "store.durability"),
        ("[store]\ndata_dir = '/d'\ndurability = 'interval:0'\n", "store.durability"),
        ("[store]\ndata_dir = '/d'\nretention = 5\n", "store.retention"),
        ("[store]\ndata_dir = '/d'\n[store.retention]\nmax_age = 7\n", "store.retention.max_age"),
        ("[store]\ndata_dir = '/d'\n[store.retention]\nmax_age = '7 days'\n", "store.retention.max_age"),
        ("[store]\ndata_dir = '/d'\n[store.retention]\nmax_size = '50G'\n", "store.retention.max_size"),
        ("[store]\ndata_dir = '/d'\n[store.retention]\nmax_files = 0\n", "store.retention.max_files"),
        ("[store]\ndata_dir = '/d'\n[relay]\n", "relay.source"),
        ("[store]\ndata_dir = '/d'\n[serve]\n", "serve.users_file"),
        ("[store]\ndata_dir = '/d'\n[serve]\nusers_file = 'u'\ntls_cert = 'c'\n", "serve.tls_key"),
        ("[store]\ndata_dir = '/d'\n[serve]\nusers_file = 'u'\nlisten = 'nowhere'\n", "serve.listen"),
        ("[store]\ndata_dir = '/d'\n[http]\nlisten = '127.0.0.1:http'\n", "http.listen"),
        ("[store]\ndata_dir = '/d'\n[http]\nlisten = '::1:9307'\n", "http.listen"),
        ("[store]\ndata_dir = '/d'\n[http]\nenabled = 'perhaps'\n", "http.enabled"),
        ("[store]\ndata_dir = '/d'\n[log]\nlevel = 'verbose'\n", "log.level"),
        ("[store]\ndata_dir = '/d'\n[log]\nformat = 'xml'\n", "log.format"),
    ],
)
def test_invalid_values_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    assert refused(tmp_path, text).key == key


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[store\n"), env={})


def test_data_dir_required_hint() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={})
    assert info.value.key == "store.data_dir" and "--data-dir" in str(info.value)


# -- the small parsers -----------------------------------------------------------------------------


def test_parse_source_dsn() -> None:
    dsn = parse_source_dsn("mariadb://re%40pl:p%3Ass@[::1]:3307?ssl_mode=required")
    assert (dsn.scheme, dsn.host, dsn.port, dsn.user, dsn.password) == ("mariadb", "::1", 3307, "re@pl", "p:ss")
    assert dict(dsn.params) == {"ssl_mode": "required"}
    assert parse_source_dsn("mysql://u@h").port == 3306
    assert str(parse_source_dsn("mysql://u@[::1]")) == "mysql://u@[::1]:3306"


@pytest.mark.parametrize("text", ["", "db1:3306", "mysql://:pw@h", "mysql://u:topsecret@h:x", "http://u:topsecret@h"])
def test_parse_source_dsn_errors_hide_the_password(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_source_dsn(text, key="--source")
    assert info.value.key == "--source"
    assert "topsecret" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * 86400), ("12h", 43200), ("1h30m", 5400), ("250ms", 0.25), ("2w", 14 * 86400), (" 10s ", 10)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "7 days", "d", "1x", "-1d"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("50GiB", 50 * 2**30), ("10GB", 10 * 10**9), ("512", 512), ("1.5 MiB", 3 * 2**19), ("4kib", 4096), ("1TiB", 2**40)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "50G", "GiB", "-5MiB", "5 parsecs"])
def test_parse_size_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9307") == ("127.0.0.1", 9307)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("localhost:80") == ("localhost", 80)
    for bad in (":9307", "127.0.0.1", "h:70000"):
        with pytest.raises(ConfigError):
            parse_listen(bad, key="http.listen")
