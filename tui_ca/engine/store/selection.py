"""Which store a home uses: its TinyDB files, or a PostgreSQL database.

The choice comes from ``TUI_CA_DATABASE`` (the CLI's ``--database`` sets it
for the process, so the UI and the server see it too), else from the home's
``database.json``, written by ``init --database`` and ``join``. Only the URL
and the path of a password file are kept there, never a password: URLs that
carry one are refused, because they show in process lists and logs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from tui_ca.engine.errors import InputError, RuleError

DATABASE_FILE = "database.json"
DATABASE_ENV = "TUI_CA_DATABASE"
PASSWORD_FILE_ENV = "TUI_CA_DATABASE_PASSWORD_FILE"


class DatabaseChoice(NamedTuple):
    """A PostgreSQL database to keep the records in."""

    # A NamedTuple, not a dataclass: every command reads this module, and
    # dataclasses costs a start-up its import of inspect (bench/cli_startup.py).

    url: str
    """postgresql://user@host:port/dbname, without a password."""
    password_file: str | None = None
    """A file holding the password (its first line), when libpq's ~/.pgpass is not used."""


def from_environment() -> DatabaseChoice | None:
    url = os.environ.get(DATABASE_ENV)
    if not url:
        return None
    return DatabaseChoice(url, os.environ.get(PASSWORD_FILE_ENV) or None)


def recorded(home: Path | str) -> DatabaseChoice | None:
    """The database the home was set up with, if any; a damaged record is refused, naming the file."""
    path = Path(home) / DATABASE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RuleError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise RuleError(f'{path} is damaged (expected {{"url": "postgresql://..."}}); restore it from a backup')
    password_file = data.get("password_file")
    return DatabaseChoice(data["url"], password_file if isinstance(password_file, str) else None)


def record(home: Path | str, choice: DatabaseChoice) -> None:
    """Write the home's record of its database (0600, or 0660 in a shared home; atomically)."""
    home = Path(home)
    from tui_ca.engine.folders import make_private_dirs
    from tui_ca.engine.sharing import Sharing

    make_private_dirs(home)
    path = home / DATABASE_FILE
    staging = home / f".{DATABASE_FILE}.tmp"
    body = {"url": choice.url, **({"password_file": choice.password_file} if choice.password_file else {})}
    # A leftover (or a planted link) is removed, never written through; the mode is the home's (sharing.py).
    staging.unlink(missing_ok=True)
    fd = Sharing.of(home).create(staging, 0o600)
    try:
        os.write(fd, (json.dumps(body, indent=2) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(staging, path)


def choose(home: Path | str) -> DatabaseChoice | None:
    """The database for this home: the environment's, else the recorded one; they must agree."""
    chosen, kept = from_environment(), recorded(home)
    if chosen is not None and kept is not None and chosen.url != kept.url:
        raise InputError(
            f"the home {home} uses the database {kept.url}, not {chosen.url}; drop --database or use another home"
        )
    if chosen is not None and kept is not None and chosen.password_file is None:
        return kept
    return chosen or kept


def read_password_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the database password file {path}: {exc.strerror}") from None
    secret = text.splitlines()[0] if text else ""
    if not secret:
        raise InputError(f"the database password file {path} is empty")
    return secret
