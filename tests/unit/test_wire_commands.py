"""Client commands and the semi-sync framing, both directions."""

from __future__ import annotations

import struct

import pytest

from binhub.errors import MalformedPacket, UnexpectedPacket
from binhub.wire.commands import (
    ComBinlogDump,
    ComBinlogDumpGtid,
    ComInitDb,
    ComPing,
    ComQuery,
    ComQuit,
    ComRegisterSlave,
    SemisyncAck,
    add_semisync_header,
    command_of,
    strip_semisync_header,
)
from binhub.wire.constants import BinlogDumpFlag, Command


def test_com_query() -> None:
    raw = ComQuery("SELECT 'é'").build()
    assert raw == b"\x03SELECT '\xc3\xa9'"
    assert ComQuery.parse(raw) == ComQuery("SELECT 'é'")
    assert command_of(raw) is Command.QUERY


def test_simple_commands() -> None:
    assert ComPing().build() == b"\x0e" and ComPing.parse(b"\x0e") == ComPing()
    assert ComQuit().build() == b"\x01" and ComQuit.parse(b"\x01") == ComQuit()
    assert ComInitDb.parse(ComInitDb("db").build()) == ComInitDb("db")
    with pytest.raises(UnexpectedPacket):
        ComPing.parse(b"\x01")


def test_register_slave_layout() -> None:
    cmd = ComRegisterSlave(1001, "replica1", "u", "p", 3307)
    raw = cmd.build()
    assert raw == (b"\x15" + (1001).to_bytes(4, "little") + b"\x08replica1" + b"\x01u" + b"\x01p"
                   + (3307).to_bytes(2, "little") + b"\x00" * 8)
    assert ComRegisterSlave.parse(raw) == cmd
    # Old clients leave out rank and master_id.
    assert ComRegisterSlave.parse(raw[:-8]) == cmd


def test_register_slave_host_too_long() -> None:
    with pytest.raises(ValueError):
        ComRegisterSlave(1, "h" * 256).build()


def test_binlog_dump_layout() -> None:
    cmd = ComBinlogDump(4, 77, "mysql-bin.000001", BinlogDumpFlag.NON_BLOCK | BinlogDumpFlag.SEND_ANNOTATE_ROWS)
    raw = cmd.build()
    assert raw == b"\x12\x04\x00\x00\x00\x03\x00\x4d\x00\x00\x00mysql-bin.000001"
    assert ComBinlogDump.parse(raw) == cmd
    assert ComBinlogDump.parse(ComBinlogDump(4, 1).build()).filename == ""


def test_binlog_dump_position_range() -> None:
    with pytest.raises(ValueError):
        ComBinlogDump(1 << 32, 1).build()


def test_binlog_dump_gtid_round_trip() -> None:
    gtid = bytes(8) + b"\x01" * 16
    cmd = ComBinlogDumpGtid(5, gtid, "binlog.000003", 4,
                            BinlogDumpFlag.THROUGH_GTID | BinlogDumpFlag.USE_HEARTBEAT_EVENT_V2)
    raw = cmd.build()
    assert raw[:3] == b"\x1e\x06\x00"
    assert ComBinlogDumpGtid.parse(raw) == cmd


def test_binlog_dump_gtid_without_data() -> None:
    cmd = ComBinlogDumpGtid(5, b"", "", 4, BinlogDumpFlag.NON_BLOCK)
    assert ComBinlogDumpGtid.parse(cmd.build()) == cmd
    with pytest.raises(ValueError):
        ComBinlogDumpGtid(5, b"x", flags=BinlogDumpFlag(0)).build()


def test_binlog_dump_gtid_truncated() -> None:
    raw = ComBinlogDumpGtid(5, b"\x00" * 40).build()
    for cut in (3, 10, 20, len(raw) - 1):
        with pytest.raises(MalformedPacket):
            ComBinlogDumpGtid.parse(raw[:cut])


def test_semisync_event_header() -> None:
    framed = add_semisync_header(b"EVENT", need_ack=True)
    assert framed == b"\xef\x01EVENT"
    need, event = strip_semisync_header(framed)
    assert need and bytes(event) == b"EVENT"
    assert strip_semisync_header(add_semisync_header(b"E", need_ack=False))[0] is False
    with pytest.raises(MalformedPacket):
        strip_semisync_header(b"\x00\x01E")


def test_semisync_ack() -> None:
    ack = SemisyncAck("mysql-bin.000002", 123456)
    raw = ack.build()
    assert raw == b"\xef" + (123456).to_bytes(8, "little") + b"mysql-bin.000002"
    assert SemisyncAck.parse(raw) == ack


def test_unknown_command() -> None:
    with pytest.raises(MalformedPacket):
        command_of(b"\x99")
    with pytest.raises(MalformedPacket):
        command_of(b"")


def test_dump_file_names_are_c_strings() -> None:
    """mariadbd (strlen) and mysqld (mem_strdup) read the name up to its first NUL."""
    raw = b"\x12" + struct.pack("<IHI", 4, 0, 9) + b"\0\0\0\0"  # PyPI mysql-replication, MariaDB mode
    assert ComBinlogDump.parse(raw) == ComBinlogDump(4, 9, "")
    assert ComBinlogDump.parse(raw[:-4] + b"mysql-bin.000002\0junk").filename == "mysql-bin.000002"
    # mysql-replication's COM_BINLOG_DUMP_GTID: a 3-byte name of NULs, then position 4 and the set.
    gtid = b"\x1e" + struct.pack("<HII", 4, 9, 3) + b"\0\0\0" + struct.pack("<QI", 4, 8) + bytes(8)
    assert ComBinlogDumpGtid.parse(gtid) == ComBinlogDumpGtid(9, bytes(8), "", 4, BinlogDumpFlag.THROUGH_GTID)
    # mysqld reads the GTID data size whatever the flags say.
    assert ComBinlogDumpGtid.parse(gtid[:1] + b"\0\0" + gtid[3:]).gtid_data == bytes(8)


def test_dump_gtid_name_longer_than_fn_reflen_is_malformed() -> None:
    ok = ComBinlogDumpGtid(5, b"", "b" * 512, 4, BinlogDumpFlag(0)).build()
    assert ComBinlogDumpGtid.parse(ok).filename == "b" * 512
    with pytest.raises(MalformedPacket):
        ComBinlogDumpGtid.parse(ComBinlogDumpGtid(5, b"", "b" * 513, 4, BinlogDumpFlag(0)).build())
