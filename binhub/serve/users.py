"""The replicas' accounts: a users file that holds password hashes only, never a password.

Each user has the two hashes the supported auth plugins verify against, as MySQL stores them:

* ``mysql_native_password``: ``*`` + hex SHA1(SHA1(pw)) (``mysql.user.authentication_string``);
* ``caching_sha2_password``: ``$A$005$`` + a 20-character salt + a SHA-256 crypt (Drepper's
  algorithm, 5000 rounds), the format of MySQL's ``sql/auth/sha2_password.cc``. Only full
  authentication reads it; the fast path uses an in-memory cache of SHA256(SHA256(pw)) that the
  server fills on a user's first successful full login (see :mod:`binhub.serve.login`).

The file is JSON, written atomically with mode 0600::

    {"format": 1, "users": {"repl": {"mysql_native_password": "*…", "caching_sha2_password": "$A$005$…",
                                     "admin": false}}}

``admin`` users may also purge binlogs and kill other sessions. :class:`UserDirectory` re-reads
the file when it changes, so ``binhub user add`` takes effect without restarting the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from binhub.errors import ConfigError, StorageError
from binhub.store.fsutil import atomic_write
from binhub.wire.auth import native_password_hash_hex

__all__ = [
    "SHA2_ROUNDS",
    "User",
    "UserDirectory",
    "UsersFile",
    "make_user",
    "sha256_crypt",
    "sha2_crypt_string",
    "verify_sha2_crypt",
]

USERS_FORMAT = 1
#: MySQL's default: ``caching_sha2_password_digest_rounds`` = 5000, stored as "005" (thousands, hex).
SHA2_ROUNDS = 5000
SHA2_SALT_LENGTH = 20
_SHA2_PREFIX = "$A$"
_SALT_CHARS = string.ascii_letters + string.digits
_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Byte triples of the SHA-256 crypt output encoding (Drepper's specification, "sha256crypt").
_ORDER = ((0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5), (6, 16, 26),
          (27, 7, 17), (18, 28, 8), (9, 19, 29))
_USER_NAME_MAX = 80


def _b64_24(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_ITOA64[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat(digest: bytes, n: int) -> bytes:
    return (digest * (n // len(digest) + 1))[:n]


def sha256_crypt(password: bytes, salt: bytes, rounds: int = SHA2_ROUNDS) -> str:
    """The 43-character SHA-256 crypt of ``password`` (the part after the salt in ``$5$salt$…``).

    MySQL allows a 20-byte salt where glibc stops at 16; the algorithm is otherwise the same.
    """
    salt = salt[:SHA2_SALT_LENGTH]
    n = len(password)
    b = hashlib.sha256(password + salt + password).digest()
    a = hashlib.sha256(password + salt)
    a.update(_repeat(b, n))
    i = n
    while i > 0:
        a.update(b if i & 1 else password)
        i >>= 1
    da = a.digest()
    p = _repeat(hashlib.sha256(password * n).digest(), n)
    s = _repeat(hashlib.sha256(salt * (16 + da[0])).digest(), len(salt))
    c = da
    sha = hashlib.sha256
    for r in range(rounds):
        h = sha(p if r & 1 else c)
        if r % 3:
            h.update(s)
        if r % 7:
            h.update(p)
        h.update(c if r & 1 else p)
        c = h.digest()
    out = [_b64_24(c[x], c[y], c[z], 4) for x, y, z in _ORDER]
    out.append(_b64_24(0, c[31], c[30], 3))
    return "".join(out)


def sha2_crypt_string(password: bytes, salt: str | None = None, rounds: int = SHA2_ROUNDS) -> str:
    """``$A$005$<salt><hash>``: what MySQL keeps in ``authentication_string`` for caching_sha2."""
    if salt is None:
        salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(SHA2_SALT_LENGTH))
    if len(salt) != SHA2_SALT_LENGTH or "$" in salt:
        raise ValueError(f"a caching_sha2 salt is {SHA2_SALT_LENGTH} characters without '$'")
    if rounds % 1000 or not 1000 <= rounds <= 0xFFF * 1000:
        raise ValueError("rounds must be a multiple of 1000 between 1000 and 4095000")
    return f"{_SHA2_PREFIX}{rounds // 1000:03X}${salt}{sha256_crypt(password, salt.encode(), rounds)}"


def verify_sha2_crypt(stored: str, password: bytes) -> bool:
    """Full-auth check of a clear password against ``$A$NNN$salt+hash``."""
    if not stored:
        return not password
    if not stored.startswith(_SHA2_PREFIX) or len(stored) != 7 + SHA2_SALT_LENGTH + 43 or stored[6] != "$":
        return False
    try:
        rounds = int(stored[3:6], 16) * 1000
    except ValueError:
        return False
    salt = stored[7:7 + SHA2_SALT_LENGTH]
    expected = stored[7 + SHA2_SALT_LENGTH:]
    return hmac.compare_digest(sha256_crypt(password, salt.encode("latin-1"), rounds), expected)


@dataclass(frozen=True, slots=True)
class User:
    """One account: its hashes (``""`` = empty password) and whether it may administer."""

    name: str
    native_hash: str  # "*" + 40 hex, or "" for an empty password
    sha2_crypt: str  # "$A$005$…", or "" for an empty password
    admin: bool = False

    @property
    def native_stage2(self) -> bytes:
        """The 20-byte SHA1(SHA1(pw)) that :func:`binhub.wire.auth.verify_native_password` takes."""
        return bytes.fromhex(self.native_hash[1:]) if self.native_hash else b""

    def to_json(self) -> dict[str, object]:
        return {"mysql_native_password": self.native_hash, "caching_sha2_password": self.sha2_crypt,
                "admin": self.admin}


def make_user(name: str, password: str, *, admin: bool = False) -> User:
    """Hash ``password`` both ways; the clear text goes no further than this function."""
    check_user_name(name)
    pw = password.encode()
    if not pw:
        return User(name, "", "", admin)
    return User(name, native_password_hash_hex(pw), sha2_crypt_string(pw), admin)


def check_user_name(name: str) -> None:
    if not name or len(name) > _USER_NAME_MAX or any(c in name for c in "\x00'\"`\n\r\t "):
        raise ConfigError("user", f"{name!r} is not a valid user name (1-{_USER_NAME_MAX} characters, "
                          "no quotes, spaces or control characters)")


class UsersFile:
    """Read and write the users file (atomically, mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, User]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_bytes())
            if not isinstance(doc, dict) or doc.get("format") != USERS_FORMAT:
                raise ValueError(f"unknown format {doc.get('format') if isinstance(doc, dict) else doc!r}")
            out: dict[str, User] = {}
            for name, entry in dict(doc.get("users", {})).items():
                native = str(entry.get("mysql_native_password", ""))
                sha2 = str(entry.get("caching_sha2_password", ""))
                if native and (len(native) != 41 or not native.startswith("*")):
                    raise ValueError(f"user {name!r}: mysql_native_password is not '*' + 40 hex digits")
                out[str(name)] = User(str(name), native.upper(), sha2, bool(entry.get("admin", False)))
            return out
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise StorageError(f"the users file {self.path} cannot be read: {exc}",
                               hint="recreate it with `binhub user add --users FILE NAME`") from exc

    def save(self, users: dict[str, User]) -> None:
        doc = {"format": USERS_FORMAT, "users": {n: users[n].to_json() for n in sorted(users)}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Hashes are not passwords, but still no one else's business.
        atomic_write(self.path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)

    def add(self, user: User, *, replace: bool = True) -> bool:
        """Add or replace ``user``; returns True if it replaced an existing one."""
        users = self.load()
        existed = user.name in users
        if existed and not replace:
            raise ConfigError("user", f"{user.name!r} already exists in {self.path}")
        users[user.name] = user
        self.save(users)
        return existed

    def remove(self, name: str) -> bool:
        users = self.load()
        if name not in users:
            return False
        del users[name]
        self.save(users)
        return True


class UserDirectory:
    """The accounts a server checks logins against: a users file (re-read on change) or fixed users."""

    def __init__(self, users_file: Path | None = None, users: list[User] | None = None) -> None:
        self._file = UsersFile(users_file) if users_file is not None else None
        self._fixed = {u.name: u for u in users or []}
        self._users: dict[str, User] = dict(self._fixed)
        self._stamp: tuple[int, int] | None = None
        if self._file is not None:
            self._reload()

    @property
    def path(self) -> Path | None:
        return self._file.path if self._file is not None else None

    def _reload(self) -> None:
        assert self._file is not None
        try:
            st = self._file.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._stamp:
            return
        self._users = {**self._file.load(), **self._fixed}
        self._stamp = stamp

    def get(self, name: str) -> User | None:
        if self._file is not None:
            # A half-edited file must not lock everyone out: keep the last good copy.
            with contextlib.suppress(StorageError):
                self._reload()
        return self._users.get(name)

    def names(self) -> list[str]:
        return sorted(self._users)
