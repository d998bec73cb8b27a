"""binhub JSON: one object per row change, one line each.

``{"op", "db", "table", "pk", "before", "after", "gtid", "file", "pos", "ts"}`` where ``ts`` is the
commit time in UTC (ISO-8601, microseconds when the server recorded them) and values are in the
form :mod:`binhub.binlog.column_values` describes, with bytes as base64 and:

* GEOMETRY: ``{"srid": n, "wkb": base64}``;
* text binhub could not decode: ``{"undecoded": base64, "charset": name | null}``;
* a JSON column's ``null``: ``null`` (a JSON document of its own, unlike SQL NULL only in Python);
* DECIMALs inside JSON documents: the number as MySQL wrote it (``1.50``);
* a PARTIAL_UPDATE_ROWS JSON column whose before image lacks the document (MINIMAL images):
  ``{"json_diff": [{"op": "replace"|"insert"|"remove", "path": "$.a", "value": ...}]}``.

Flags: ``"positional": true`` when column names are unknown (``@1`` …), ``"partial": true`` when
the images hold only the columns the event carries (MINIMAL/NOBLOB row images).

Serialised with orjson: it writes these lines several times faster than the stdlib.
"""

from __future__ import annotations

import base64
import decimal
import functools
from datetime import UTC, datetime
from typing import Any

import orjson

from binhub.binlog.changes import RowChange
from binhub.binlog.column_values import Geometry, JsonNull, UndecodedText
from binhub.binlog.json_binary import JsonDiff
from binhub.binlog.row_decoder import PartialJson

_DIFF_OPS = {JsonDiff.REPLACE: "replace", JsonDiff.INSERT: "insert", JsonDiff.REMOVE: "remove"}

__all__ = ["change_to_dict", "dumps_change", "format_commit_time", "json_default"]


def json_default(value: Any) -> Any:
    """orjson's hook for the binhub-form values JSON has no type for."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, JsonNull):
        return None
    if isinstance(value, Geometry):
        return {"srid": value.srid, "wkb": base64.b64encode(value.wkb).decode("ascii")}
    if isinstance(value, UndecodedText):
        return {"undecoded": base64.b64encode(value.data).decode("ascii"), "charset": value.charset}
    if isinstance(value, PartialJson):
        return {"json_diff": [{"op": _DIFF_OPS[d.operation], "path": d.path, "value": d.value} if
                              d.operation != JsonDiff.REMOVE else {"op": "remove", "path": d.path}
                              for d in value.diffs]}
    if isinstance(value, decimal.Decimal):
        return orjson.Fragment(str(value).encode("ascii"))
    raise TypeError(f"binhub JSON has no form for {type(value).__name__}")


@functools.lru_cache(maxsize=256)  # every row of a transaction has the same commit time
def format_commit_time(commit_us: int) -> str:
    """ISO-8601 UTC; microseconds when the server recorded them."""
    seconds, micro = divmod(commit_us, 1_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{micro:06d}Z" if micro else text + "Z"


def change_to_dict(change: RowChange) -> dict[str, Any]:
    out: dict[str, Any] = {
        "op": change.op, "db": change.db, "table": change.table, "pk": change.pk(),
        "before": change.before, "after": change.after, "gtid": change.gtid, "file": change.file,
        "pos": change.pos, "ts": format_commit_time(change.commit_us),
    }
    if not change.names_known:
        out["positional"] = True
    if not change.complete:
        out["partial"] = True
    return out


_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def dumps_change(change: RowChange) -> bytes:
    """One binhub JSON line (without the newline)."""
    return orjson.dumps(change_to_dict(change), default=json_default, option=_OPTIONS)
