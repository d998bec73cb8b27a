"""A stream's output formats (``--format``): one module each, behind :class:`OutputFormat`.

* ``binhub`` — binhub JSON lines (:mod:`binhub.binlog.json_form`), written by the C encoder;
* ``debezium`` — Debezium's MySQL connector envelope (``before/after/source/op/ts_ms``);
* ``canal`` — Canal's FlatMessage JSON (``canal.mq.flatMessage=true``);
* ``maxwell`` — Maxwell's daemon JSON.

docs/stream.md lists, per format, each field and each column type's encoding.
"""

from binhub.errors import ConfigError
from binhub.stream.formats.base import DdlChange, DdlTable, OutputFormat, TransactionContext, Walker
from binhub.stream.formats.binhub import BinhubFormat
from binhub.stream.formats.canal import CanalFormat
from binhub.stream.formats.debezium import DebeziumFormat
from binhub.stream.formats.maxwell import MaxwellFormat

__all__ = ["FORMATS", "BinhubFormat", "CanalFormat", "DdlChange", "DdlTable", "DebeziumFormat", "MaxwellFormat",
           "OutputFormat", "TransactionContext", "Walker", "output_format"]

FORMATS: dict[str, type[OutputFormat]] = {f.name: f for f in (BinhubFormat, DebeziumFormat, CanalFormat, MaxwellFormat)}


def output_format(name: str, *, stream_name: str, keyed: bool, transaction_metadata: bool = False) -> OutputFormat:
    """The ``--format`` called ``name``, for a keyed sink (one message per change) or a line sink."""
    try:
        cls = FORMATS[name]
    except KeyError:
        raise ConfigError("--format", f"{name!r} is not a format binhub writes: use one of "
                                      f"{', '.join(FORMATS)}") from None
    return cls(stream_name=stream_name, keyed=keyed, transaction_metadata=transaction_metadata)
