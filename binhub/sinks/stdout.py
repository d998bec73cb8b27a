"""``--to -``: a stream's lines on standard output, flushed at each commit; no checkpoint."""

from __future__ import annotations

import contextlib
import sys
from typing import BinaryIO

from binhub.errors import StorageError
from binhub.sinks.base import Checkpoint, CheckpointSource, output_error

__all__ = ["StdoutSink"]

_HINT = "standard output could not take more: free space where it goes and start the stream again"


class StdoutSink:
    """``--to -``: lines to standard output, flushed at each commit; no checkpoint."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout.buffer

    def resume_point(self) -> Checkpoint | None:
        return None

    def write(self, data: bytes) -> None:
        try:
            self.out.write(data)
        except BrokenPipeError:
            raise  # the reader went away (| head): click ends quietly
        except OSError as exc:
            raise _output_error(exc, "cannot write to standard output") from exc

    def transaction_end(self, end: CheckpointSource) -> None:
        pass

    def commit(self) -> None:
        try:
            self.out.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _output_error(exc, "cannot write to standard output") from exc

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.out.flush()


def _output_error(exc: OSError, what: str) -> StorageError:
    return output_error(exc, what, disk_full_hint=_HINT)
