"""Running a DDL statement downstream as the primary ran it.

The statement runs with the primary session's default database, ``sql_mode`` (``ANSI_QUOTES``
changes how it parses, ``NO_ZERO_DATE`` what a DEFAULT may be), connection and server collations
(a ``CREATE DATABASE`` without a charset takes the server's) and time zone, as the QUERY event
recorded them; the sink's row session is restored afterwards. ``character_set_client`` stays
utf8mb4: the statement is sent as UTF-8 whatever the primary's client used.

A DDL cannot share a transaction with the checkpoint row (it commits implicitly), so slot 0 first
records it as pending; after a crash in between, running it again may fail only because it already
ran (:data:`ALREADY_DONE`), which then counts as done.
"""

from __future__ import annotations

import logging
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]

from binhub.sinks.mysql.connection import Downstream, error_code
from binhub.sinks.mysql.sql import SESSION_SETTINGS, quote_name, quote_text

__all__ = ["ALREADY_DONE", "run_ddl"]

log = logging.getLogger(__name__)

# database exists / doesn't, table exists / unknown, duplicate column / key name, can't drop, unknown column
ALREADY_DONE = frozenset({1007, 1008, 1050, 1051, 1060, 1061, 1091, 1146, 1054})
# Modes one flavour or version does not know: left out when the downstream refuses them.
_OPTIONAL_MODES = frozenset({
    "NO_AUTO_CREATE_USER", "POSTGRESQL", "ORACLE", "MSSQL", "DB2", "MAXDB", "NO_KEY_OPTIONS", "NO_TABLE_OPTIONS",
    "NO_FIELD_OPTIONS", "MYSQL323", "MYSQL40", "IGNORE_BAD_TABLE_OPTIONS", "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT", "TIME_ROUND_FRACTIONAL", "TIME_TRUNCATE_FRACTIONAL"})


def _set_session(downstream: Downstream, session: dict[str, Any], default_db: str) -> None:
    settings = []
    sql_mode = session.get("sql_mode")
    if sql_mode is not None:
        settings.append("sql_mode = " + quote_text(sql_mode))
    for name in ("collation_connection", "collation_server"):
        if session.get(name):
            settings.append(f"{name} = {quote_text(session[name])}")
    if session.get("time_zone"):
        settings.append("time_zone = " + quote_text(session["time_zone"]))
    if default_db:
        try:
            downstream.execute("USE " + quote_name(default_db))
        except pymysql.err.OperationalError as exc:
            if error_code(exc) != 1049:  # unknown database: the statement names its own (CREATE DATABASE)
                raise
    while settings:
        try:
            downstream.execute("SET SESSION " + ", ".join(settings))
            return
        except pymysql.err.MySQLError as exc:
            settings = _without_unknown(settings, sql_mode, session, exc)


def _without_unknown(settings: list[str], sql_mode: str | None, session: dict[str, Any],
                     exc: pymysql.err.MySQLError) -> list[str]:
    """The settings less what the downstream refused as unknown to it (another flavour or version):
    sql_mode's modes of :data:`_OPTIONAL_MODES`, or the collations (MySQL 8's ``utf8mb4_0900_ai_ci``
    on MariaDB, MariaDB's ``uca1400`` ones on MySQL), which then fall to the downstream's defaults.
    Anything else is raised."""
    code = error_code(exc)
    if code == 1231 and sql_mode is not None and settings[0].startswith("sql_mode = "):
        kept = ",".join(m for m in sql_mode.split(",") if m not in _OPTIONAL_MODES)
        if settings[0] != "sql_mode = " + quote_text(kept):
            log.info("the downstream refuses part of sql_mode %s; running the DDL with %s", sql_mode, kept)
            return ["sql_mode = " + quote_text(kept), *settings[1:]]
    if code == 1273 and any(s.startswith("collation_") for s in settings):  # unknown collation
        log.warning("the downstream does not know the collations the DDL ran with on the primary (%s, %s): "
                    "it runs with the downstream's own defaults", session.get("collation_connection"),
                    session.get("collation_server"))
        return [s for s in settings if not s.startswith("collation_")]
    raise exc


def run_ddl(downstream: Downstream, sql: str, session: dict[str, Any], default_db: str) -> None:
    """Run ``sql`` in the primary's session context; the row session afterwards, whatever happens."""
    try:
        _set_session(downstream, session, default_db)
        downstream.execute(sql)
    finally:
        if downstream.connected:
            downstream.execute(SESSION_SETTINGS + ", foreign_key_checks = 0, collation_connection = "
                               "'utf8mb4_general_ci', collation_server = DEFAULT")
