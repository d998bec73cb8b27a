"""``--to jsonl:DIR``: rotating JSON-lines files with the stream's checkpoint committed atomically with them.

:class:`JsonlSink` writes rotating files ``NAME-000001.jsonl``, … in a directory, and beside them
``NAME.checkpoint.json``: the position after the last complete transaction (store file and offset,
the GTID set executed through it) and the byte offset where its lines end in the output file.
Lines are appended as they are decoded (a transaction of any size streams through); a commit
fsyncs them, then atomically replaces the checkpoint. On open, anything past the checkpoint's
offset (a transaction cut by ``kill -9``, a half-written line) is cut off, so the output always
ends exactly where the checkpoint says and a restart neither loses nor repeats a line.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, replace
from pathlib import Path

from binhub.errors import ConfigError, DiskFull, StorageError
from binhub.sinks.base import Checkpoint, CheckpointSource, output_error
from binhub.store.fsutil import atomic_write, fsync_dir

__all__ = ["DEFAULT_ROTATE_BYTES", "JsonlSink"]

DEFAULT_ROTATE_BYTES = 64 << 20  # a new output file past this size, at a transaction boundary
CHECKPOINT_FORMAT = 1
_WRITE_BUFFER = 1 << 20
_DISK_FULL_HINT = "free space where the stream writes and start it again: it resumes at its checkpoint"


class JsonlSink:
    """Rotating JSON-lines files with a checkpoint committed atomically with them (module docstring)."""

    def __init__(self, directory: Path, name: str, *, rotate_bytes: int = DEFAULT_ROTATE_BYTES) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError("--name", f"{name!r}: use letters, digits, '.', '_' and '-' (it names files)")
        self.directory = directory
        self.name = name
        self.rotate_bytes = rotate_bytes
        self.checkpoint_path = directory / f"{name}.checkpoint.json"
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the stream's output directory {directory}: {exc}") from exc
        self._checkpoint = self._read_checkpoint()
        self._pending: CheckpointSource | None = None
        self._pending_end = 0  # where the pending checkpoint's lines end in the current output file
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._fd = -1
        self._size = 0
        self._open_output()

    # -- Sink -----------------------------------------------------------------------------------
    def resume_point(self) -> Checkpoint | None:
        return self._checkpoint

    def write(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= _WRITE_BUFFER:
            self._flush()

    def transaction_end(self, end: CheckpointSource) -> None:
        # Called once per transaction, committed once per batch: the checkpoint with its output
        # position is only put together (its GTID set printed) when it is committed.
        self._pending = end
        self._pending_end = out_end = self._size + self._buffered  # buffered lines are written before any commit
        if out_end >= self.rotate_bytes:
            self.commit()
            self._rotate()

    def commit(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._flush()
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise _output_error(exc, f"cannot write {self.directory / self._out_name}") from exc
        # Only now, with its lines on disk, may the checkpoint say they are there.
        try:
            done = replace(pending.checkpoint(), out_file=self._out_name, out_offset=self._pending_end)
            atomic_write(self.checkpoint_path, json.dumps({"format": CHECKPOINT_FORMAT, **asdict(done)}).encode())
        except DiskFull as exc:
            exc.hint = _DISK_FULL_HINT
            raise
        self._pending = None

    def close(self) -> None:
        if self._fd >= 0:
            # Lines past the last transaction end are not committed: a restart cuts them anyway.
            os.close(self._fd)
            self._fd = -1

    # -- files ----------------------------------------------------------------------------------
    def _output_path(self, seq: int) -> Path:
        return self.directory / f"{self.name}-{seq:06d}.jsonl"

    def _outputs(self) -> list[tuple[int, Path]]:
        pattern = re.compile(re.escape(self.name) + r"-(\d{6})\.jsonl")
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := pattern.fullmatch(p.name))]
        return sorted(found)

    def _read_checkpoint(self) -> Checkpoint | None:
        try:
            doc = json.loads(self.checkpoint_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StorageError(f"the stream checkpoint {self.checkpoint_path} cannot be read: {exc}",
                               hint="it is replaced atomically, so this is outside damage; restore it, or "
                                    "remove the directory's files to start the stream afresh") from exc
        if not isinstance(doc, dict) or doc.pop("format", None) != CHECKPOINT_FORMAT:
            raise StorageError(f"the stream checkpoint {self.checkpoint_path} is not in a format binhub knows")
        try:
            return Checkpoint(**doc)
        except TypeError as exc:
            raise StorageError(f"the stream checkpoint {self.checkpoint_path} lacks fields: {exc}") from exc

    def _open_output(self) -> None:
        """Open the output file to append to, cutting whatever follows the checkpoint."""
        outputs = self._outputs()
        cp = self._checkpoint
        if cp is None or not cp.out_file:
            keep_seq, keep_size = 1, 0
        else:
            keep_seq = int(cp.out_file.rsplit("-", 1)[1].split(".")[0])
            keep_size = cp.out_offset
        for seq, path in outputs:
            if seq > keep_seq:  # begun after the checkpoint: none of it was committed
                path.unlink()
        path = self._output_path(keep_seq)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            size = os.fstat(self._fd).st_size
            if size < keep_size:
                raise StorageError(f"{path} holds {size} bytes but the checkpoint says {keep_size} were committed",
                                   hint="the output was truncated or replaced outside binhub; restore it, or "
                                        "remove the directory's files to start the stream afresh")
            if size > keep_size:
                os.ftruncate(self._fd, keep_size)
                os.fsync(self._fd)
            os.lseek(self._fd, keep_size, os.SEEK_SET)
            fsync_dir(self.directory)
        except OSError as exc:
            raise _output_error(exc, f"cannot write {path}") from exc
        self._out_seq, self._out_name, self._size = keep_seq, path.name, keep_size

    def _rotate(self) -> None:
        os.close(self._fd)
        path = self._output_path(self._out_seq + 1)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            fsync_dir(self.directory)
        except OSError as exc:
            raise _output_error(exc, f"cannot write {path}") from exc
        self._out_seq, self._out_name, self._size = self._out_seq + 1, path.name, 0

    def _flush(self) -> None:
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise _output_error(exc, f"cannot write {self.directory / self._out_name}") from exc
        self._size += len(data)


def _output_error(exc: OSError, what: str) -> StorageError:
    return output_error(exc, what, disk_full_hint=_DISK_FULL_HINT)
