"""Private files (the RSA and TLS keys, the users file) are 0600 from the moment they exist.

The mode is observed at every step that could expose the content: when the data is written into
the temporary file, when it is renamed into place, and at the end; with a umask of 0, so that only
the mode binhub asks for counts.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from binhub import fsutil
from binhub.serve.keys import load_or_create_rsa_keys, self_signed_pair
from binhub.serve.users import UsersFile, make_user


@pytest.fixture
def umask0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Mode of every file at each os.write and os.replace that atomic_write does, by final name."""
    seen: dict[str, list[int]] = {}
    real_write, real_replace = os.write, os.replace

    def record(name: str, mode: int) -> None:
        seen.setdefault(name.removesuffix(".tmp"), []).append(stat.S_IMODE(mode))

    def write(fd: int, data: Any) -> int:
        written = real_write(fd, data)
        record(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1], os.fstat(fd).st_mode)
        return written

    def replace(src: Any, dst: Any) -> None:
        record(Path(dst).name, os.stat(src).st_mode)
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "write", write)
    monkeypatch.setattr(fsutil.os, "replace", replace)
    return seen


def _final(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_private_mode_from_the_start(tmp_path: Path, umask0: None,
                                                  observed: dict[str, list[int]]) -> None:
    target = tmp_path / "secret"
    # A leftover temporary file of a crashed write, world-readable: its mode must not be reused.
    (tmp_path / "secret.tmp").write_bytes(b"old")
    os.chmod(tmp_path / "secret.tmp", 0o644)
    fsutil.atomic_write(target, b"new secret", mode=0o600)
    assert observed["secret"] and set(observed["secret"]) == {0o600}
    assert _final(target) == 0o600 and target.read_bytes() == b"new secret"
    fsutil.atomic_write(tmp_path / "public", b"x")  # the default stays 0644
    assert _final(tmp_path / "public") == 0o644


@pytest.mark.parametrize("make", [
    lambda d: load_or_create_rsa_keys(d),
    lambda d: self_signed_pair(d),
    lambda d: UsersFile(d / "users.json").add(make_user("repl", "pw")),
], ids=["rsa-key", "tls-key", "users-file"])
def test_private_files_are_never_readable_by_others(tmp_path: Path, umask0: None, observed: dict[str, list[int]],
                                                    make: Callable[[Path], Any]) -> None:
    make(tmp_path)
    private = {"rsa_private.pem", "tls_key.pem", "users.json"}
    names = private & set(observed)
    assert len(names) == 1, observed
    name = names.pop()
    assert set(observed[name]) == {0o600}, f"{name} was {[oct(m) for m in observed[name]]} at some point"
    assert _final(tmp_path / name) == 0o600
