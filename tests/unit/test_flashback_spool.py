"""The flashback spool gives transactions back newest first, each with its lines newest first,
the same in memory and spilled to disk (read back from the end in blocks smaller than a line)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from binhub.flashback import spool as spool_module
from binhub.flashback.reading import TransactionMark
from binhub.flashback.spool import Spool


@pytest.mark.parametrize("memory_limit", [1 << 30, 200, 0])
def test_newest_first_in_memory_and_spilled(memory_limit: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "BLOCK", 37)  # lines straddle blocks
    rng = random.Random(memory_limit)
    written = []
    with Spool(memory_limit, tmp_path) as spool:
        for t in range(40):
            lines = [b'{"n":%d,"pad":"%s"}' % (t * 100 + i, b"x" * rng.randint(0, 90)) for i in range(rng.randint(0, 6))]
            if lines:
                spool.add(b"\n".join(lines) + b"\n")
            mark = TransactionMark(f"0-1-{t}" if t % 5 else None, 1700000000 + t, "mysql-bin.000001", t * 10, t * 10 + 9)
            spool.end(mark)
            written.append((mark, lines))
        assert (spool.spilled is not None) == (memory_limit < 1 << 30)
        got = [(mark, list(lines)) for mark, lines in spool.newest_first()]
        assert got == [(mark, lines[::-1]) for mark, lines in reversed(written)]
        assert spool.rows == sum(len(lines) for _, lines in written) and spool.transactions == 40
        # a second pass gives the same (flashback --apply checks every row first, then undoes)
        assert [(mark, list(lines)) for mark, lines in spool.newest_first()] == got
    assert not list(tmp_path.iterdir()), "the spill directory is removed on close"


def test_lines_left_unread_are_skipped() -> None:
    with Spool(0) as spool:
        for t in range(3):
            spool.add(b"a\nb\n")
            spool.end(TransactionMark(None, 0, "f.000001", t, t + 1))
        assert [mark.pos for mark, _ in spool.newest_first()] == [2, 1, 0]
