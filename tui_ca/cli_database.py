"""The CLI's PostgreSQL part: ``--database``, ``migrate``, ``join``, ``copy-store``.

Kept apart from cli.py so that the commands which never touch a database do
not even import its module. The database module (and psycopg) is imported
only when a database is named.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tui_ca.engine.errors import InputError, RuleError
from tui_ca.engine.store import selection
from tui_ca.engine.store.selection import DATABASE_ENV, PASSWORD_FILE_ENV, DatabaseChoice
from tui_ca.homes import resolve_home

# Public CA files kept as blobs too, so that another machine's home can fetch them (join).
CA_CERT_BLOBS = ("ca/root.crt.pem", "ca/issuing.crt.pem")
# Commands that run before (or without) a CA in the home.
COMMANDS = ("migrate", "join", "copy-store")


def apply_options(args: argparse.Namespace) -> None:
    """Make the chosen database this process's (the UI and the server open stores themselves)."""
    url = args.database or getattr(args, "init_database", None)
    if args.database and getattr(args, "init_database", None) and args.database != args.init_database:
        raise InputError("--database is given twice with different URLs")
    if url:
        _backend().check_url(url)
        os.environ[DATABASE_ENV] = url
    elif os.environ.get(DATABASE_ENV):
        _backend().check_url(os.environ[DATABASE_ENV])
    if args.database_password_file is not None:
        os.environ[PASSWORD_FILE_ENV] = str(args.database_password_file.absolute())


def _backend() -> Any:
    from tui_ca.engine.store import postgresql

    return postgresql


def _open(choice: DatabaseChoice, *, check_schema: bool = True) -> Any:
    return _backend().PostgreSQLStore(choice.url, password_file=choice.password_file, check_schema=check_schema)


def prepare_init(home: Path) -> None:
    """Before ``init`` or ``restore`` on a database: create its schema if it has none; refuse one that holds a CA."""
    choice = selection.choose(home)
    if choice is None:
        return
    store = _open(choice, check_schema=False)
    try:
        if store.schema_version() == 0:
            store.migrate()
        store.require_schema()
        if not store.is_empty():
            raise RuleError(
                f"the database {store.where} holds a CA already; on another machine prepare a home with 'tui-ca join'"
            )
    finally:
        store.close()


def finish_init(home: Path) -> None:
    """After ``init`` or ``import-ca-cert`` on a database: the home remembers it, so later commands need no
    flag, and the CA certificates go into the database, where ``join`` on another machine finds them."""
    choice = selection.from_environment()
    if choice is not None and selection.recorded(home) is None:
        selection.record(home, choice)
    choice = selection.choose(home)
    if choice is None or not all((home / name).exists() for name in CA_CERT_BLOBS):
        return
    store = _open(choice)
    try:
        with store.transaction() as txn:
            for name in CA_CERT_BLOBS:
                txn.put_blob(name, (home / name).read_bytes())
    finally:
        store.close()


def run(command: str, args: argparse.Namespace) -> int:
    if command == "migrate":
        return cmd_migrate(args)
    if command == "join":
        return cmd_join(args)
    return cmd_copy_store(args)


def cmd_migrate(args: argparse.Namespace) -> int:
    home = resolve_home(args.home)
    choice = selection.from_environment() or (selection.recorded(home) if home.is_dir() else None)
    if choice is None:
        raise InputError("migrate needs a database: give --database URL (or $TUI_CA_DATABASE, or a home that uses one)")
    store = _open(choice, check_schema=False)
    try:
        applied = store.migrate()
        version = store.schema_version()
    finally:
        store.close()
    if applied:
        print(f"applied {', '.join(applied)}; {store.where} is at schema version {version}")
    else:
        print(f"{store.where} is up to date (schema version {version})")
    return 0


def _home_is_new(home: Path) -> bool:
    return not home.exists() or (home.is_dir() and not any(home.iterdir()))


def cmd_join(args: argparse.Namespace) -> int:
    from tui_ca.engine.home import write_file

    home = resolve_home(args.home)
    if not _home_is_new(home):
        raise RuleError(f"{home} is not empty; join prepares a new home (give another --home)")
    _backend().check_url(args.url)
    password_file = os.environ.get(PASSWORD_FILE_ENV)
    choice = DatabaseChoice(args.url, password_file)
    store = _open(choice)
    try:
        view = store.view()
        blobs = {name: view.get_blob(name) for name in CA_CERT_BLOBS}
    finally:
        store.close()
    if any(blob is None for blob in blobs.values()):
        raise RuleError(f"the database {store.where} holds no CA yet: run 'tui-ca init --database' on the admin host")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    for name, blob in blobs.items():
        write_file(home, name, blob or b"")
    selection.record(home, choice)
    print(f"{home} now uses the CA in {store.where}; it holds no CA key (approve and revoke on the admin host)")
    return 0


def cmd_copy_store(args: argparse.Namespace) -> int:
    """Copy a TinyDB home's records into an empty database; the home uses the database from then on."""
    from tui_ca.engine import CertificateAuthority
    from tui_ca.engine.store import open_store
    from tui_ca.engine.store.copying import copy_records

    home = resolve_home(args.home)
    if selection.recorded(home) is not None:
        raise RuleError(f"{home} keeps its records in a database already; copy-store moves a TinyDB home")
    os.environ.pop(DATABASE_ENV, None)
    source_ca = CertificateAuthority(home, store=open_store(home, "tinydb"))
    source_ca.require_ca()
    _backend().check_url(args.to)
    choice = DatabaseChoice(args.to, os.environ.get(PASSWORD_FILE_ENV))
    target = _open(choice, check_schema=False)
    try:
        if target.schema_version() == 0:
            target.migrate()
        target.require_schema()
        if not target.is_empty():
            raise RuleError(f"the database {target.where} already holds CA records; copy only into an empty one")
        # Inside a source transaction: writers wait, and the copy is of one committed state.
        with source_ca.store.transaction() as source:
            copy_records(source, target)
            counts = [sum(1 for _ in items) for items in (source.iter_requests(), source.iter_certificates(),
                                                          source.iter_revoked(), source.iter_audit())]  # fmt: skip
    finally:
        target.close()
    selection.record(home, choice)
    finish_init(home)
    print(f"copied {counts[0]} requests, {counts[1]} certificates, {counts[2]} revocations and {counts[3]} audit "
          f"records into {target.where}; {home} uses the database from now on (its TinyDB files are left as they "
          "were)", file=sys.stderr)  # fmt: skip
    return 0
