"""The page-checked tablespace copy and the datadir inventory, on files made here (no server)."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from binhub.backup.datafiles import TablespaceCopier, take_inventory
from binhub.errors import PageCorrupted
from binhub.innodb import crc32c

PAGE = 16384
FLAGS_FULL_CRC32 = 0x15


def _page(page_no: int, *, flags: int | None = None, fill: int = 0x41) -> bytearray:
    page = bytearray([fill]) * PAGE
    struct.pack_into(">IIIIQH", page, 0, 0, page_no, 0xFFFFFFFF, 0xFFFFFFFF, 1000 + page_no, 17855)
    if flags is not None:
        struct.pack_into(">I", page, 38 + 16, flags)
    page[PAGE - 8:PAGE - 4] = page[20:24]
    struct.pack_into(">I", page, PAGE - 4, crc32c(page[:PAGE - 4]))
    return page


def _tablespace(path: Path, pages: int) -> list[bytearray]:
    content = [_page(0, flags=FLAGS_FULL_CRC32)] + [_page(n) for n in range(1, pages)]
    path.write_bytes(b"".join(content))
    return content


def _copier(retries: int = 3) -> TablespaceCopier:
    return TablespaceCopier(default_page_size=PAGE, retries=retries, retry_delay=0.05)


def test_a_clean_tablespace_is_copied_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "t.ibd"
    _tablespace(src, 100)  # more than one 1 MiB chunk
    seen: list[int] = []
    copied = _copier().copy(src, tmp_path / "out" / "t.ibd", "db/t.ibd", None, seen.append)
    assert (tmp_path / "out" / "t.ibd").read_bytes() == src.read_bytes()
    assert (copied.size, copied.pages_reread, sum(seen)) == (100 * PAGE, 0, 100 * PAGE)


def test_a_torn_page_is_read_again_until_the_write_finished(tmp_path: Path) -> None:
    src = tmp_path / "t.ibd"
    pages = _tablespace(src, 10)
    torn = bytearray(pages[7])
    torn[PAGE // 2:] = _page(7, fill=0x42)[PAGE // 2:]  # the second half of a newer write
    with open(src, "r+b") as f:
        f.seek(7 * PAGE)
        f.write(torn)

    def finish_the_write() -> None:
        with open(src, "r+b") as f:
            f.seek(7 * PAGE)
            f.write(_page(7, fill=0x42))

    timer = threading.Timer(0.08, finish_the_write)
    timer.start()
    try:
        copied = _copier(retries=40).copy(src, tmp_path / "t.copy", "db/t.ibd", None, lambda n: None)
    finally:
        timer.join()
    assert copied.pages_reread == 1
    assert (tmp_path / "t.copy").read_bytes()[7 * PAGE:8 * PAGE] == _page(7, fill=0x42)


def test_a_page_that_stays_bad_is_named(tmp_path: Path) -> None:
    src = tmp_path / "t.ibd"
    _tablespace(src, 10)
    with open(src, "r+b") as f:
        f.seek(5 * PAGE + 1234)
        f.write(b"\xff\xff")
    with pytest.raises(PageCorrupted) as caught:
        _copier(retries=2).copy(src, tmp_path / "t.copy", "db/t.ibd", None, lambda n: None)
    assert (caught.value.file, caught.value.page_no) == ("db/t.ibd", 5)
    assert "db/t.ibd: page 5 is corrupted (full_crc32 checksum" in str(caught.value)


def test_a_page_0_not_yet_on_disk_takes_innodbs_flags(tmp_path: Path) -> None:
    src = tmp_path / "t.ibd"
    content = [bytearray(PAGE)] + [_page(n) for n in range(1, 4)] + [bytearray(PAGE)]
    bad = bytearray(content[2])
    bad[300] ^= 1
    src.write_bytes(b"".join(content[:2] + [bad] + content[3:]))
    # Without the hint the pages could not be checked; with it, page 2 is caught.
    assert _copier().copy(src, tmp_path / "a", "db/t.ibd", None, lambda n: None).size == 5 * PAGE
    with pytest.raises(PageCorrupted, match="page 2"):
        _copier(retries=1).copy(src, tmp_path / "b", "db/t.ibd", FLAGS_FULL_CRC32, lambda n: None)


def test_inventory_groups_files_by_the_stage_that_freezes_them(tmp_path: Path) -> None:
    for rel in ("ibdata1", "undo001", "ib_logfile0", "ibtmp1", "mysql-bin.000001", "aria_log.00000001",
                "aria_log_control", "db/t.ibd", "db/t.frm", "db/m.MYD", "db/m.MYI", "db/a.MAD", "db/db.opt",
                "db/#sql-alter-1.frm", "mysql/table_stats.MAI", "mysql/general_log.CSV", "mysql/user.MAD",
                "#innodb_temp/temp_1.ibt", "db/t.ibd.tmp"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (3 if rel == "undo001" else 1))
    inventory = take_inventory(tmp_path)
    assert [f.relpath for f in inventory.innodb] == ["undo001", "db/t.ibd", "ibdata1"]
    assert {f.relpath for f in inventory.other} == {"db/t.frm", "db/m.MYD", "db/m.MYI", "db/a.MAD", "db/db.opt",
                                                    "mysql/user.MAD"}
    assert [f.relpath for f in inventory.at_commit] == ["mysql/general_log.CSV", "mysql/table_stats.MAI",
                                                        "aria_log_control", "aria_log.00000001"]


DIRECT_WRITE_OVER_A_LIMIT = """
import errno, mmap, os, resource, signal, sys
from pathlib import Path
from binhub.backup.datafiles import create_backup_fd, is_direct, write_all
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = (4 << 20) + 1000  # the disk "fills" inside a page: what is left of a write is no longer aligned
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
fd = create_backup_fd(Path(sys.argv[1]), direct=True)
direct = is_direct(fd)
try:
    write_all(fd, memoryview(mmap.mmap(-1, 8 << 20)))
except OSError as exc:
    print(direct, errno.errorcode[exc.errno], os.fstat(fd).st_size)
"""


def test_a_direct_write_cut_short_by_a_full_disk_says_so_and_keeps_what_fitted(tmp_path: Path) -> None:
    """A direct-I/O write the disk (here a file-size limit) cuts inside a page is refused as
    unaligned (EINVAL); the copy goes on buffered, so the error is the full disk, as without O_DIRECT."""
    proc = subprocess.run([sys.executable, "-c", DIRECT_WRITE_OVER_A_LIMIT, str(tmp_path / "f")],
                          capture_output=True, text=True, timeout=60, check=True)
    direct, error, size = proc.stdout.split()
    if direct != "True":
        pytest.skip("the filesystem of the test's temporary directory has no direct I/O")
    assert (error, int(size)) == ("EFBIG", (4 << 20) + 1000)


def test_compressed_pages_smaller_than_a_disk_block_are_copied_buffered(tmp_path: Path) -> None:
    """ROW_FORMAT=COMPRESSED pages of 1 KiB cannot be read or written with direct I/O (unaligned):
    the copy falls back to buffered I/O and is still exact."""
    src = tmp_path / "t.ibd"
    src.write_bytes(bytes(5 * 1024 + 100))  # no page 0 yet, an unknown file: copied unchecked in 1 KiB pages
    copier = TablespaceCopier(default_page_size=1024, retries=1, retry_delay=0.01)
    copied = copier.copy(src, tmp_path / "out" / "t.ibd", "db/t.ibd", None, lambda n: None)
    assert (tmp_path / "out" / "t.ibd").read_bytes() == src.read_bytes()[:5 * 1024]
    assert copied.size == 5 * 1024
