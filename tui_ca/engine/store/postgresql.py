"""The PostgreSQL backend: one database shared by every process of every node.

Writers: one transaction per engine operation, READ COMMITTED, which first
takes a transaction-scoped advisory lock. Writers are thus serialised as on
the TinyDB backend (the engine's rules are checked on fresh state, and every
statement after the lock sees every earlier commit); there are no
serialisation failures to retry, and the schema's constraints (see
``migrations/``) refuse whatever a bug or an older node might still get wrong.
A failed statement poisons the whole operation: the engine may catch a
per-item refusal, but a transaction the database refused part of is never
committed.

Readers: ``read`` runs in one REPEATABLE READ, READ ONLY transaction (one
snapshot, never half a commit, blocking nobody); ``view`` reads in
autocommit, streaming by keyset pages so memory does not grow with the store.

Connections: one per thread, opened lazily and replaced when the server went
away (a restart): a read is retried on a new connection, a write is refused
with one line before its commit and resolved after it (each commit leaves a
token in ``commits``, so a lost answer to COMMIT is looked up, not guessed).

Passwords: never in the URL (refused: it would show in ``ps`` and logs);
libpq reads them from ``PGPASSFILE`` / ``~/.pgpass`` or the given password
file. This is the only module that imports psycopg.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.types.json import Json

from tui_ca.engine.crl import encode_entry
from tui_ca.engine.errors import CAError, InputError, RuleError
from tui_ca.engine.store import protocol
from tui_ca.engine.store.pg_cache import WriterCache
from tui_ca.engine.store.protocol import META_DEFAULTS, Pause, StoreUnavailableError
from tui_ca.engine.store.selection import DATABASE_FILE, read_password_file

T = TypeVar("T")
# Any fixed pair of int4 keys; advisory locks are per database, so one CA per database.
_WRITER_LOCK = (0x7475_6361, 1)
_MIGRATION_LOCK = (0x7475_6361, 2)
_PAGE = 1000
# Rows of one table sent in one statement while bulk loading (``bulk_load``).
_BULK_ROWS = 2000
# Per table: the columns a bulk load fills and their types (for unnest's arrays).
_BULK_TABLES = {
    "requests": (("id", "bigint"), ("requester_key", "text"), ("status", "text"), ("spki", "text"),
                 ("csr_sha", "text"), ("doc", "json")),
    "certificates": (("id", "bigint"), ("requester_key", "text"), ("serial", "text"), ("spki", "text"),
                     ("issued_at", "timestamptz"), ("not_after", "timestamptz"), ("revoked_at", "timestamptz"),
                     ("doc", "json")),
    "csr_pems": (("id", "bigint"), ("pem", "text")),
    "cert_pems": (("id", "bigint"), ("pem", "text")),
    "requesters": (("requester_key", "text"), ("name", "text"), ("queued", "bigint"), ("active", "bigint")),
    "serials": (("serial", "text"), ("cert_id", "bigint")),
    "csrs": (("csr_sha", "text"), ("request_id", "bigint")),
    "compromised_keys": (("spki", "text"), ("cert_id", "bigint")),
    "audit": (("seq", "bigint"), ("hash", "text"), ("prev", "text"), ("doc", "json")),
    "revoked": (("id", "bigint"), ("serial", "text"), ("doc", "json"), ("entry_der", "bytea")),
}  # fmt: skip
# How long a read or an unanswered commit waits for the server to come back.
RECONNECT_DEADLINE = 30.0
_CONNECT_TIMEOUT = 10
# Idle connections kept for reuse (a server's executor threads, a UI's workers).
_MAX_IDLE = 8

# What the database's rules mean to an admin (constraint name -> sentence).
_RULES = {
    "one_queued_request_per_requester": "the requester already has a request in the queue",
    "one_active_certificate_per_requester": "the requester already holds an active certificate",
    "certificates_pkey": "this request already has its certificate",
    "certificates_id_request_status_fkey": "a certificate can only be issued for an approved request",
    "certificates_serial_key": "that serial number was already used",
    "serials_pkey": "that serial number was already used",
    "requests_pkey": "that Certificate ID was already used",
    "compromised_keys_pkey": "that key is already recorded as compromised",
    "revoked_pkey": "that certificate is already revoked",
    "audit_pkey": "that audit record exists already",
    "audit_prev_seq_prev_fkey": "the audit record does not follow the last one",
}


class DatabaseUnavailableError(StoreUnavailableError):
    """The PostgreSQL server cannot be reached (or went away during the operation)."""

    transient = False
    """Worth trying again soon (the server is restarting), rather than a setting to fix."""


class SchemaVersionError(RuleError):
    """The database's schema is older or newer than this tui-ca's."""


def _migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped in the package, in order."""
    folder = resources.files("tui_ca.engine.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append((int(entry.name[:4]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


SCHEMA_VERSION = max(version for version, _, _ in _migrations())


def describe_url(url: str) -> str:
    """host:port/dbname of a URL, for messages (never the user's secrets)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the database"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or '?'}"


def check_url(url: str) -> dict[str, Any]:
    """The URL's parameters; refuses anything but a postgresql:// URL without a password."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise InputError("the database must be a postgresql:// URL (postgresql://user@host:port/dbname)")
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise InputError(f"the database URL cannot be read: {str(exc).splitlines()[0]}") from None
    if params.get("password"):
        raise InputError(
            "the database URL contains a password, which would show in process lists and logs; "
            "put it in ~/.pgpass (or PGPASSFILE) or a --database-password-file instead"
        )
    return params


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _refusal(exc: psycopg.Error) -> CAError:
    """A database error inside an operation as the engine error it means."""
    diag = exc.diag
    if isinstance(exc, psycopg.IntegrityError):
        rule = _RULES.get(diag.constraint_name or "") or diag.message_primary or _first_line(exc)
        return RuleError(f"the database refused the change: {rule}")
    if isinstance(exc, psycopg.DataError):
        return InputError(f"the database cannot store this: {diag.message_primary or _first_line(exc)}")
    return DatabaseUnavailableError(f"the database failed the operation: {_first_line(exc)}; nothing was changed")


def _lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection is gone (server restart, network), not a refusal."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, pg_errors.QueryCanceled | pg_errors.LockNotAvailable
    )


class _View:
    """Reads on the calling thread's connection (inside whatever transaction it has open)."""

    def __init__(self, store: PostgreSQLStore) -> None:
        self._store = store

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._store._query(sql, params)

    def _one(self, sql: str, params: tuple = ()) -> Any:
        rows = self._rows(sql, params)
        return rows[0][0] if rows else None

    def meta(self) -> dict:
        doc = self._one("SELECT doc FROM meta WHERE name = 'meta'")
        return {**META_DEFAULTS, **doc} if doc else dict(META_DEFAULTS)

    def config(self) -> dict:
        doc = self._one("SELECT doc FROM meta WHERE name = 'config'")
        return dict(doc) if doc else {}

    def get_request(self, request_id: int) -> dict | None:
        return self._one("SELECT doc FROM requests WHERE id = %s", (request_id,))

    def get_certificate(self, cert_id: int) -> dict | None:
        return self._one("SELECT doc FROM certificates WHERE id = %s", (cert_id,))

    def get_csr_pem(self, request_id: int) -> str | None:
        return self._one("SELECT pem FROM csr_pems WHERE id = %s", (request_id,))

    def get_cert_pem(self, cert_id: int) -> str | None:
        return self._one("SELECT pem FROM cert_pems WHERE id = %s", (cert_id,))

    def find_requester(self, name: str) -> dict | None:
        rows = self._rows("SELECT name, queued, active FROM requesters WHERE requester_key = %s", (name.casefold(),))
        return {"name": rows[0][0], "queued": rows[0][1], "active": rows[0][2]} if rows else None

    def find_serial(self, serial: int) -> int | None:
        return self._one("SELECT cert_id FROM serials WHERE serial = %s", (format(serial, "x"),))

    def find_csr(self, csr_sha256: str) -> int | None:
        return self._one("SELECT request_id FROM csrs WHERE csr_sha = %s", (csr_sha256,))

    def find_compromised(self, spki_sha256: str) -> int | None:
        return self._one("SELECT cert_id FROM compromised_keys WHERE spki = %s", (spki_sha256,))

    def _pages(self, table: str, key: str, *, where: str = "", params: tuple = (), descending: bool = False,
               column: str = "doc", pause: Pause | None = None) -> Iterator[Any]:  # fmt: skip
        """Rows by ``key`` in pages: memory stays one page whatever the table's size."""
        last: int | None = None
        order, compare = ("DESC", "<") if descending else ("ASC", ">")
        conditions = [where] if where else []
        while True:
            clauses = conditions + ([f"{key} {compare} %s"] if last is not None else [])
            sql = f"SELECT {key}, {column} FROM {table}"
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            sql += f" ORDER BY {key} {order} LIMIT {_PAGE}"
            rows = self._rows(sql, params + ((last,) if last is not None else ()))
            for row in rows:
                yield row[1]
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]
            if pause is not None:
                pause()

    def iter_requests(self, *, status: str | None = None, newest_first: bool = False,
                      pause: Pause | None = None) -> Iterator[dict]:  # fmt: skip
        if status is None:
            return self._pages("requests", "id", descending=newest_first, pause=pause)
        return self._pages("requests", "id", where="status = %s", params=(status,), descending=newest_first,
                           pause=pause)  # fmt: skip

    def iter_certificates(self, *, pause: Pause | None = None) -> Iterator[dict]:
        return self._pages("certificates", "id", pause=pause)

    def iter_audit(self) -> Iterator[dict]:
        return self._pages("audit", "seq")

    def iter_revoked(self) -> Iterator[dict]:
        return self._pages("revoked", "id")

    def crl_entries(self) -> tuple[list[bytes], int]:
        rows = self._rows("SELECT string_agg(entry_der, ''::bytea ORDER BY id), count(*) FROM revoked")
        blob, count = rows[0]
        return ([bytes(blob)] if blob else []), int(count)

    def get_blob(self, name: str) -> bytes | None:
        data = self._one("SELECT data FROM blobs WHERE name = %s", (name,))
        return None if data is None else bytes(data)

    def iter_outbox(self) -> Iterator[dict]:
        return self._pages("outbox", "id")

    def iter_refusals(self) -> Iterator[dict]:
        return self._pages("refusals", "seq", descending=True)


class _Transaction(_View):
    """A writer's transaction: statements run at once, inside the open transaction."""

    def __init__(self, store: PostgreSQLStore) -> None:
        super().__init__(store)
        self.failure: CAError | None = None
        self.pipeline: psycopg.Pipeline | None = None
        # Writes are pipelined (they never wait for the server); reads must. The
        # cache spares the reads of a bulk operation one round trip per record.
        self.cache = WriterCache()
        # Rows waiting to be inserted many at once, per table (only inside ``bulk_load``).
        self._staged: dict[str, list[tuple]] | None = None
        self._read_while_staging = False

    # ------------------------------------------------------ bulk loading

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """New rows go to the server a few thousand per statement instead of one statement each.

        For filling an empty database (``copy_records``): the rows are inserted,
        never upserted, so a key given twice is refused by the database like any
        duplicate, and the transaction with it. Reads see every write before them
        (what is staged is sent first); the cache is not fed meanwhile. Records
        are encoded when sent, so a caller must not change one it has written
        (``copy_records`` writes what it read and lets go).
        """
        self._staged, self._read_while_staging = {}, False
        try:
            yield
            self._flush_staged()
        finally:
            self._staged = None
            self.cache = WriterCache()

    def _stage(self, table: str, row: tuple) -> bool:
        """Keep ``row`` for a later many-row insert; False outside a bulk load (then write it at once)."""
        if self._staged is None:
            return False
        if self._read_while_staging:
            # A read since the last write cached rows these writes may change.
            self.cache, self._read_while_staging = WriterCache(), False
        rows = self._staged.setdefault(table, [])
        rows.append(row)
        if len(rows) >= _BULK_ROWS:
            self._flush_table(table)
        return True

    def _flush_staged(self) -> None:
        if self._staged:
            for table in list(self._staged):
                self._flush_table(table)

    def _before_read(self) -> None:
        if self._staged is not None:
            self._flush_staged()
            self._read_while_staging = True

    def _flush_table(self, table: str) -> None:
        assert self._staged is not None
        rows = self._staged.pop(table, [])
        if not rows:
            return
        columns = _BULK_TABLES[table]
        arrays = ", ".join(f"%b::{kind}[]" for _, kind in columns)
        # Non-deferred checks (the audit chain) run at the statement's end, so rows may refer to rows beside them.
        self._exec(f"INSERT INTO {table} ({', '.join(name for name, _ in columns)}) SELECT * FROM unnest({arrays})",
                   tuple(list(values) for values in zip(*rows, strict=True)), staged=True)  # fmt: skip

    # ------------------------------------------------- cached keyed reads

    def get_request(self, request_id: int) -> dict | None:
        if not self.cache.knows("request", request_id):
            self._fetch_requests(request_id)
        return self.cache.get("request", request_id)

    def get_csr_pem(self, request_id: int) -> str | None:
        if not self.cache.knows("csr_pem", request_id):
            last = request_id + self.cache.window("csr_pem", request_id) - 1
            rows = self._rows("SELECT id, pem FROM csr_pems WHERE id BETWEEN %s AND %s", (request_id, last))
            self._fill_range("csr_pem", request_id, last, rows)
        return self.cache.get("csr_pem", request_id)

    def _remembered(self, kind: str, key: object, look_up: Callable[[], Any]) -> Any:
        """What the cache knows of ``key`` (a miss included), else the database's answer, kept."""
        if not self.cache.knows(kind, key):
            self.cache.put(kind, key, look_up())
        return self.cache.get(kind, key)

    def find_requester(self, name: str) -> dict | None:
        return self._remembered("requester", name.casefold(), lambda: super(_Transaction, self).find_requester(name))

    def find_serial(self, serial: int) -> int | None:
        return self._remembered("serial", serial, lambda: super(_Transaction, self).find_serial(serial))

    def find_csr(self, csr_sha256: str) -> int | None:
        return self._remembered("csr", csr_sha256, lambda: super(_Transaction, self).find_csr(csr_sha256))

    def find_compromised(self, spki_sha256: str) -> int | None:
        return self._remembered("compromised", spki_sha256,
                                lambda: super(_Transaction, self).find_compromised(spki_sha256))  # fmt: skip

    def prefetch_intake(self, csr_shas: list[str], spkis: list[str], requesters: list[str]) -> None:
        """The index entries a batch of submissions will look up, in one round trip."""
        self._before_read()
        if self.failure is not None:
            raise self.failure
        keys = [name.casefold() for name in requesters]
        conn = self._store._conn()
        try:
            csrs = conn.execute("SELECT csr_sha, request_id FROM csrs WHERE csr_sha = ANY(%s)", (csr_shas,))
            bad = conn.execute("SELECT spki, cert_id FROM compromised_keys WHERE spki = ANY(%s)", (spkis,))
            people = conn.execute("SELECT requester_key, name, queued, active FROM requesters WHERE requester_key "
                                  "= ANY(%s)", (keys,))  # fmt: skip
            csr_rows, bad_rows, people_rows = csrs.fetchall(), bad.fetchall(), people.fetchall()
        except psycopg.Error as exc:
            raise self.fail(exc) from None
        for kind, asked, rows in (("csr", csr_shas, csr_rows), ("compromised", spkis, bad_rows)):
            found: dict[str, object] = dict(rows)
            for key in asked:
                self.cache.fill(kind, key, found.get(key))
        known = {row[0]: {"name": row[1], "queued": row[2], "active": row[3]} for row in people_rows}
        for key in keys:
            self.cache.fill("requester", key, known.get(key))

    def _fetch_requests(self, first: int) -> None:
        """A window of requests from ``first``, with their CSRs and requesters, in one round trip."""
        self._before_read()
        last = first + self.cache.window("request", first) - 1
        span = (first, last)
        if self.failure is not None:
            raise self.failure
        conn = self._store._conn()
        try:
            docs = conn.execute("SELECT id, doc FROM requests WHERE id BETWEEN %s AND %s", span)
            pems = conn.execute("SELECT id, pem FROM csr_pems WHERE id BETWEEN %s AND %s", span)
            people = conn.execute(
                "SELECT requester_key, name, queued, active FROM requesters WHERE requester_key IN "
                "(SELECT requester_key FROM requests WHERE id BETWEEN %s AND %s)", span)  # fmt: skip
            doc_rows, pem_rows, people_rows = docs.fetchall(), pems.fetchall(), people.fetchall()
        except psycopg.Error as exc:
            raise self.fail(exc) from None
        self._fill_range("request", first, last, doc_rows)
        self._fill_range("csr_pem", first, last, pem_rows)
        known = {row[0]: {"name": row[1], "queued": row[2], "active": row[3]} for row in people_rows}
        for _, doc in doc_rows:
            key = doc["requester"].casefold()
            self.cache.fill("requester", key, known.get(key))

    def _fill_range(self, kind: str, first: int, last: int, rows: list[tuple]) -> None:
        found = dict(rows)
        for key in range(first, last + 1):
            self.cache.fill(kind, key, found.get(key))

    # ------------------------------------------------------------- writes

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        self._before_read()
        return self._exec(sql, params, fetch=True)

    def sync(self) -> None:
        """Wait for every pipelined statement's answer (a refused write is raised here at the latest)."""
        self._exec("", fetch=False, sync=True)

    def _exec(self, sql: str, params: tuple = (), *, fetch: bool = False, sync: bool = False,
              staged: bool = False) -> list[tuple]:  # fmt: skip
        if self.failure is not None:
            # The database aborted this transaction; nothing more can happen in it.
            raise self.failure
        if self._staged and not staged:
            # In the order they were made: a delete after a staged insert of its row must find it.
            self._flush_staged()
        try:
            if sync:
                if self.pipeline is not None:
                    self.pipeline.sync()
                return []
            cursor = self._store._conn().execute(sql, params)
            return cursor.fetchall() if fetch else []
        except psycopg.Error as exc:
            raise self.fail(exc) from None

    def fail(self, exc: psycopg.Error) -> CAError:
        """Record why the database gave up on this transaction (the first cause wins); the error to raise."""
        if self.failure is None:
            if _lost(exc):
                self.failure = DatabaseUnavailableError(
                    f"the connection to {self._store.where} was lost ({_first_line(exc)}); nothing was changed"
                )
            else:
                self.failure = _refusal(exc)
        return self.failure

    def put_meta(self, meta: dict) -> None:
        self._exec("INSERT INTO meta (name, doc) VALUES ('meta', %s) ON CONFLICT (name) DO UPDATE SET doc = "
                   "excluded.doc", (Json(meta),))  # fmt: skip

    def put_config(self, config: dict) -> None:
        self._exec("INSERT INTO meta (name, doc) VALUES ('config', %s) ON CONFLICT (name) DO UPDATE SET doc = "
                   "excluded.doc", (Json(config),))  # fmt: skip

    def put_request(self, doc: dict) -> None:
        row = (doc["id"], doc["requester"].casefold(), doc["status"], doc["spki"], doc["csr_sha"], Json(doc))
        if self._stage("requests", row):
            return
        self.cache.put("request", doc["id"], doc)
        self._exec(
            "INSERT INTO requests (id, requester_key, status, spki, csr_sha, doc) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET requester_key = excluded.requester_key, status = excluded.status, "
            "spki = excluded.spki, csr_sha = excluded.csr_sha, doc = excluded.doc",
            row,
        )

    def put_certificate(self, doc: dict) -> None:
        row = (doc["id"], doc["requester"].casefold(), doc["serial"], doc["spki"], _time(doc["at"]), _time(doc["na"]),
               _time(doc.get("revoked_at")), Json(doc))  # fmt: skip
        if self._stage("certificates", row):
            return
        self._exec(
            "INSERT INTO certificates (id, requester_key, serial, spki, issued_at, not_after, revoked_at, doc) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
            "requester_key = excluded.requester_key, serial = excluded.serial, spki = excluded.spki, "
            "issued_at = excluded.issued_at, not_after = excluded.not_after, revoked_at = excluded.revoked_at, "
            "doc = excluded.doc",
            row,
        )

    def put_csr_pem(self, request_id: int, pem: str) -> None:
        if self._stage("csr_pems", (request_id, pem)):
            return
        self.cache.put("csr_pem", request_id, pem)
        self._exec("INSERT INTO csr_pems (id, pem) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET pem = excluded.pem",
                   (request_id, pem))  # fmt: skip

    def put_cert_pem(self, cert_id: int, pem: str) -> None:
        if self._stage("cert_pems", (cert_id, pem)):
            return
        self._exec("INSERT INTO cert_pems (id, pem) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET pem = excluded.pem",
                   (cert_id, pem))  # fmt: skip

    def put_requester(self, name: str, entry: dict) -> None:
        if self._stage("requesters", (name.casefold(), entry.get("name", name), entry.get("queued"),
                                      entry.get("active"))):  # fmt: skip
            return
        self.cache.put("requester", name.casefold(),
                       {"name": entry.get("name", name), "queued": entry.get("queued"), "active": entry.get("active")})  # fmt: skip
        self._exec(
            "INSERT INTO requesters (requester_key, name, queued, active) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (requester_key) DO UPDATE SET name = excluded.name, queued = excluded.queued, "
            "active = excluded.active",
            (name.casefold(), entry.get("name", name), entry.get("queued"), entry.get("active")),
        )

    def put_serial(self, serial: int, cert_id: int) -> None:
        if self._stage("serials", (format(serial, "x"), cert_id)):
            return
        self.cache.put("serial", serial, cert_id)
        # No upsert: a serial, once given, is never given again (the primary key says so).
        self._exec("INSERT INTO serials (serial, cert_id) VALUES (%s, %s)", (format(serial, "x"), cert_id))

    def put_csr(self, csr_sha256: str, request_id: int) -> None:
        if self._stage("csrs", (csr_sha256, request_id)):
            return
        self.cache.put("csr", csr_sha256, request_id)
        self._exec("INSERT INTO csrs (csr_sha, request_id) VALUES (%s, %s) ON CONFLICT (csr_sha) DO UPDATE SET "
                   "request_id = excluded.request_id", (csr_sha256, request_id))  # fmt: skip

    def put_compromised(self, spki_sha256: str, cert_id: int) -> None:
        if self._stage("compromised_keys", (spki_sha256, cert_id)):
            return
        self.cache.put("compromised", spki_sha256, cert_id)
        # The key stays blocked for good; the entry names the latest certificate revoked for it.
        self._exec("INSERT INTO compromised_keys (spki, cert_id) VALUES (%s, %s) ON CONFLICT (spki) DO UPDATE SET "
                   "cert_id = excluded.cert_id", (spki_sha256, cert_id))  # fmt: skip

    def append_audit(self, doc: dict) -> None:
        if self._stage("audit", (doc["seq"], doc["hash"], doc["prev"], Json(doc))):
            return
        self._exec("INSERT INTO audit (seq, hash, prev, doc) VALUES (%s, %s, %s, %s)",
                   (doc["seq"], doc["hash"], doc["prev"], Json(doc)))  # fmt: skip

    def put_revoked(self, entry: dict) -> None:
        der = encode_entry(int(entry["serial"], 16), datetime.fromisoformat(entry["at"]), entry["code"])
        if self._stage("revoked", (entry["id"], entry["serial"], Json(entry), der)):
            return
        # A reason may change (to keyCompromise): the entry is replaced.
        self._exec("INSERT INTO revoked (id, serial, doc, entry_der) VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO "
                   "UPDATE SET doc = excluded.doc, entry_der = excluded.entry_der",
                   (entry["id"], entry["serial"], Json(entry), der))  # fmt: skip

    def remove_revoked(self, cert_id: int) -> None:
        self._exec("DELETE FROM revoked WHERE id = %s", (cert_id,))

    def put_outbox(self, doc: dict) -> None:
        self._exec("INSERT INTO outbox (id, doc) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                   (doc["id"], Json(doc)))  # fmt: skip

    def delete_outbox(self, entry_id: int) -> None:
        self._exec("DELETE FROM outbox WHERE id = %s", (entry_id,))

    def append_refusal(self, doc: dict) -> None:
        # Writers are serialised by the transaction's lock, so max + 1 is free.
        seq = int(self._exec("SELECT coalesce(max(seq), 0) + 1 FROM refusals", fetch=True)[0][0])
        self._exec("INSERT INTO refusals (seq, doc) VALUES (%s, %s)", (seq, Json({**doc, "seq": seq})))
        self._exec("DELETE FROM refusals WHERE seq <= %s", (seq - protocol.REFUSALS_KEPT,))

    def put_blob(self, name: str, data: bytes) -> None:
        self._exec("INSERT INTO blobs (name, data) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET data = "
                   "excluded.data", (name, bytes(data)))  # fmt: skip


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class PostgreSQLStore:
    """The records of one CA in one PostgreSQL database."""

    def __init__(self, url: str, *, password_file: Path | str | None = None, check_schema: bool = True) -> None:
        check_url(url)
        self.url = url
        self.where = describe_url(url)
        # Read once, kept in memory only: libpq gets it as a connection parameter, never on a command line.
        self._password = None if password_file is None else read_password_file(str(password_file))
        # The connection of the transaction or consistent read running on each thread.
        self._local = threading.local()
        # Idle connections, shared by all threads: a UI starts a thread per worker,
        # and a connection per thread would pile up for the life of the process.
        self._idle: list[psycopg.Connection] = []
        self._idle_lock = threading.Lock()
        self._commits = 0
        self._reached = False
        if check_schema:
            self.require_schema()

    # ----------------------------------------------------------- connections

    def _connect(self) -> psycopg.Connection:
        extra: dict[str, Any] = {"application_name": "tui-ca", "connect_timeout": _CONNECT_TIMEOUT}
        if self._password is not None:
            extra["password"] = self._password
        try:
            conn = psycopg.connect(self.url, autocommit=True, **extra)
        except psycopg.OperationalError as exc:
            refusal = DatabaseUnavailableError(f"cannot connect to {self.where}: {_first_line(exc)}")
            # Worth waiting for only if this process reached the server before (it is
            # restarting, or starting up: 57P03); a first attempt, a wrong password or
            # database name fails at once with its one line.
            refusal.transient = self._reached and exc.sqlstate in (None, "57P03")
            raise refusal from None
        self._reached = True
        return conn

    def _borrow(self) -> psycopg.Connection:
        with self._idle_lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and not conn.broken:
                    return conn
        return self._connect()

    def _give_back(self, conn: psycopg.Connection) -> None:
        healthy = not conn.closed and not conn.broken and conn.info.transaction_status == TransactionStatus.IDLE
        if healthy:
            with self._idle_lock:
                if len(self._idle) < _MAX_IDLE:
                    self._idle.append(conn)
                    return
        conn.close()

    def _conn(self) -> psycopg.Connection:
        """The connection of the transaction or read running on this thread."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("no store transaction or read is running on this thread")
        return conn

    def _drop_conn(self) -> None:
        """Forget this thread's connection (it is broken or its server went away)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close the idle connections (those of running operations close when they end)."""
        with self._idle_lock:
            conns, self._idle = self._idle, []
        for conn in conns:
            conn.close()

    def _in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        """A read; outside a transaction a lost connection is replaced and the read retried."""
        if self._in_transaction():
            return self._conn().execute(sql, params).fetchall()

        def once() -> list[tuple]:
            conn = self._borrow()
            try:
                rows = conn.execute(sql, params).fetchall()
            except BaseException:
                conn.close()
                raise
            self._give_back(conn)
            return rows

        return self._retrying(once)

    def _forget_idle(self) -> None:
        """Close every idle connection: one found lost means the server (or the network) dropped them all.

        Otherwise each stale one would be borrowed, fail and cost a retry in turn,
        and the first requests after a database restart would fail or wait.
        """
        with self._idle_lock:
            conns, self._idle = self._idle, []
        for conn in conns:
            conn.close()

    def _retrying(self, action: Callable[[], T]) -> T:
        deadline = time.monotonic() + RECONNECT_DEADLINE
        delay = 0.05
        first = True
        while True:
            try:
                return action()
            except psycopg.Error as exc:
                if not _lost(exc):
                    raise _refusal(exc) from None
                self._forget_idle()
                if first:
                    # Most likely a pooled connection that died with an earlier server:
                    # the next attempt connects afresh, at once.
                    first = False
                    continue
                if time.monotonic() > deadline:
                    raise DatabaseUnavailableError(
                        f"lost the connection to {self.where}: {_first_line(exc)}; nothing was changed"
                    ) from None
            except DatabaseUnavailableError as exc:
                if not exc.transient or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _begin_writer(self) -> psycopg.Connection:
        """A connection inside a writer's transaction that holds the writers' lock.

        Nothing is written before the lock is held, so a connection lost until
        then (a pooled one that died with a restarted server) is simply replaced.
        """
        conn = self._borrow()
        try:
            conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _WRITER_LOCK)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _session(self, *, begin: bool = False) -> Iterator[psycopg.Connection]:
        """A connection for this thread's transaction (``begin``: already in it) or read, given back after it."""
        conn = self._retrying(self._begin_writer if begin else self._borrow)
        self._local.conn = conn
        try:
            yield conn
        finally:
            current, self._local.conn = self._local.conn, None
            if current is not None:
                self._give_back(current)

    # --------------------------------------------------------------- schema

    def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""

        def read() -> int:
            conn = self._borrow()
            try:
                version = self._version_on(conn)
            except BaseException:
                conn.close()
                raise
            self._give_back(conn)
            return version

        return self._retrying(read)

    @staticmethod
    def _version_on(conn: psycopg.Connection) -> int:
        if not conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchall()[0][0]:
            return 0
        return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0])

    def require_schema(self) -> None:
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version == 0:
            raise SchemaVersionError(
                f"the database {self.where} holds no tui-ca schema: run 'tui-ca migrate' (or 'init --database')"
            )
        if version < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the database {self.where} has schema version {version}, this tui-ca needs {SCHEMA_VERSION}: "
                "run 'tui-ca migrate'"
            )
        raise SchemaVersionError(
            f"the database {self.where} has schema version {version}, newer than this tui-ca knows "
            f"({SCHEMA_VERSION}): upgrade tui-ca on this machine"
        )

    def migrate(self) -> list[str]:
        """Apply the missing migrations, each in its own transaction; the names applied."""
        applied: list[str] = []
        try:
            with self._session() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _MIGRATION_LOCK)
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
                if done and max(done) > SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"the database {self.where} has schema version {max(done)}, newer than this tui-ca knows "
                        f"({SCHEMA_VERSION}): upgrade tui-ca on this machine"
                    )
                for version, name, sql in _migrations():
                    if version in done:
                        continue
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                    applied.append(name)
        except psycopg.Error as exc:
            if _lost(exc):
                raise DatabaseUnavailableError(f"lost the connection to {self.where} while migrating; "
                                               "nothing was changed, run 'tui-ca migrate' again") from None  # fmt: skip
            raise RuleError(f"the migration failed on {self.where}: {_first_line(exc)}") from None
        return applied

    def is_empty(self) -> bool:
        """No CA records yet (a fresh database, or one only migrated)."""
        if self.schema_version() == 0:
            return True
        return not self._query("SELECT 1 FROM meta LIMIT 1", ())

    # -------------------------------------------------------- the protocol

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        """Exclusive against every other writer, on fresh state, all or nothing."""
        if self._in_transaction():
            raise RuntimeError("nested store transaction")
        txn = _Transaction(self)
        token = uuid.uuid4()
        with self._session(begin=True) as conn:
            try:
                try:
                    # Pipelined: the writes between two reads travel together instead of
                    # waiting for one answer each (a bulk approval is mostly writes).
                    with conn.pipeline() as pipeline:
                        txn.pipeline = pipeline
                        yield txn
                        if txn.failure is not None:
                            raise txn.failure
                        txn._exec("INSERT INTO commits (token) VALUES (%s)", (token,))
                        txn.sync()
                except psycopg.Error as exc:
                    # Leaving the pipeline on a connection the server dropped, say.
                    raise txn.fail(exc) from None
            except BaseException:
                self._rollback(conn)
                raise
            self._commit(conn, token)
        self._commits += 1
        if self._commits % 500 == 0:
            self._query("DELETE FROM commits WHERE at < now() - interval '1 day'", ())

    def _rollback(self, conn: psycopg.Connection) -> None:
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            # The server ended the transaction with the connection: nothing of it stays.
            self._drop_conn()

    def _commit(self, conn: psycopg.Connection, token: uuid.UUID) -> None:
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            if not _lost(exc):
                self._rollback(conn)
                raise _refusal(exc) from None
            self._drop_conn()
            self._resolve_lost_commit(token, exc)

    def _resolve_lost_commit(self, token: uuid.UUID, exc: BaseException) -> None:
        """The answer to COMMIT was lost: ask the database (once it is back) whether it landed."""
        try:
            landed = bool(self._query("SELECT 1 FROM commits WHERE token = %s", (token,)))
        except DatabaseUnavailableError:
            raise DatabaseUnavailableError(
                f"the connection to {self.where} was lost during the commit and the server is not back; "
                "whether the change landed shows in 'tui-ca audit' once it is"
            ) from None
        if not landed:
            raise DatabaseUnavailableError(
                f"the connection to {self.where} was lost during the commit ({_first_line(exc)}); nothing was changed"
            )

    def read(self, read: Callable[[_View], T]) -> T:
        """Run ``read`` on one snapshot (REPEATABLE READ); retried on a new connection if the server went away."""
        if self._in_transaction():
            return read(_View(self))

        def attempt() -> T:
            with self._session() as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    result = read(_View(self))
                except BaseException:
                    self._rollback(conn)
                    raise
                conn.execute("COMMIT")
                return result

        return self._retrying(attempt)

    def view(self, *, keep: bool = True) -> _View:
        """Reads in autocommit, streamed by pages (``keep`` changes nothing: no view here keeps records)."""
        return _View(self)

    # A backup is a home of its own on TinyDB: it must not point at the live database.
    home_entries: frozenset[str] = frozenset({DATABASE_FILE})

    def backup_to(self, dest_home: Path) -> None:
        """The records into a TinyDB store at ``dest_home`` (inside the caller's transaction: one state)."""
        from tui_ca.engine.store.copying import copy_records
        from tui_ca.engine.store.tinydb import TinyDBStore

        copy_records(self.view(), TinyDBStore(dest_home))

    def change_token(self) -> object:
        rows = self._query("SELECT doc->>'generation' FROM meta WHERE name = 'meta'", ())
        return rows[0][0] if rows else None


_shared: dict[tuple[str, str | None], PostgreSQLStore] = {}
_shared_lock = threading.Lock()


def shared_store(url: str, password_file: str | None = None) -> PostgreSQLStore:
    """One store (one pool of connections) per database in this process, whoever opens it."""
    key = (url, password_file)
    with _shared_lock:
        store = _shared.get(key)
        if store is None:
            store = PostgreSQLStore(url, password_file=password_file)
            _shared[key] = store
        return store


def forget_shared() -> None:
    """Close and drop the shared stores (between tests, after a database is dropped)."""
    with _shared_lock:
        stores = list(_shared.values())
        _shared.clear()
    for store in stores:
        store.close()
