"""The one error-code enum and the one exception that becomes an ERR packet."""

from __future__ import annotations

import re
from pathlib import Path

from binhub.serve.dump_error import DumpError
from binhub.serve.login import LoginFailed
from binhub.wire.errors import ErrorCode, MysqlError
from binhub.wire.messages import ErrPacket

ROOT = Path(__file__).resolve().parents[2] / "binhub"


def test_codes_carry_the_servers_sqlstates() -> None:
    # A sample checked against MySQL's sql/sql_state.h (the SQLSTATE a client sees with each number).
    assert (ErrorCode.PARSE_ERROR, ErrorCode.PARSE_ERROR.sqlstate) == (1064, "42000")
    assert ErrorCode.ACCESS_DENIED_ERROR.sqlstate == "28000"
    assert ErrorCode.NO_SUCH_TABLE.sqlstate == "42S02"
    assert ErrorCode.CON_COUNT_ERROR.sqlstate == "08004"
    assert ErrorCode.MASTER_FATAL_ERROR_READING_BINLOG.sqlstate == "HY000"
    assert ErrorCode(1236) is ErrorCode.MASTER_FATAL_ERROR_READING_BINLOG
    assert len({int(c) for c in ErrorCode}) == len(list(ErrorCode))


def test_every_error_reply_is_a_mysql_error_with_code_first() -> None:
    for exc in (MysqlError(ErrorCode.NO_SUCH_THREAD, "Unknown thread id: 9"),
                LoginFailed(ErrorCode.ACCESS_DENIED_ERROR, "Access denied", counted=False),
                DumpError("Could not find first log file name in binary log index file")):
        assert isinstance(exc, MysqlError)
        err = ErrPacket.parse(exc.packet())
        assert (err.code, err.sqlstate, err.message) == (int(exc.code), exc.code.sqlstate, str(exc))
    assert DumpError("x").code == ErrorCode.MASTER_FATAL_ERROR_READING_BINLOG


def test_no_error_number_is_written_outside_the_enum() -> None:
    """Error numbers live in binhub.wire.errors only: no ER_* constants, no numeric codes in raises."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path.name == "errors.py" and path.parent.name == "wire":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(ER|CR)_[A-Z_]+\s*=\s*\d+", line) or \
                    re.search(r"(MysqlError|LoginFailed|ErrPacket|UpstreamError|AuthenticationFailed)\(\s*\d", line):
                offenders.append(f"{path.relative_to(ROOT.parent)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
