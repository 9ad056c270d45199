"""EST users: a file of ``name:scrypt$n$r$p$salt$hash[:["name", "pattern-*"]]`` lines, one per user.

The names become requesters, so a device enrolling with its credentials is
known by them in the queue. The optional JSON list after the hash holds the
further requester names (``*`` for any run of characters) that the admin
maps to the user (``tui-ca est-user --may-request``): a CSR naming one of
them is queued under that name instead of the user's. Every name listed is
owned by the user, so an anonymous client cannot take it. Hashes are scrypt
so that a copied file does not give the passwords away cheaply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from pathlib import Path

from tui_ca.engine.applicant import Applicant, NamePatterns, check_pattern
from tui_ca.engine.errors import CAError, InputError
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


def load_user_file(path: Path, sharing: Sharing | None = None) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """(name -> stored hash, name -> requester names mapped to it); refuses a file other users can read (its
    group too, unless it is the admin group of the shared home the server runs on)."""
    try:
        info = path.stat()
        mode = info.st_mode & 0o077
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the EST users file {path}: {exc.strerror}") from None
    if not (sharing or Sharing.private()).allows(info):
        raise InputError(f"the EST users file {path} can be read by group or others (mode {mode:03o}); "
                         "run chmod 600 on it")  # fmt: skip
    users, mapped = {}, {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        # The hash is scrypt$…$base64, which holds no ':'; what follows the next one is the mapping.
        stored, _, extra = rest.partition(":")
        if not sep or not _NAME.fullmatch(name) or not stored.startswith("scrypt$"):
            raise InputError(f"{path} line {number}: expected name:scrypt$…")
        users[name] = stored
        if extra:
            mapped[name] = _mapping(path, number, extra)
    return users, mapped


def _mapping(path: Path, number: int, text: str) -> tuple[str, ...]:
    try:
        names = json.loads(text)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError
        return tuple(check_pattern(n) for n in names)
    except (ValueError, CAError):
        raise InputError(f"{path} line {number}: the requester names after the hash must be a JSON list of "
                         "names") from None  # fmt: skip


def load_users(path: Path, sharing: Sharing | None = None) -> dict[str, str]:
    """name -> stored hash; refuses a file other users can read."""
    return load_user_file(path, sharing)[0]


def set_user(path: Path, name: str, password: str | None, may_request: tuple[str, ...] | None = None) -> bool:
    """Add or replace one user; True when the user is new. The file is kept 0600 (0660 in a shared home).

    ``password`` None keeps the stored one (the user must exist); ``may_request``
    None keeps the names mapped to the user, () removes them.
    """
    if not _NAME.fullmatch(name):
        raise InputError(f"{name!r} is not a usable EST user name (letters, digits, . _ @ -)")
    if password is not None and len(password) < 8:
        raise InputError("the password needs at least 8 characters")
    mapping = None if may_request is None else tuple(dict.fromkeys(check_pattern(n) for n in may_request))
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    current = next((line for line in lines if line.partition(":")[0] == name), None)
    if current is None and password is None:
        raise InputError(f"there is no EST user {name!r} in {path}; give it a password")
    stored, _, extra = (current or "").partition(":")[2].partition(":")
    entry = f"{name}:{hash_password(password) if password is not None else stored}"
    if mapping is None and extra:
        entry += ":" + extra
    elif mapping:
        entry += ":" + json.dumps(list(mapping), ensure_ascii=True)
    kept = [line for line in lines if line.partition(":")[0] != name]
    created = current is None
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

    def __init__(self, entries: dict[str, str], mapped: dict[str, tuple[str, ...]] | None = None) -> None:
        self._entries = entries
        self._mapped = mapped or {}
        self._good: set[tuple[str, bytes]] = set()
        self._dummy = hash_password("not a password")
        # Every name some user owns: an anonymous client may not take any of them.
        self.reserved = NamePatterns(tuple(entries) + tuple(p for names in self._mapped.values() for p in names))

    def applicant(self, name: str) -> Applicant:
        """The identity of an authenticated user: itself plus the names the admin mapped to it."""
        return Applicant.user(name, self._mapped.get(name, ()))

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
