"""Read-only access to a CA home: what every face shows, with no key access.

The network server builds on this (plus intake), so the code that can open
the CA's private key is not even reachable from most of what it calls.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509

from tui_ca.engine import audit as audit_log
from tui_ca.engine import records
from tui_ca.engine import repository as repo
from tui_ca.engine.csr_policy import check_and_describe, describe_key, load_csr, name_fields
from tui_ca.engine.errors import InputError, NoCAError, NotFoundError
from tui_ca.engine.keys import is_encrypted
from tui_ca.engine.listing import Overview, ShardDocs, read_overview
from tui_ca.engine.models import AuditRecord, CAInfo, Certificate, CertStatus, CrlInfo, Request, RequestStatus
from tui_ca.engine.store import Store

ROOT_CERT = "ca/root.crt.pem"
ROOT_KEY = "ca/root.key"
ISSUING_CERT = "ca/issuing.crt.pem"
ISSUING_KEY = "ca/issuing.key"
ISSUING_CSR = "ca/issuing.csr.pem"
CRL_DER = "crl/ca.crl"
CRL_PEM = "crl/ca.crl.pem"
T = TypeVar("T")
# Certificate IDs are small decimal numbers; anything longer is a serial in hex.
_MAX_ID_DIGITS = 12


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# PEMs live in collections of their own ("cert_pems", "csr_pems", keyed by
# Certificate ID): they are most of a record's bytes but are needed only to
# approve, export or show one item, so scans of "requests" and "certs" stay
# small; and one shard per 256 IDs (not a file each) keeps a bulk approval's
# commit to a handful of files.


def _consistent(method: Callable[..., T]) -> Callable[..., T]:
    """Make a read of several store files see one committed state (Store.read_consistently)."""

    @functools.wraps(method)
    def read(self: CAReader, *args, **kwargs) -> T:
        return self.store.read_consistently(lambda: method(self, *args, **kwargs))

    return read


class CAReader:
    """What can be known about a CA home without its keys. Safe across processes."""

    def __init__(self, home: Path | str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.home = Path(home)
        self.store = Store(self.home)
        self._clock = clock or utc_now
        self._parsed: dict[str, tuple[object, object]] = {}
        self._scan_memo: dict[Path, tuple[object, list]] = {}
        self._shard_docs = ShardDocs(self.store)

    def now(self) -> datetime:
        """The injected clock (UTC, whole seconds)."""
        return self._clock()

    def exists(self) -> bool:
        """Whether this home holds a ready CA."""
        return (self.home / ISSUING_CERT).exists()

    def awaiting_import(self) -> bool:
        """An external-root setup wrote its CSR and waits for ``import_ca_cert``."""
        return (self.home / ISSUING_CSR).exists() and not self.exists()

    def change_token(self) -> object:
        """Cheap value that changes whenever any process commits (one stat call)."""
        return self.store.signature(self.store.shard_path("meta", "meta"))

    def require_ca(self) -> None:
        """Refuse (NoCAError) unless this home holds a ready CA."""
        self._require_ca()

    def _require_ca(self) -> None:
        if not self.exists():
            if self.awaiting_import():
                raise NoCAError(f"the issuing CA in {self.home} waits for its certificate: run import-ca-cert")
            raise NoCAError(f"no CA in {self.home}: run 'tui-ca init' first")

    def _parsed_blob(self, relpath: str, parse: Callable[[bytes], object]) -> object:
        path = self.home / relpath
        signature = self.store.signature(path)
        cached = self._parsed.get(relpath)
        if cached is not None and cached[0] == signature:
            return cached[1]
        value = parse(path.read_bytes())
        self._parsed[relpath] = (signature, value)
        return value

    def issuing_cert(self) -> x509.Certificate:
        self._require_ca()
        return self._parsed_blob(ISSUING_CERT, x509.load_pem_x509_certificate)

    def root_cert(self) -> x509.Certificate:
        self._require_ca()
        return self._parsed_blob(ROOT_CERT, x509.load_pem_x509_certificate)

    def key_is_encrypted(self) -> bool:
        path = self.home / ISSUING_KEY
        return path.exists() and is_encrypted(path.read_bytes())

    @_consistent
    def find_by_csr(self, data: bytes) -> Request | None:
        """The request made from exactly this CSR, if any (EST polling)."""
        csr = load_csr(data)
        sha = check_and_describe(csr).csr_sha256
        view = self.store.view()
        known = repo.index_get(view, "csrs", sha)
        doc = None if known is None else repo.get_doc(view, "requests", known["id"])
        # A commit renames its files one by one: the index can show a request a
        # moment before the request itself is there. Until then it is not known.
        return None if doc is None else records.request_model(doc)

    def crl_is_stale(self) -> bool:
        info = self.info()
        return info.crl_next_update is None or self.now() >= info.crl_next_update

    @_consistent
    def info(self) -> CAInfo:
        """The signing certificate as the header shows it."""
        issuing = self.issuing_cert()
        view = self.store.view()
        meta, config = repo.get_meta(view), repo.get_config(view)

        return CAInfo(
            issuer=name_fields(issuing.issuer), subject=name_fields(issuing.subject),
            not_before=issuing.not_valid_before_utc, not_after=issuing.not_valid_after_utc,
            serial=issuing.serial_number, key_type=describe_key(issuing.public_key())[0],
            base_url=config.get("base_url"), crl_number=meta.get("crl_number") or None,
            crl_this_update=records.time_model(meta.get("crl_this_update")),
            crl_next_update=records.time_model(meta.get("crl_next_update")), key_encrypted=self.key_is_encrypted(),
        )  # fmt: skip

    def config(self) -> dict:
        return repo.get_config(self.store.view())

    def _scan(self, collection: str, convert: Callable[[dict], object]) -> list:
        """Every record of a collection as models; unchanged shards come from memory."""
        view = self.store.view()
        items: list = []
        for shard in view.shards(collection):
            path = self.store.shard_path(collection, shard)
            signature = self.store.signature(path)
            memo = self._scan_memo.get(path)
            if memo is None or memo[0] != signature:
                data = self.store.load(path) or {}
                memo = (signature, [convert(doc) for doc in data.get(collection, {}).values()])
                self._scan_memo[path] = memo
            items.extend(memo[1])
        return items

    @_consistent
    def requests(self, status: RequestStatus | None = None) -> list[Request]:
        """Requests by Certificate ID, optionally of one status."""
        items = sorted(self._scan("requests", records.request_model), key=lambda r: r.id)
        return items if status is None else [r for r in items if r.status == status]

    @_consistent
    def certificates(self, status: CertStatus | None = None) -> list[Certificate]:
        """Certificates by Certificate ID, optionally of one status (expiry from the clock)."""
        items = sorted(self._scan("certs", records.certificate_model), key=lambda c: c.id)
        if status is None:
            return items
        now = self.now()
        return [c for c in items if c.status_at(now) == status]

    @_consistent
    def overview(self, *, first_screen_rows: int | None = None, pause: Callable[[], None] | None = None) -> Overview:
        """Every list of the main screen, models built only on demand (see listing.py)."""
        if pause is not None:
            self._shard_docs.pause = pause
        token, now, info = self.change_token(), self.now(), self.info()
        return read_overview(self.store, self._shard_docs, token, now, info, first_screen_rows)

    @_consistent
    def active_certificate(self, requester: str) -> Certificate | None:
        """The requester's valid, unexpired certificate, if any (one index lookup)."""
        view = self.store.view()
        entry = repo.index_get(view, "requesters", requester.casefold())
        if entry is None or entry.get("active") is None:
            return None
        doc = repo.get_doc(view, "certs", entry["active"])
        if doc is None:
            return None
        cert = records.certificate_model(doc)
        return cert if cert.is_active(self.now()) else None

    @_consistent
    def request(self, request_id: int) -> Request:
        doc = repo.get_doc(self.store.view(), "requests", request_id)
        if doc is None:
            raise NotFoundError(f"no request with Certificate ID {request_id}")
        return records.request_model(doc)

    @staticmethod
    def parse_target(target: int | str) -> tuple[str, int]:
        """``("id", n)`` for a Certificate ID, ``("serial", n)`` for a hex serial."""
        if isinstance(target, int):
            return "id", target
        text = target.strip().lower()
        if text.isdigit() and len(text) <= _MAX_ID_DIGITS:
            return "id", int(text)
        cleaned = text.removeprefix("0x").replace(":", "")
        if cleaned and re.fullmatch(r"[0-9a-f]+", cleaned) and len(cleaned) <= 64:
            return "serial", int(cleaned, 16)
        raise InputError(f"{target!r} is neither a Certificate ID nor a serial number in hex")

    @_consistent
    def certificate(self, target: int | str) -> Certificate:
        """A certificate by Certificate ID or serial in hex."""
        kind, number = self.parse_target(target)
        view = self.store.view()
        if kind == "serial":
            found = repo.index_get(view, "serials", format(number, "x"))
            if found is None:
                raise NotFoundError(f"no certificate with serial {format(number, 'x')}")
            number = found["id"]
        doc = repo.get_doc(view, "certs", number)
        if doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {number}")
        return records.certificate_model(doc)

    @_consistent
    def lookup(self, target: int | str) -> tuple[Request | None, Certificate | None]:
        """What ``show`` displays: the request and its certificate, either may be absent."""
        kind, number = self.parse_target(target)
        if kind == "serial":
            cert = self.certificate(target)
            return self.request(cert.id), cert
        view = self.store.view()
        request_doc, cert_doc = repo.get_doc(view, "requests", number), repo.get_doc(view, "certs", number)
        if request_doc is None and cert_doc is None:
            raise NotFoundError(f"no request or certificate with Certificate ID {number}")
        return (
            records.request_model(request_doc) if request_doc else None,
            records.certificate_model(cert_doc) if cert_doc else None,
        )

    @_consistent
    def csr_pem(self, request_id: int) -> bytes:
        """The CSR of a request, as PEM."""
        self.request(request_id)
        return repo.get_doc(self.store.view(), "csr_pems", request_id)["pem"].encode()

    @_consistent
    def certificate_pem(self, target: int | str, *, chain: bool = False) -> bytes:
        """The certificate as PEM, optionally followed by the issuing CA and the root."""
        cert = self.certificate(target)
        pem = repo.get_doc(self.store.view(), "cert_pems", cert.id)["pem"].encode()
        return pem + self.ca_cert_pem(chain=True) if chain else pem

    def ca_cert_pem(self, *, chain: bool = False) -> bytes:
        """The signing certificate (and the root after it)."""
        self._require_ca()
        pem = self.store.read_blob(ISSUING_CERT)
        return pem + self.store.read_blob(ROOT_CERT) if chain else pem

    @_consistent
    def audit_records(self) -> list[AuditRecord]:
        return [audit_log.to_model(doc) for doc in self._audit_docs()]

    def _audit_docs(self) -> list[dict]:
        view = self.store.view()
        docs: list[dict] = []
        for shard in view.shards("audit"):
            data = self.store.load(self.store.shard_path("audit", shard)) or {}
            docs.extend(data.get("audit", {}).values())
        return sorted(docs, key=lambda d: d.get("seq") if isinstance(d.get("seq"), int) else 0)

    @_consistent
    def verify_audit(self) -> list[str]:
        """Problems in the audit chain; empty when intact."""
        meta = repo.get_meta(self.store.view())
        return audit_log.verify_chain(self._audit_docs(), meta["audit_seq"], meta["audit_head"])

    def home_permissions_problems(self) -> list[str]:
        problems = []
        mode = stat.S_IMODE(os.stat(self.home).st_mode)
        if mode & 0o077:
            problems.append(f"{self.home} is accessible to other users (mode {mode:04o}); run chmod 700 on it")
        return problems

    # --- readers for the faces ---

    def queued_count(self) -> int:
        """Requests waiting now."""
        return len(self.requests(RequestStatus.QUEUED))

    def iter_requests(self, status: RequestStatus | None = None) -> Iterator[Request]:
        """Requests by Certificate ID, optionally of one status."""
        yield from self.requests(status)

    def iter_certificates(self, status: CertStatus | None = None) -> Iterator[Certificate]:
        """Certificates by Certificate ID, optionally of one status (expiry from the clock)."""
        yield from self.certificates(status)

    def crl_state(self) -> CrlInfo:
        """Number, thisUpdate, nextUpdate and entry count of the published CRL."""
        crl = x509.load_der_x509_crl(self.store.read_blob(CRL_DER))
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        return CrlInfo(number=number, this_update=crl.last_update_utc, next_update=crl.next_update_utc,
                       entries=len(crl))  # fmt: skip
