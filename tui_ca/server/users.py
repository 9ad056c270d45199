"""EST users: a file of ``name:scrypt$n$r$p$salt$hash`` lines, one per user.

The names become requesters, so a device enrolling with its credentials is
known by them in the queue. Hashes are scrypt so that a copied file does not
give the passwords away cheaply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path

from tui_ca.engine.errors import InputError
from tui_ca.engine.keys import SCRYPT_N, SCRYPT_P, SCRYPT_R
from tui_ca.engine.sharing import Sharing

# The strength the CA keys had under scrypt (keys.SCRYPT_N): 128 MiB and about
# 0.5 s a check, OWASP's floor. Paid once per client: successful checks are
# remembered, and guessing is throttled by the server.
SCRYPT_N, SCRYPT_R, SCRYPT_P = SCRYPT_N, SCRYPT_R, SCRYPT_P
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=256 * 1024 * 1024, dklen=len(want))  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def load_users(path: Path, sharing: Sharing | None = None) -> dict[str, str]:
    """name -> stored hash; refuses a file other users can read (its group too, unless it is the admin group
    of the shared home the server runs on)."""
    try:
        info = path.stat()
        mode = info.st_mode & 0o077
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the EST users file {path}: {exc.strerror}") from None
    if not (sharing or Sharing.private()).allows(info):
        raise InputError(f"the EST users file {path} can be read by group or others (mode {mode:03o}); "
                         "run chmod 600 on it")  # fmt: skip
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not _NAME.fullmatch(name) or not stored.startswith("scrypt$"):
            raise InputError(f"{path} line {number}: expected name:scrypt$…")
        users[name] = stored
    return users


def set_user(path: Path, name: str, password: str) -> bool:
    """Add or replace one user; True when the user is new. The file is kept 0600 (0660 in a shared home)."""
    if not _NAME.fullmatch(name):
        raise InputError(f"{name!r} is not a usable EST user name (letters, digits, . _ @ -)")
    if len(password) < 8:
        raise InputError("the password needs at least 8 characters")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    entry = f"{name}:{hash_password(password)}"
    kept = [line for line in lines if line.partition(":")[0] != name]
    created = len(kept) == len(lines)
    tmp = path.with_name(path.name + ".tmp")
    # A leftover (or a planted symlink) is removed, never written through.
    tmp.unlink(missing_ok=True)
    # Whatever the umask; kept for the other admins when the file lives in a shared home's folder.
    fd = Sharing.of(path.parent).create(tmp, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join([*kept, entry]) + "\n")
    os.replace(tmp, path)
    return created


class Users:
    """Checks Basic credentials; successful checks are remembered to spare scrypt on polls."""

    def __init__(self, entries: dict[str, str]) -> None:
        self._entries = entries
        self._good: set[tuple[str, bytes]] = set()
        self._dummy = hash_password("not a password")

    def check(self, name: str, password: str) -> bool:
        stored = self._entries.get(name)
        token = (name, hashlib.sha256(f"{stored}\0{password}".encode()).digest())
        if stored is not None and token in self._good:
            return True
        # Unknown names cost the same scrypt as known ones: no user enumeration by timing.
        ok = check_password(password, stored or self._dummy) and stored is not None
        if ok:
            self._good.add(token)
        return ok
