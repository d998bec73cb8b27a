"""The daemon's configuration: parsed once, at the edge, into frozen typed objects.

Sources, later ones win: the TOML file → ``BINHUB_<SECTION>_<KEY>`` environment variables →
command-line flags (a ``{"relay.server_id": 99}`` dict). Every layer is flattened to dotted keys
(``store.retention.max_age``) before validation, so one error path covers all three and every
:class:`~binhub.errors.ConfigError` names the key an operator has to fix. Each service receives
its own part, a dataclass its package defines (``StoreConfig``, ``RelayConfig``, ``ServeConfig``);
no service reads files, env vars or raw dicts.

String values in the file may reference the environment as ``${NAME}`` (``$$`` is a literal ``$``),
so secrets need not be written into the file. Relative paths in the file are relative to the file's
own folder (a daemon's working directory is rarely the config's); from env or flags they are
relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from binhub.errors import ConfigError
from binhub.ops.parsers import parse_duration, parse_listen, parse_size, parse_table_pattern
from binhub.relay.config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEARTBEAT_PERIOD,
    DEFAULT_RECONNECT_MAX_BACKOFF,
    DEFAULT_SERVER_ID,
    SSL_MODES,
    RelayConfig,
    SslMode,
    parse_source_dsn,
)
from binhub.serve.config import DEFAULT_SERVE_LISTEN, REPLICA_AHEAD_WAIT, SERVE_AUTH_CHOICES, ServeConfig
from binhub.serve.users import User, make_user
from binhub.sinks.kafka_config import KafkaOptions, KafkaTarget
from binhub.sinks.mysql.dsn import parse_mysql_target
from binhub.sinks.mysql.options import ApplyOptions, OnConflict
from binhub.store.config import RetentionConfig, StoreConfig
from binhub.store.durability_policy import Durability

if TYPE_CHECKING:
    from binhub.apply.config import KafkaApplyConfig
    from binhub.stream.config import StreamConfig

__all__ = ["DEFAULT_HTTP_LISTEN", "KNOWN_KEYS", "Config", "HttpConfig", "LogConfig", "ServiceName", "env_name",
           "load_config"]

# Loopback by default: the admin API has no authentication.
DEFAULT_HTTP_LISTEN = "127.0.0.1:9307"

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
#: A service a command runs on its own (``binhub relay``, ``binhub serve``).
ServiceName = Literal["relay", "serve"]


# ---------------------------------------------------------------------------------------------
# Typed configuration: each service's own part (RelayConfig, ServeConfig, StoreConfig) lives in
# the service's package; the daemon's own parts live here.


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9307


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: LogLevel = "info"
    format: LogFormat = "text"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole daemon configuration. ``relay``/``serve`` are ``None`` when absent or disabled."""

    store: StoreConfig
    relay: RelayConfig | None
    serve: ServeConfig | None
    http: HttpConfig
    log: LogConfig
    streams: tuple[StreamConfig, ...] = ()  # the [[stream]] sections, in file order
    applies: tuple[KafkaApplyConfig, ...] = ()  # the [[apply]] sections (Kafka -> MySQL), in file order


# ---------------------------------------------------------------------------------------------
# Schema: every key, its kind; used for unknown-key checks, env names and coercion


_Kind = Literal["str", "int", "float", "bool", "path", "seconds", "duration", "size"]

_SCHEMA: dict[str, dict[str, _Kind]] = {
    "store": {
        "data_dir": "path", "durability": "str", "archive_dir": "path",
        "retention.max_age": "duration", "retention.max_size": "size", "retention.max_files": "int",
        "retention.stream_lease_max_age": "duration",
    },
    "relay": {
        "enabled": "bool", "source": "str", "password": "str", "password_file": "path",
        "server_id": "int", "start_gtid": "str", "start_file": "str", "start_pos": "int",
        "from_now": "bool", "semi_sync": "bool", "heartbeat_period": "seconds",
        "connect_timeout": "seconds", "reconnect_max_backoff": "seconds",
        "ssl_mode": "str", "ssl_ca": "path", "until_caught_up": "bool", "compress": "bool",
    },
    "serve": {
        "enabled": "bool", "listen": "str", "users_file": "path", "user": "str", "password": "str",
        "server_id": "int", "tls": "bool", "tls_cert": "path", "tls_key": "path", "default_auth": "str",
        "replica_ahead_wait": "seconds",
    },
    "http": {"enabled": "bool", "listen": "str"},
    "log": {"level": "str", "format": "str"},
}
KNOWN_KEYS: frozenset[str] = frozenset(f"{s}.{k}" for s, keys in _SCHEMA.items() for k in keys)
_SUBTABLES = {f"{s}.{k.split('.')[0]}" for s, keys in _SCHEMA.items() for k in keys if "." in k}


def env_name(key: str) -> str:
    """``store.retention.max_age`` → ``BINHUB_STORE_RETENTION_MAX_AGE``."""
    return "BINHUB_" + key.replace(".", "_").upper()


_ENV_TO_KEY = {env_name(k): k for k in KNOWN_KEYS}


def _unknown(key: str, candidates: list[str]) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, candidates, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(sorted(candidates))}"
    return ConfigError(key, "unknown key" + hint)


def _check_known(key: str) -> None:
    if key in KNOWN_KEYS:
        return
    section, _, rest = key.partition(".")
    if section not in _SCHEMA:
        raise _unknown(section, list(_SCHEMA))
    prefix = key.rsplit(".", 1)[0] + "."
    names = [k.removeprefix(prefix) for k in KNOWN_KEYS if k.startswith(prefix) and "." not in k.removeprefix(prefix)]
    raise _unknown(key, names or [k.removeprefix(section + ".") for k in KNOWN_KEYS if k.startswith(section + ".")])


# ---------------------------------------------------------------------------------------------
# Layers: each yields {dotted key: (value, base dir for relative paths or None)}

_Layer = dict[str, tuple[Any, Path | None]]
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(key: str, text: str, env: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in env:
            raise ConfigError(key, f"refers to ${{{name}}}, which is not set in the environment")
        return env[name]

    return _ENV_REF.sub(sub, text)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("--config", f"file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None


def _file_layer(data: Mapping[str, Any], base: Path, env: Mapping[str, str]) -> _Layer:
    out: _Layer = {}

    def walk(prefix: str, table: Mapping[str, Any]) -> None:
        for name, value in table.items():
            key = f"{prefix}.{name}" if prefix else name
            if isinstance(value, dict) and (not prefix or key in _SUBTABLES):
                walk(key, value)
                continue
            if key in _SUBTABLES:
                raise ConfigError(key, f"must be a table ([{key}]), not a {type(value).__name__}")
            if not prefix:
                if name in _SCHEMA:
                    raise ConfigError(name, f"must be a table ([{name}]), not a {type(value).__name__}")
                raise _unknown(name, list(_SCHEMA))
            _check_known(key)
            out[key] = (_expand_env(key, value, env) if isinstance(value, str) else value, base)

    walk("", {k: v for k, v in data.items() if k not in ("stream", "apply")})  # [[stream]], [[apply]]: see _streams
    # An empty [relay] table still counts as "the section exists" (relay.enabled defaults to true).
    for section in ("relay", "serve"):
        if section in data and not any(k.startswith(section + ".") for k in out):
            out[f"{section}.enabled"] = (True, base)
    return out


def _env_layer(env: Mapping[str, str]) -> _Layer:
    out: _Layer = {}
    sections = tuple(f"BINHUB_{s.upper()}_" for s in _SCHEMA)
    for name, value in env.items():
        if name in _ENV_TO_KEY:
            out[_ENV_TO_KEY[name]] = (value, None)
        elif name.startswith(sections):
            # Refused rather than ignored: a misspelt override that silently does nothing is worse.
            prefix = next(s for s in sections if name.startswith(s))
            close = difflib.get_close_matches(name, [e for e in _ENV_TO_KEY if e.startswith(prefix)], n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(name, "unknown environment setting" + hint)
    return out


def _flag_layer(overrides: Mapping[str, Any]) -> _Layer:
    out: _Layer = {}
    for key, value in overrides.items():
        if value is None:  # click passes None for flags that were not given
            continue
        _check_known(key)
        out[key] = (value, None)
    return out


# ---------------------------------------------------------------------------------------------
# Coercion and validation


_SECRETS = {"relay.password", "serve.password"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _Values:
    """The merged layers, with typed getters that raise ConfigError naming the key."""

    def __init__(self, merged: _Layer) -> None:
        self._merged = merged

    def has(self, key: str) -> bool:
        return key in self._merged

    def section_given(self, section: str) -> bool:
        # BINHUB_RELAY_PASSWORD alone is a secret kept in the environment, not a wish for a relay.
        return any(k.startswith(section + ".") and k not in _SECRETS for k in self._merged)

    def _raw(self, key: str) -> Any:
        return self._merged[key][0] if key in self._merged else None

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self._raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, not {type(value).__name__}")
        return value

    def required_str(self, key: str, what: str) -> str:
        value = self.get_str(key)
        if value is None or not value.strip():
            raise ConfigError(key, f"is required: {what}")
        return value

    def get_int(self, key: str, default: int | None = None, *, low: int = 0, high: int | None = None) -> int | None:
        value = self._raw(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, f"must be an integer, not {value!r}")
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ConfigError(key, f"must be {bounds}, not {value}")
        return value

    def get_bool(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(key, f"must be true or false, not {value!r}")

    def seconds(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        """A positive number of seconds (or 0 where ``allow_zero``), or a duration string ("500ms", "2m")."""
        value = self._raw(key)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                value = self._parsed(key, value, parse_duration)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(key, f"must be a number of seconds, not {value!r}")
        if allow_zero and value == 0:
            return 0.0
        if not 0 < value < math.inf:
            raise ConfigError(key, f"must be a finite number of seconds above 0, not {value}")
        return float(value)

    def _parsed(self, key: str, value: Any, parse: Callable[[str], Any]) -> Any:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string with a unit, not {value!r}")
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(key, str(exc)) from None

    def duration(self, key: str) -> float | None:
        value = self._raw(key)
        if value is None:
            return None
        seconds: float = self._parsed(key, value, parse_duration)
        if seconds <= 0:
            raise ConfigError(key, "must be longer than 0")
        return seconds

    def size(self, key: str) -> int | None:
        value = self._raw(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            size = value
        else:
            size = self._parsed(key, value, parse_size)
        if size <= 0:
            raise ConfigError(key, "must be more than 0 bytes")
        return size

    def path(self, key: str) -> Path | None:
        raw = self._raw(key)
        value = str(raw) if isinstance(raw, Path) else self.get_str(key)  # flags give Paths
        if value is None:
            return None
        if not value.strip():
            raise ConfigError(key, "must not be empty")
        path = Path(value).expanduser()
        base = self._merged[key][1]
        return base / path if base is not None and not path.is_absolute() else path

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get_str(key, default)
        assert value is not None
        if value.lower() not in choices:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(choices)}")
        return value.lower()


def _store(v: _Values) -> StoreConfig:
    data_dir = v.path("store.data_dir")
    if data_dir is None:
        raise ConfigError("store.data_dir", "is required: the folder that holds the binlog files and state",
                          hint="set [store] data_dir, BINHUB_STORE_DATA_DIR or --data-dir")
    durability = Durability.parse(v.get_str("store.durability", "txn") or "txn", key="store.durability")
    retention = RetentionConfig(
        max_age=v.duration("store.retention.max_age"),
        max_size=v.size("store.retention.max_size"),
        max_files=v.get_int("store.retention.max_files", low=1),
        stream_lease_max_age=v.duration("store.retention.stream_lease_max_age"),
    )
    return StoreConfig(data_dir, durability, retention, v.path("store.archive_dir"))


def _read_password_file(key: str, path: Path) -> str:
    try:
        # Only the trailing newline an editor adds is dropped: other whitespace may be intended.
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from None


def _wanted(v: _Values, section: ServiceName, service: ServiceName | None) -> bool:
    """Whether a section's service runs: the one a command runs alone always does (and the other
    never); under ``binhub run``, a section that is given and not disabled."""
    if service is not None:
        return section == service
    return v.section_given(section) and v.get_bool(f"{section}.enabled", True)


def _relay(v: _Values, service: ServiceName | None) -> RelayConfig | None:
    if not _wanted(v, "relay", service):
        return None
    source = parse_source_dsn(v.required_str("relay.source", "the upstream, e.g. mysql://repl:pw@db1:3306"))
    password_file = v.path("relay.password_file")
    if v.has("relay.password") and password_file is not None:
        raise ConfigError("relay.password", "give either relay.password (BINHUB_RELAY_PASSWORD) or relay.password_file, not both")
    if password_file is not None:
        source = source.with_password(_read_password_file("relay.password_file", password_file))
    elif v.has("relay.password"):
        source = source.with_password(v.get_str("relay.password") or "")

    start_gtid = v.get_str("relay.start_gtid")
    start_file = v.get_str("relay.start_file")
    from_now = v.get_bool("relay.from_now", False)
    starts = [k for k, given in (("relay.start_gtid", start_gtid is not None),
                                 ("relay.start_file", start_file is not None),
                                 ("relay.from_now", from_now)) if given]
    if len(starts) > 1:
        raise ConfigError(starts[1], f"conflicts with {starts[0]}: give at most one of start_gtid, start_file, from_now")
    if start_gtid is not None:
        _check_gtid_text(start_gtid)
    if start_file is not None and (not start_file.strip() or "/" in start_file):
        raise ConfigError("relay.start_file", "must be a binlog file name as the upstream lists it, e.g. mysql-bin.000042")
    start_pos = v.get_int("relay.start_pos", low=4, high=2**64 - 1)
    if start_pos is not None and start_file is None:
        raise ConfigError("relay.start_pos", "needs relay.start_file")
    if start_file is not None and start_pos is None:
        start_pos = 4  # the first event after the magic bytes

    ssl_mode = cast(SslMode, v.choice("relay.ssl_mode", SSL_MODES, "preferred"))
    ssl_ca = v.path("relay.ssl_ca")
    if ssl_ca is not None and ssl_mode == "disabled":
        raise ConfigError("relay.ssl_ca", "has no effect with ssl_mode = \"disabled\"; use verify_ca or remove it")

    server_id = v.get_int("relay.server_id", DEFAULT_SERVER_ID, low=1, high=2**32 - 1)
    assert server_id is not None
    return RelayConfig(
        source=source,
        server_id=server_id,
        start_gtid=start_gtid.strip() if start_gtid is not None else None,
        start_file=start_file,
        start_pos=start_pos,
        from_now=from_now,
        semi_sync=v.get_bool("relay.semi_sync", False),
        heartbeat_period=v.seconds("relay.heartbeat_period", DEFAULT_HEARTBEAT_PERIOD),
        connect_timeout=v.seconds("relay.connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        reconnect_max_backoff=v.seconds("relay.reconnect_max_backoff", DEFAULT_RECONNECT_MAX_BACKOFF),
        ssl_mode=ssl_mode,
        ssl_ca=ssl_ca,
        until_caught_up=v.get_bool("relay.until_caught_up", False),
        compress=v.get_bool("relay.compress", False),
    )


# A syntax check only (the relay parses the set for real): MySQL "uuid:1-5:7,uuid:9" or MariaDB
# "0-1-100,1-2-5". It catches the usual mistakes (quotes, a file name) at startup, not at connect.
_MYSQL_GTID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}(:[A-Za-z0-9_]*)*(:\d+(-\d+)?)+", re.I)
_MARIADB_GTID = re.compile(r"\d+-\d+-\d+")


def _check_gtid_text(text: str) -> None:
    items = [i.strip() for i in text.replace("\n", "").split(",")]
    if not text.strip() or not all(_MYSQL_GTID.fullmatch(i) or _MARIADB_GTID.fullmatch(i) for i in items):
        raise ConfigError("relay.start_gtid", f"{text!r} is not a GTID set (MySQL uuid:1-100 or MariaDB 0-1-100)")


def _serve(v: _Values, service: ServiceName | None) -> ServeConfig | None:
    if not _wanted(v, "serve", service):
        return None
    host, port = parse_listen(v.get_str("serve.listen", DEFAULT_SERVE_LISTEN) or DEFAULT_SERVE_LISTEN, key="serve.listen")
    users_file, users = v.path("serve.users_file"), _serve_users(v)
    if users_file is None and not users:
        # Serving binlogs means serving every row of every table: no anonymous default.
        raise ConfigError("serve.users_file", "is required: the file of the replicas' users and password "
                          "hashes, or one account in serve.user and serve.password",
                          hint="create the file with `binhub user add --users FILE NAME`; "
                          "binhub serve takes --users FILE or --user NAME --password PW")
    if users_file is not None and users:
        raise ConfigError("serve.user", "conflicts with serve.users_file: give one of them")
    # Towards replicas binhub is "the primary": by default it reuses its relay identity (also when
    # the relay runs in another process from the same config file).
    default_id = v.get_int("relay.server_id", DEFAULT_SERVER_ID, low=1, high=2**32 - 1)
    server_id = v.get_int("serve.server_id", default_id, low=1, high=2**32 - 1)
    assert server_id is not None
    cert, key = v.path("serve.tls_cert"), v.path("serve.tls_key")
    if (cert is None) != (key is None):
        missing = "serve.tls_key" if key is None else "serve.tls_cert"
        raise ConfigError(missing, "tls_cert and tls_key go together; give both or neither")
    tls = v.get_bool("serve.tls", True)
    if not tls and cert is not None:
        raise ConfigError("serve.tls_cert", "has no effect with tls = false; remove it or turn TLS on")
    auth = v.choice("serve.default_auth", SERVE_AUTH_CHOICES, "auto").lower()
    return ServeConfig(host, port, server_id, users_file=users_file, users=users, tls=tls, tls_cert=cert,
                       tls_key=key, default_auth=None if auth == "auto" else auth,
                       replica_ahead_wait=v.seconds("serve.replica_ahead_wait", REPLICA_AHEAD_WAIT, allow_zero=True))


def _serve_users(v: _Values) -> tuple[User, ...]:
    """The single fixed account of ``serve.user``/``serve.password`` (``binhub serve --user``), hashed."""
    name = v.get_str("serve.user")
    if name is None:
        if v.has("serve.password"):
            raise ConfigError("serve.password", "needs serve.user (the account it is the password of)")
        return ()
    password = v.get_str("serve.password")
    if password is None:
        raise ConfigError("serve.password", f"is required with serve.user (the password of {name!r})",
                          hint="set BINHUB_SERVE_PASSWORD rather than writing it into a file")
    try:
        return (make_user(name, password),)
    except ConfigError as exc:
        raise ConfigError("serve.user", exc.reason) from None


def _http(v: _Values, service: ServiceName | None) -> HttpConfig:
    host, port = parse_listen(v.get_str("http.listen", DEFAULT_HTTP_LISTEN) or DEFAULT_HTTP_LISTEN, key="http.listen")
    # `binhub relay` and `binhub serve` often run side by side on one host: the admin API (one
    # port) is theirs only when asked for; `binhub run` has it by default.
    default = service is None or v.section_given("http")
    return HttpConfig(enabled=v.get_bool("http.enabled", default), host=host, port=port)


def _log(v: _Values) -> LogConfig:
    return LogConfig(
        level=cast(LogLevel, v.choice("log.level", LOG_LEVELS, "info")),
        format=cast(LogFormat, v.choice("log.format", LOG_FORMATS, "text")),
    )


_KAFKA_KEYS = frozenset({"kafka_id", "kafka_ddl_topic", "kafka_checkpoint_topic", "kafka_transactions",
                         "kafka_max_message_size", "kafka_timeout", "kafka_partitions"})
_STREAM_KEYS = frozenset({"name", "to", "include", "exclude", "start_gtid", "start_file", "start_pos", "from_now",
                          "rotate_size", "until_caught_up", "format", "workers", "ordered", "on_conflict",
                          "safe_mode", "rename", "skip_gtids", "lease", "exclude_columns", "mask_columns",
                          "seed_from", "transaction_metadata"}) | _KAFKA_KEYS


def _array_sections(sections: Any, section: str, keys: frozenset[str], base: Path,
                    env: Mapping[str, str]) -> Iterator[tuple[str, dict[str, Any], _Values]]:
    """Each table of ``[[section]]``: where it is (``stream[2]``), its raw keys, its values (env expanded)."""
    if not isinstance(sections, list) or not all(isinstance(t, dict) for t in sections):
        raise ConfigError(section, f"must be an array of tables ([[{section}]]), one per {section}")
    for i, table in enumerate(sections, 1):
        where = f"{section}[{i}]"
        for key in table:
            if key not in keys:
                raise _unknown(f"{where}.{key}", sorted(keys))
        yield where, table, _Values({f"{where}.{k}": (_expand_env(f"{where}.{k}", v, env) if isinstance(v, str)
                                                      else v, base) for k, v in table.items()})


def _streams(sections: Any, base: Path, env: Mapping[str, str]) -> tuple[StreamConfig, ...]:
    """``[[stream]]`` sections (file only: a list of tables has no flat env names)."""
    if sections is None:
        return ()
    # Here, not at the top: the stream package imports the schema parser (sqlglot), ~0.15 s that a
    # config without streams (every relay and serve) should not pay.
    from binhub.stream.config import DEFAULT_ROTATE_BYTES, StreamConfig, StreamStart
    from binhub.stream.formats import FORMATS

    out: list[StreamConfig] = []
    for where, table, values in _array_sections(sections, "stream", _STREAM_KEYS, base, env):
        name = values.required_str(f"{where}.name", "the stream's name (its files, checkpoint and lease)")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"{where}.name", f"{name!r}: use letters, digits, '.', '_' and '-' (it names files)")
        if any(s.name == name for s in out):
            raise ConfigError(f"{where}.name", f"{name!r} names two streams; each needs its own")
        to = values.required_str(f"{where}.to", "where the changes go: jsonl:DIR, -, kafka://HOST:PORT/TOPIC "
                                                "or mysql://USER:PW@HOST:PORT")
        kind, _, rest = to.partition(":")
        if kind in ("mysql", "mariadb"):
            parse_mysql_target(to, key=f"{where}.to")
        elif kind == "kafka":
            KafkaTarget.parse(to, f"{where}.to")
        elif to != "-":
            if kind != "jsonl" or not rest:
                raise ConfigError(f"{where}.to", f"{to!r} is not a sink binhub knows: use jsonl:DIR, -, "
                                                 "kafka://HOST:PORT/TOPIC or mysql://USER:PW@HOST:PORT")
            to = f"jsonl:{base / Path(rest).expanduser()}"
        output = values.choice(f"{where}.format", tuple(FORMATS), "binhub")
        starts = [k for k in ("start_gtid", "start_file", "from_now") if table.get(k)]
        if len(starts) > 1:
            raise ConfigError(f"{where}.{starts[1]}", f"conflicts with {where}.{starts[0]}: give one start")
        if "start_pos" in table and "start_file" not in table:
            raise ConfigError(f"{where}.start_pos", f"needs {where}.start_file")
        rotate = values.get_str(f"{where}.rotate_size")
        out.append(StreamConfig(
            name=name, to=to, format=output, kafka=_kafka(values, where),
            rotate_bytes=parse_size(rotate) if rotate else DEFAULT_ROTATE_BYTES,
            include=_table_patterns(values, f"{where}.include"), exclude=_table_patterns(values, f"{where}.exclude"),
            until_caught_up=values.get_bool(f"{where}.until_caught_up", False),
            lease=values.get_bool(f"{where}.lease", True),
            seed_from=_seed_from(values, f"{where}.seed_from"),
            exclude_columns=_column_rules(values, f"{where}.exclude_columns", masking=False),
            mask_columns=_column_rules(values, f"{where}.mask_columns", masking=True),
            start=StreamStart(gtid=values.get_str(f"{where}.start_gtid"), file=values.get_str(f"{where}.start_file"),
                              pos=values.get_int(f"{where}.start_pos", low=4),
                              from_now=values.get_bool(f"{where}.from_now", False)),
            apply=_apply_options(values, where),
            transaction_metadata=values.get_bool(f"{where}.transaction_metadata", False)))
    return tuple(out)


_APPLY_KEYS = frozenset({"name", "from", "to", "format", "kafka_id", "kafka_checkpoint_topic", "kafka_timeout",
                         "include", "exclude", "until_caught_up", "workers", "ordered", "on_conflict", "safe_mode",
                         "rename", "skip_gtids"})


def _applies(sections: Any, base: Path, env: Mapping[str, str]) -> tuple[KafkaApplyConfig, ...]:
    """``[[apply]]`` sections: Kafka topics applied to MySQL (file only, as ``[[stream]]``)."""
    if sections is None:
        return ()
    from binhub.apply.config import FORMATS, KafkaApplyConfig, KafkaSource

    out: list[KafkaApplyConfig] = []
    for where, _, values in _array_sections(sections, "apply", _APPLY_KEYS, base, env):
        name = values.required_str(f"{where}.name", "the name of the stream that wrote the topics (and of the "
                                                    "apply's checkpoint downstream)")
        if any(a.name == name for a in out):
            raise ConfigError(f"{where}.name", f"{name!r} names two applies; each needs its own")
        source = KafkaSource.parse(values.required_str(f"{where}.from", "the topics: kafka://HOST:PORT/TOPIC"),
                                   f"{where}.from")
        to = values.required_str(f"{where}.to", "the server to apply to: mysql://USER:PW@HOST:PORT")
        parse_mysql_target(to, key=f"{where}.to")
        out.append(KafkaApplyConfig(
            source=source, to=to, name=name, format=values.choice(f"{where}.format", FORMATS, "binhub"),
            kafka_id=values.get_str(f"{where}.kafka_id") or "",
            checkpoint_topic=values.get_str(f"{where}.kafka_checkpoint_topic") or KafkaOptions().checkpoint_topic,
            include=_table_patterns(values, f"{where}.include"), exclude=_table_patterns(values, f"{where}.exclude"),
            until_caught_up=values.get_bool(f"{where}.until_caught_up", False),
            timeout=values.seconds(f"{where}.kafka_timeout", KafkaOptions().timeout),
            apply=_apply_options(values, where)))
    return tuple(out)


def _apply_options(values: _Values, where: str) -> ApplyOptions:
    """The mysql:// sink's keys of a ``[[stream]]``."""
    conflict = values.get_str(f"{where}.on_conflict") or OnConflict.STOP.value
    if conflict not in {c.value for c in OnConflict}:
        raise ConfigError(f"{where}.on_conflict", f"{conflict!r}: use stop, overwrite or skip")
    return ApplyOptions(workers=values.get_int(f"{where}.workers", 1, low=1, high=256) or 1,
                        ordered=values.get_bool(f"{where}.ordered", False), on_conflict=OnConflict(conflict),
                        safe_mode=values.get_bool(f"{where}.safe_mode", False),
                        rename=_str_list(values, f"{where}.rename"), skip_gtids=_str_list(values, f"{where}.skip_gtids"),
                        skip_key=f"{where}.skip_gtids")


def _kafka(values: _Values, where: str) -> KafkaOptions:
    defaults = KafkaOptions()
    size = values.size(f"{where}.kafka_max_message_size")
    return KafkaOptions(
        id=values.get_str(f"{where}.kafka_id") or "",
        ddl_topic=values.get_str(f"{where}.kafka_ddl_topic") or "",
        checkpoint_topic=values.get_str(f"{where}.kafka_checkpoint_topic") or defaults.checkpoint_topic,
        transactions=values.choice(f"{where}.kafka_transactions", ("auto", "on", "off"), "auto"),
        max_message_bytes=size if size is not None else defaults.max_message_bytes,
        timeout=values.seconds(f"{where}.kafka_timeout", defaults.timeout),
        partitions=values.get_int(f"{where}.kafka_partitions", defaults.partitions, low=-1) or defaults.partitions)


def _seed_from(values: _Values, key: str) -> str | None:
    text = values.get_str(key)
    if text:
        parse_source_dsn(text, key=key)  # refused now, not when the stream first needs it
    return text or None


def _column_rules(values: _Values, key: str, *, masking: bool) -> tuple[str, ...]:
    from binhub.stream.columns import ColumnRules  # here: the stream package loads sqlglot (see _streams)

    rules = _str_list(values, key, what="DB.TABLE.COLUMN globs, e.g. [\"shop.*.email\"]")
    try:
        ColumnRules(mask=rules) if masking else ColumnRules(exclude=rules)
    except ConfigError as exc:
        raise ConfigError(key, exc.reason) from None
    return rules


def _str_list(values: _Values, key: str, what: str = "db.table globs, e.g. [\"shop.*\"]") -> tuple[str, ...]:
    raw = values._raw(key)
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(key, f"must be a list of {what}")
    return tuple(raw)


def _table_patterns(values: _Values, key: str) -> tuple[str, ...]:
    patterns = _str_list(values, key)
    try:
        return tuple(parse_table_pattern(p) for p in patterns)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    service: ServiceName | None = None,
) -> Config:
    """Read the TOML file (if any), then ``BINHUB_*`` env vars, then ``overrides``; validate all.

    ``env`` defaults to ``os.environ``; tests pass their own. ``service`` is for a command that runs
    one service alone (``binhub relay``, ``binhub serve``): that service is required whatever
    ``enabled`` says, the other is off, and the admin API is off unless an ``http`` key is given.
    Raises :class:`ConfigError`.
    """
    environ = os.environ if env is None else env
    merged: _Layer = {}
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        data, base = _read_toml(path), path.resolve().parent
        merged.update(_file_layer(data, base, environ))
    merged.update(_env_layer(environ))
    merged.update(_flag_layer(overrides or {}))
    values = _Values(merged)
    relay = _relay(values, service)
    streams = _streams(data.get("stream"), base, environ) if service is None else ()
    applies = _applies(data.get("apply"), base, environ) if service is None else ()
    if relay is not None:
        # A stream meeting a table its history lacks seeds it from the upstream the relay reads.
        streams = tuple(s if s.seed_from else dataclasses.replace(s, seed_from=relay.source.secret_url())
                        for s in streams)
    return Config(
        store=_store(values),
        relay=relay,
        serve=_serve(values, service),
        http=_http(values, service),
        log=_log(values),
        streams=streams,
        applies=applies,
    )
