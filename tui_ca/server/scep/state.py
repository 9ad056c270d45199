"""What SCEP keeps beside the CA's records: transaction IDs and one-time challenge passwords.

Both live in ``scep/`` in the home, written under one ``flock`` so that the
admin's ``scep-challenge`` and every server process agree:

* ``transactions.jsonl``: one line per transaction (its ID, the Certificate
  ID it opened, the SHA-256 of the signer's public key). It is what lets a
  client poll by transactionID and what refuses the same ID from another key.
  Append-only; a line is fsynced before the client hears PENDING, so an
  unterminated last line is a write that was never acknowledged and is dropped.
* ``challenges.json``: the challenge passwords, hashed, each with an expiry
  and optionally the requester it is for, rewritten atomically on every change.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from tui_ca.engine.errors import CAError, InputError
from tui_ca.engine.sharing import Sharing

SCEP_DIR = "scep"
TRANSACTIONS = f"{SCEP_DIR}/transactions.jsonl"
CHALLENGES = f"{SCEP_DIR}/challenges.json"
SETTINGS = f"{SCEP_DIR}/settings.json"
LOCK = f"{SCEP_DIR}/.lock"
# Held from "is this transactionID new?" until it is recorded, around the
# engine's submit; its own file, because the challenge and log updates
# inside take LOCK (one flock per file, or a process would wait for itself).
OPENING_LOCK = f"{SCEP_DIR}/.opening.lock"
DEFAULT_CHALLENGE_TTL = timedelta(hours=24)
MAX_CHALLENGE_TTL = timedelta(days=30)


class ScepStateDamaged(CAError):
    """A SCEP state file holds something this code never wrote (not a rule refusal: nothing is answered from it)."""


@dataclass(frozen=True)
class Transaction:
    """A SCEP transaction this server accepted."""

    transaction_id: str
    """The client's transactionID."""
    request_id: int
    """The Certificate ID of the request it opened."""
    signer_spki: str
    """SHA-256 of the public key that signed it: only that key may continue it."""


def _sharing(home: Path) -> Sharing:
    # The modes of the home's files: 0600, or 0660 for the next admin of a shared home (sharing.py).
    return Sharing.of(home)


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = _sharing(path.parent.parent).open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    _fsync_dir(path.parent)


def _private_dir(home: Path) -> Path:
    path = home / SCEP_DIR
    _sharing(home).new_folder(path)
    return path


def prepare(home: Path) -> None:
    """Create the SCEP folder and its lock files (empty; they carry no state) when a server starts."""
    _private_dir(home)
    for name in (LOCK, OPENING_LOCK):
        os.close(_sharing(home).open(home / name, os.O_RDWR | os.O_CREAT))


@contextmanager
def _locked(home: Path, name: str = LOCK) -> Iterator[None]:
    _private_dir(home)
    fd = _sharing(home).open(home / name, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TransactionLog:
    """transactionID → request, shared by every server process on this home."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / TRANSACTIONS
        self._home = Path(home)
        self._known: dict[str, Transaction] = {}
        self._read_upto = 0
        self._stamp: tuple[int, int] | None = None
        # The server calls in from several executor threads; flock orders processes, this the threads.
        self._mutex = threading.Lock()

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._known, self._read_upto, self._stamp = {}, 0, None
            return
        if self._stamp is not None and (st.st_ino, st.st_size) == self._stamp:
            return
        if self._stamp is None or st.st_ino != self._stamp[0] or st.st_size < self._read_upto:
            self._known, self._read_upto = {}, 0
        with open(self.path, "rb") as handle:
            handle.seek(self._read_upto)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for number, line in enumerate(complete.splitlines(), 1):
            self._add_line(line, number)
        self._read_upto += len(complete)
        self._stamp = (st.st_ino, self._read_upto) if len(complete) == len(chunk) else None

    def _add_line(self, line: bytes, number: int) -> None:
        try:
            doc = json.loads(line)
            item = Transaction(str(doc["t"]), int(doc["id"]), str(doc["spki"]))
        except (ValueError, KeyError, TypeError):
            raise ScepStateDamaged(f"{self.path} is damaged (a record is not one this server wrote); "
                                   "restore it from a backup") from None  # fmt: skip
        self._known.setdefault(item.transaction_id, item)

    def get(self, transaction_id: str) -> Transaction | None:
        """The transaction with this ID, if any server process recorded it."""
        with self._mutex:
            self._refresh()
            return self._known.get(transaction_id)

    @contextmanager
    def opening(self) -> Iterator[None]:
        """One transaction opened at a time (across threads and processes), so two
        clients racing with one transactionID cannot both queue a request."""
        with _locked(self._home, OPENING_LOCK):
            yield

    def record(self, item: Transaction) -> Transaction:
        """Record a new transaction (durably); returns the one already recorded for its ID, if any."""
        with self._mutex, _locked(self._home):
            self._refresh()
            known = self._known.get(item.transaction_id)
            if known is not None:
                return known
            line = json.dumps({"t": item.transaction_id, "id": item.request_id, "spki": item.signer_spki},
                              ensure_ascii=True).encode() + b"\n"  # fmt: skip
            fd = _sharing(self._home).open(self.path, os.O_WRONLY | os.O_CREAT)
            try:
                # Drop a torn last line (a crash mid-append, never acknowledged) before appending.
                os.ftruncate(fd, self._read_upto)
                os.lseek(fd, self._read_upto, os.SEEK_SET)
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self.path.parent)
            self._stamp = None
            self._refresh()
            return self._known[item.transaction_id]


# ---------------------------------------------------------------- challenges


def _digest(password: str) -> str:
    # The passwords are 128 random bits, not chosen by people, so a plain
    # SHA-256 already makes the stored form useless; no slow hash needed.
    return hashlib.sha256(password.encode()).hexdigest()


@dataclass(frozen=True)
class Minted:
    """A new challenge password, shown once."""

    password: str
    """The one-time password to hand to the requester."""
    requester: str | None
    """Whom it is for (None: any requester)."""
    expires: datetime
    """When it stops working."""


class Challenges:
    """One-time challenge passwords: minted by the admin, consumed by the first request that carries one."""

    def __init__(self, home: Path) -> None:
        self._home = Path(home)
        self.path = self._home / CHALLENGES

    def _load(self) -> list[dict]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            doc = json.loads(data)
            entries = doc["challenges"]
            if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("expires"), str)
                for e in entries
            ):
                raise TypeError
            for entry in entries:
                datetime.fromisoformat(entry["expires"])
        except (ValueError, KeyError, TypeError):
            raise ScepStateDamaged(f"{self.path} is damaged (not the challenge list this CA wrote); "
                                   "restore it from a backup or delete it to void every challenge") from None  # fmt: skip
        return entries

    def _save(self, entries: list[dict]) -> None:
        _write_atomically(self.path, json.dumps({"challenges": entries}, indent=1).encode())

    def required(self) -> bool:
        """Whether a PKCSReq must carry a challenge password (off until the admin turns it on)."""
        try:
            data = (self._home / SETTINGS).read_bytes()
        except FileNotFoundError:
            return False
        try:
            value = json.loads(data)["require_challenge"]
            if not isinstance(value, bool):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ScepStateDamaged(f"{self._home / SETTINGS} is damaged; run 'tui-ca scep-challenge --require' "
                                   "or '--no-require' to write it again") from None  # fmt: skip
        return value

    def set_required(self, required: bool) -> None:
        """Turn the challenge requirement on or off for every server on this home (read per request)."""
        with _locked(self._home):
            _write_atomically(self._home / SETTINGS, json.dumps({"require_challenge": required}).encode())

    def mint(self, now: datetime, *, requester: str | None = None, ttl: timedelta = DEFAULT_CHALLENGE_TTL) -> Minted:
        """A fresh one-time password; expired ones are dropped on the way."""
        if not timedelta(minutes=1) <= ttl <= MAX_CHALLENGE_TTL:
            raise InputError(f"--ttl must be between 1 minute and {MAX_CHALLENGE_TTL.days} days")
        if requester is not None and not requester.strip():
            raise InputError("--requester must not be empty")
        password = secrets.token_hex(16)
        expires = now + ttl
        with _locked(self._home):
            entries = [e for e in self._load() if datetime.fromisoformat(e["expires"]) > now]
            entries.append({"sha256": _digest(password), "requester": requester, "expires": expires.isoformat()})
            self._save(entries)
        return Minted(password, requester, expires)

    @contextmanager
    def redeem(self, password: str | None, requester: str, now: datetime) -> Iterator[str | None]:
        """Yield whom ``password`` is a live challenge for: None if it is not one for ``requester``, "" when it
        was minted for any requester, else the requester it was minted for; consumed if the block completes.

        Held under the lock for the whole block so that two requests cannot
        spend one password; a block that raises leaves the password unspent.
        """
        with _locked(self._home):
            entries = self._load()
            candidate = _digest(password or "")
            match = None
            for entry in entries:
                # Compare with every entry, not stopping early: the time taken says nothing about which matched.
                fits = hmac.compare_digest(entry["sha256"], candidate)
                live = datetime.fromisoformat(entry["expires"]) > now
                who = entry.get("requester")
                if fits and live and password and (who is None or who.casefold() == requester.casefold()):
                    match = entry
            yield None if match is None else (match.get("requester") or "")
            if match is not None:
                self._save([e for e in entries if e is not match and datetime.fromisoformat(e["expires"]) > now])
