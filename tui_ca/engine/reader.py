"""Read-only access to a CA home: what every face shows, with no key access.

The network server builds on this (plus intake), so the code that can open
the CA's private key is not even reachable from most of what it calls.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from tui_ca.engine import records
from tui_ca.engine.errors import InputError, NoCAError, NotFoundError, UnsafeHomeError
from tui_ca.engine.home import ISSUING_CERT, ISSUING_CSR, ISSUING_KEY, ROOT_CERT, ROOT_KEY, read_file
from tui_ca.engine.store import (
    CRL_DER_BLOB,
    CRL_PEM_BLOB,
    ROOT_CRL_DER_BLOB,
    ROOT_CRL_PEM_BLOB,
    RecordStore,
    StoreDamagedError,
    StoreView,
    open_store,
)

if TYPE_CHECKING:
    # What only signing, CSR checks and the UI need is imported where it is used:
    # a command that signs nothing (show, list, export) must not pay for
    # cryptography.x509 or dataclasses at start-up (bench/cli_startup.py).
    from cryptography import x509

    from tui_ca.engine.listing import Listing, Overview
    from tui_ca.engine.listing_rows import Kind
    from tui_ca.engine.models import (
        AuditRecord,
        CAInfo,
        Certificate,
        CertStatus,
        CrlInfo,
        Refusal,
        Request,
        RequestStatus,
    )

__all__ = ["ISSUING_CERT", "ISSUING_CSR", "ISSUING_KEY", "ROOT_CERT", "ROOT_KEY", "CAReader", "utc_now"]
T = TypeVar("T")
# Certificate IDs are small decimal numbers; anything longer is a serial in hex.
_MAX_ID_DIGITS = 12


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _consistent(method: Callable[..., T]) -> Callable[..., T]:
    """Make a read of several records see one committed state (RecordStore.read).

    The view of that state is kept per thread while the method runs, so that
    the readers it calls use the same one.
    """

    @functools.wraps(method)
    def read(self: CAReader, *args: Any, **kwargs: Any) -> T:
        local = self._reading
        if getattr(local, "view", None) is not None:
            return method(self, *args, **kwargs)

        def run(view: StoreView) -> T:
            local.view = view
            try:
                return method(self, *args, **kwargs)
            finally:
                local.view = None

        return self.store.read(run)

    return read


class CAReader:
    """What can be known about a CA home without its keys. Safe across processes."""

    def __init__(self, home: Path | str, *, clock: Callable[[], datetime] | None = None,
                 store: RecordStore | str | None = None) -> None:  # fmt: skip
        """``store``: a record store, or a backend name (``store.BACKENDS``); default ``store.default_backend``."""
        self.home = Path(home)
        self.store: RecordStore = store if store is not None and not isinstance(store, str) else open_store(home, store)
        self._clock = clock or utc_now
        self._parsed: dict[str, tuple[object, object]] = {}
        self._reading = threading.local()

    def _view(self) -> StoreView:
        """The view of the consistent read in progress on this thread, else a fresh one."""
        view = getattr(self._reading, "view", None)
        return view if view is not None else self.store.view()

    def now(self) -> datetime:
        """The injected clock (UTC, whole seconds)."""
        return self._clock()

    def exists(self) -> bool:
        """Whether this home holds a ready CA (its configuration committed and its certificate in place)."""
        if not (self.home / ISSUING_CERT).exists():
            return False
        config = self.config()
        return bool(config) and not config.get("awaiting_import", False)

    def awaiting_import(self) -> bool:
        """An external-root setup wrote its CSR and waits for ``import_ca_cert``."""
        if not (self.home / ISSUING_CSR).exists():
            return False
        config = self.config()
        # Homes made before the flag existed: the CSR without the certificate says it.
        return bool(config.get("awaiting_import", not (self.home / ISSUING_CERT).exists())) if config else False

    def change_token(self) -> object:
        """Cheap value that changes whenever any process commits (one stat call)."""
        return self.store.change_token()

    def change_token_is_local(self) -> bool:
        """Whether ``change_token()`` is a local look (a stat, memory) rather than a round trip to a database:
        only then may an event loop call it between requests without stalling every other client."""
        return bool(getattr(self.store, "change_token_is_local", False))

    def require_ca(self) -> None:
        """Refuse (NoCAError) unless this home holds a ready CA."""
        self._require_ca()

    def _require_ca(self) -> None:
        if not self.exists():
            if self.awaiting_import():
                raise NoCAError(f"the issuing CA in {self.home} waits for its certificate: run import-ca-cert")
            raise NoCAError(f"no CA in {self.home}: run 'tui-ca init' first")

    def _parsed_blob(self, relpath: str, parse: Callable[[bytes], T]) -> T:
        path = self.home / relpath
        try:
            st = os.stat(path)
            signature: object = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            signature = None
        cached = self._parsed.get(relpath)
        if cached is not None and cached[0] == signature:
            # One parser per path (the callers below), so the cached value has its type.
            return cast(T, cached[1])
        value = parse(read_file(self.home, relpath))
        self._parsed[relpath] = (signature, value)
        return value

    def issuing_cert(self) -> x509.Certificate:
        from cryptography import x509

        self._require_ca()
        return self._parsed_blob(ISSUING_CERT, x509.load_pem_x509_certificate)

    def root_cert(self) -> x509.Certificate:
        from cryptography import x509

        self._require_ca()
        return self._parsed_blob(ROOT_CERT, x509.load_pem_x509_certificate)

    def issuing_public_key(self) -> Any:
        """The issuing CA's public key, from its certificate's SubjectPublicKeyInfo.

        Sliced out of the DER instead of parsing the certificate: verifying the
        signed approval policy is all that ``show`` needs it for, and that must
        not load cryptography.x509.
        """
        import base64

        from cryptography.hazmat.primitives.serialization import load_der_public_key

        from tui_ca.engine.crl import der_body, der_split

        self._require_ca()
        pem = read_file(self.home, ISSUING_CERT)
        der = base64.b64decode(b"".join(pem.split(b"-----")[2].split()))
        tbs = der_split(der_body(der))[0]
        fields = der_split(der_body(tbs))
        # TBSCertificate: [0] version (v3), serial, signature, issuer, validity, subject, subjectPublicKeyInfo.
        return load_der_public_key(fields[6 if fields[0][0] == 0xA0 else 5])

    def has_governance(self) -> bool:
        """Whether a signed approval policy or role groups are set (approval_policy.GOVERNANCE_CONFIG_KEY)."""
        return self.config().get("governance") is not None

    def key_is_encrypted(self) -> bool:
        """Whether using the CA key needs a secret: its passphrase, or the PIN of the token holding it."""
        if self.key_in_token():
            return True
        path = self.home / ISSUING_KEY
        if not path.exists():
            return False
        from tui_ca.engine.keys import is_encrypted

        return is_encrypted(read_file(self.home, ISSUING_KEY))

    def key_in_token(self) -> bool:
        """Whether the CA keys live in a PKCS#11 token (``init --pkcs11``, ``key-to-token``), not in files."""
        return bool(self.config().get("pkcs11"))

    def find_by_csr(self, data: bytes) -> Request | None:
        """The request made from exactly this CSR, if any (EST polling)."""
        from tui_ca.engine.csr_policy import check_and_describe, load_csr

        # A lookup only: a wildcard CSR queued by a CA that allows them must still be found.
        return self.find_by_csr_digest(check_and_describe(load_csr(data), allow_wildcard=True).csr_sha256)

    @_consistent
    def find_by_csr_digest(self, sha: str) -> Request | None:
        """``find_by_csr`` for a CSR already parsed and checked (its ``CsrDetails.csr_sha256``)."""
        view = self._view()
        known = view.find_csr(sha)
        doc = None if known is None else view.get_request(known)
        # A commit renames its files one by one: the index can show a request a
        # moment before the request itself is there. Until then it is not known.
        return None if doc is None else records.request_model(doc)

    def crl_is_stale(self) -> bool:
        from tui_ca.engine.clock import crl_from_the_future

        info = self.info()
        now = self.now()
        # A CRL dated in the future (clock skew) is refused by relying parties: re-publish it (trust slice).
        return (
            info.crl_next_update is None
            or now >= info.crl_next_update
            or crl_from_the_future(now, info.crl_this_update)
        )

    @_consistent
    def info(self) -> CAInfo:
        """The signing certificate as the header shows it."""
        from tui_ca.engine.csr_policy import describe_key, name_fields
        from tui_ca.engine.models import CAInfo

        issuing = self.issuing_cert()
        view = self._view()
        meta, config = view.meta(), view.config()

        return CAInfo(
            issuer=name_fields(issuing.issuer), subject=name_fields(issuing.subject),
            not_before=issuing.not_valid_before_utc, not_after=issuing.not_valid_after_utc,
            serial=issuing.serial_number, key_type=describe_key(issuing.public_key())[0],
            base_url=config.get("base_url"), crl_number=meta.get("crl_number") or None,
            crl_this_update=records.time_model(meta.get("crl_this_update")),
            crl_next_update=records.time_model(meta.get("crl_next_update")), key_encrypted=self.key_is_encrypted(),
        )  # fmt: skip

    def config(self) -> dict:
        return self._view().config()

    @_consistent
    def requests(self, status: RequestStatus | None = None) -> list[Request]:
        """Requests by Certificate ID, optionally of one status."""
        return list(self.iter_requests(status))

    @_consistent
    def certificates(self, status: CertStatus | None = None) -> list[Certificate]:
        """Certificates by Certificate ID, optionally of one status (expiry from the clock)."""
        return list(self.iter_certificates(status))

    @_consistent
    def overview(self, *, first_screen_rows: int | None = None, pause: Callable[[], None] | None = None) -> Overview:
        """Every list of the main screen, models built only on demand (see listing.py)."""
        from tui_ca.engine.listing import read_overview

        token, now, info = self.change_token(), self.now(), self.info()
        return read_overview(self._view(), token, now, info, first_screen_rows, pause)

    def listing(self, *, first_screen_rows: int | None = None, pause: Callable[[], None] | None = None) -> Listing:
        """Every list of the main screen, compact (listing.py); memory a few dozen bytes a record.

        Streamed through a view that keeps nothing it parsed, so it is not of one
        instant: a commit during the read moves ``change_token`` past the
        listing's ``token``, and a face that polls the token reads again.
        """
        from tui_ca.engine.approval_policy import governance_in_force
        from tui_ca.engine.errors import CAError
        from tui_ca.engine.governance import approvals_needed_for_doc

        token, now, info = self.change_token(), self.now(), self.info()
        try:
            policy = governance_in_force(self.config(), lambda: self.issuing_cert().public_key())[0]
        except CAError:
            policy = None  # a damaged policy counts no approval; the approve itself says why
        needed = None if policy is None or policy.is_default else (lambda doc: approvals_needed_for_doc(policy, doc))
        from tui_ca.engine.listing import read_listing

        return read_listing(self.store.view(keep=False), token, now, info, needed=needed,
                            multi_approval=needed is not None, first_screen_rows=first_screen_rows,
                            pause=pause)  # fmt: skip

    def matching_ids(self, query: str, expiring_within: timedelta, *, requests: bool = True,
                     certificates: bool = True, queued_only: bool = False,
                     pause: Callable[[], None] | None = None) -> set[int]:  # fmt: skip
        """IDs of the records any of whose stored fields (or status words) hold ``query``; streamed."""
        from tui_ca.engine.listing import matching_ids

        return matching_ids(self.store.view(keep=False), query, self.now(), expiring_within, requests=requests,
                            certificates=certificates, queued_only=queued_only, pause=pause)  # fmt: skip

    @_consistent
    def active_certificate(self, requester: str) -> Certificate | None:
        """The requester's valid, unexpired certificate, if any (one index lookup)."""
        view = self._view()
        entry = view.find_requester(requester)
        if entry is None or entry.get("active") is None:
            return None
        doc = view.get_certificate(entry["active"])
        if doc is None:
            return None
        cert = records.certificate_model(doc)
        return cert if cert.is_active(self.now()) else None

    @_consistent
    def request(self, request_id: int) -> Request:
        doc = self._view().get_request(request_id)
        if doc is None:
            raise NotFoundError(f"no request with Certificate ID {request_id}")
        return records.request_model(doc)

    @staticmethod
    def parse_target(target: int | str) -> tuple[str, int]:
        """``("id", n)`` for a Certificate ID, ``("serial", n)`` for a hex serial."""
        if isinstance(target, int):
            return "id", target
        from tui_ca.engine.names import is_decimal_id

        text = target.strip().lower()
        if is_decimal_id(text) and len(text) <= _MAX_ID_DIGITS:  # trust slice: ASCII digits only
            return "id", int(text)
        cleaned = text.removeprefix("0x").replace(":", "")
        if cleaned and re.fullmatch(r"[0-9a-f]+", cleaned) and len(cleaned) <= 64:
            return "serial", int(cleaned, 16)
        raise InputError(f"{target!r} is neither a Certificate ID nor a serial number in hex")

    def _certificate_id(self, view: StoreView, target: int | str) -> tuple[str, int]:
        """How ``target`` was given ("id" or "serial") and the Certificate ID it names."""
        kind, number = self.parse_target(target)
        if kind == "serial":
            found = view.find_serial(number)
            if found is None:
                raise NotFoundError(f"no certificate with serial {format(number, 'x')}")
            return kind, found
        return kind, number

    @_consistent
    def certificate(self, target: int | str) -> Certificate:
        """A certificate by Certificate ID or serial in hex."""
        view = self._view()
        _, number = self._certificate_id(view, target)
        doc = view.get_certificate(number)
        if doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {number}")
        return records.certificate_model(doc)

    def revocation_generation(self) -> int:
        """A counter that moves whenever any certificate's revocation state changes (any process)."""
        from tui_ca.engine.operation import REVOCATION_GENERATION

        return int(self._view().meta().get(REVOCATION_GENERATION, 0))

    def serial_issued(self, serial: int) -> bool:
        """Whether this CA issued a certificate with this serial.

        For a server answering status questions about any of many
        certificates: only the serial index is read, never the certificate
        records, and through a streaming view that keeps nothing, so the
        process does not grow with the store (keeping the index buckets cost
        the OCSP server 40 MiB at 100,000 certificates, bench/server_bench.py).
        """
        return self._stream_view().find_serial(serial) is not None

    def iter_serials(self) -> Iterator[int]:
        """The serial of every certificate this CA issued (revoked and expired included), streamed in ID order.

        From the listing bodies, like ``iter_certificate_rows``: no record is
        parsed, so a server can hold a compact set of 100,000 serials made in a
        fraction of a second. Serials are never removed, so a set made from
        this stays true; one issued after it was made is found by
        ``serial_issued``.
        """
        for row in self.iter_certificate_rows():
            yield int(row[4], 16)

    @_consistent
    def revocations(self) -> tuple[int, dict[int, tuple[datetime, int]]]:
        """``revocation_generation()`` and, read at the same instant, serial -> (revoked_at, CRL reason code)
        of every revoked certificate (what the CRL lists; the code of "unspecified" is 0)."""
        from tui_ca.engine.operation import REVOCATION_GENERATION

        view = self._view()
        generation = int(view.meta().get(REVOCATION_GENERATION, 0))
        return generation, {int(doc["serial"], 16): (datetime.fromisoformat(doc["at"]), doc["code"])
                            for doc in view.iter_revoked()}  # fmt: skip

    @_consistent
    def lookup(self, target: int | str) -> tuple[Request | None, Certificate | None]:
        """What ``show`` displays: the request and its certificate, either may be absent."""
        kind, number = self.parse_target(target)
        if kind == "serial":
            cert = self.certificate(target)
            return self.request(cert.id), cert
        view = self._view()
        request_doc, cert_doc = view.get_request(number), view.get_certificate(number)
        if request_doc is None and cert_doc is None:
            raise NotFoundError(f"no request or certificate with Certificate ID {number}")
        return (
            records.request_model(request_doc) if request_doc else None,
            records.certificate_model(cert_doc) if cert_doc else None,
        )

    @_consistent
    def lookup_dicts(self, target: int | str) -> tuple[dict | None, dict | None]:
        """``lookup`` as plain JSON-ready dicts (``iter_request_dicts``' and ``iter_certificate_dicts``' form).

        What ``show`` prints, read from the stored fields: no model, no certificate parsed.
        """
        view = self._view()
        kind, number = self._certificate_id(view, target)
        request_doc, cert_doc = view.get_request(number), view.get_certificate(number)
        # The same refusals as lookup's.
        if kind == "serial" and cert_doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {number}")
        if kind == "serial" and request_doc is None:
            raise NotFoundError(f"no request with Certificate ID {number}")
        if request_doc is None and cert_doc is None:
            raise NotFoundError(f"no request or certificate with Certificate ID {number}")
        return (
            records.request_json(request_doc) if request_doc else None,
            records.certificate_json(cert_doc, self.now().isoformat()) if cert_doc else None,
        )

    @_consistent
    def csr_pem(self, request_id: int) -> bytes:
        """The CSR of a request, as PEM."""
        self.request(request_id)
        pem = self._view().get_csr_pem(request_id)
        if pem is None:
            raise NotFoundError(f"the CSR of request {request_id} is missing from the store")
        return pem.encode()

    @_consistent
    def certificate_pem(self, target: int | str, *, chain: bool = False) -> bytes:
        """The certificate as PEM, optionally followed by the issuing CA and the root."""
        cert = self.certificate(target)
        stored = self._view().get_cert_pem(cert.id)
        if stored is None:
            raise NotFoundError(f"the PEM of certificate {cert.id} is missing from the store")
        pem = stored.encode()
        return pem + self.ca_cert_pem(chain=True) if chain else pem

    def ca_cert_pem(self, *, chain: bool = False) -> bytes:
        """The signing certificate (and the root after it)."""
        self._require_ca()
        pem = read_file(self.home, ISSUING_CERT)
        return pem + read_file(self.home, ROOT_CERT) if chain else pem

    @_consistent
    def audit_records(self) -> list[AuditRecord]:
        from tui_ca.engine import audit as audit_log

        return [audit_log.to_model(doc) for doc in self._audit_docs()]

    def _audit_docs(self) -> list[dict]:
        return list(self._view().iter_audit())

    @_consistent
    def verify_audit(self) -> list[str]:
        """Problems in the audit chain; empty when intact."""
        from tui_ca.engine import audit as audit_log

        meta = self._view().meta()
        return audit_log.verify_chain(self._audit_docs(), meta["audit_seq"], meta["audit_head"])

    def home_permissions_problems(self) -> list[str]:
        """Why the home's modes are unsafe (others can reach it, or a group that does not share it)."""
        from tui_ca.engine.sharing import Sharing

        try:
            Sharing.of(self.home).check(self.home, folder=True)
        except UnsafeHomeError as exc:
            return [str(exc)]
        return []

    # --- readers for the faces ---

    def refusals(self, limit: int = 500) -> list[Refusal]:
        """The newest ``limit`` refused submissions, newest first (the store keeps the newest 10,000)."""
        if limit <= 0:
            return []
        return [records.refusal_model(doc) for doc in itertools.islice(self._view().iter_refusals(), limit)]

    def queued_count(self) -> int:
        """Requests waiting now (a counter, not a scan)."""
        return int(self._view().meta().get("queued", 0))

    @_consistent
    def issued_certificate(self, request_id: int) -> tuple[Certificate, bytes] | None:
        """The certificate and its PEM for an approved request, of one committed state."""
        view = self._view()
        doc, pem = view.get_certificate(request_id), view.get_cert_pem(request_id)
        if doc is None or pem is None:
            return None
        return records.certificate_model(doc), pem.encode()

    def published_crl(self, *, der: bool = True) -> bytes:
        """The currently published CRL, as it is (no re-publish)."""
        self._require_ca()
        data = self._view().get_blob(CRL_DER_BLOB if der else CRL_PEM_BLOB)
        if data is None:
            # Every ready CA has published one (init does): its absence is damage.
            raise StoreDamagedError(f"the published CRL is missing from {self.home}; run 'tui-ca crl --publish'")
        return data

    def published_root_crl(self, *, der: bool = True) -> bytes | None:
        """The root's own CRL as published, or None (an external root publishes its own)."""
        return self._view().get_blob(ROOT_CRL_DER_BLOB if der else ROOT_CRL_PEM_BLOB)

    @_consistent
    def crl_state(self) -> CrlInfo:
        """Number, thisUpdate, nextUpdate and entry count of the published CRL."""
        view = self._view()
        meta = view.meta()
        this_update, next_update = (
            records.time_model(meta.get("crl_this_update")),
            records.time_model(meta.get("crl_next_update")),
        )
        if this_update is None or next_update is None:
            raise NoCAError(f"no CRL has been published in {self.home} yet")
        from tui_ca.engine.models import CrlInfo

        entries = meta.get("crl_entries")
        if entries is None:
            entries = view.crl_entries()[1]
        return CrlInfo(number=meta.get("crl_number", 0), this_update=this_update, next_update=next_update,
                       entries=entries)  # fmt: skip

    def _stream_view(self) -> StoreView:
        view = getattr(self._reading, "view", None)
        return view if view is not None else self.store.view(keep=False)

    def iter_request_dicts(self, status: RequestStatus | None = None) -> Iterator[dict]:
        """Requests as plain JSON-ready dicts (the fields of ``Request``), streamed in ID order."""
        wanted = None if status is None else status.value
        for doc in self._stream_view().iter_requests(status=wanted):
            yield records.request_json(doc)

    def iter_certificate_dicts(self, status: CertStatus | None = None) -> Iterator[dict]:
        """Certificates as plain JSON-ready dicts (with ``status``), streamed in ID order."""
        now_text = self.now().isoformat()
        for doc in self._stream_view().iter_certificates():
            if status is None or records.certificate_status(doc, now_text) == status.value:
                yield records.certificate_json(doc, now_text)

    def _listing_bodies(self, kind: Kind, rows_only: bool = False) -> Iterator[str]:
        view = self._stream_view()
        kept = getattr(view, "listing_bodies", None)
        if kept is not None:
            return kept(kind.name, rows_only)
        return _rendered_bodies(kind, view.iter_requests() if kind.name == "requests" else view.iter_certificates())

    def iter_certificate_rows(self, status: CertStatus | None = None) -> Iterator[tuple[int, str, str, str, str]]:
        """(id, status, requester, not_after as ISO text, serial as openssl prints it), streamed in ID order.

        From the listing bodies a store keeps (``listing_rows``), not from the
        records: no document is parsed or model built per certificate.
        """
        from tui_ca.engine.listing_rows import CERTIFICATES, rows

        wanted = None if status is None else status.value
        return rows(CERTIFICATES, self._listing_bodies(CERTIFICATES, rows_only=True), self.now().isoformat(), wanted)

    def iter_certificate_json(self, status: CertStatus | None = None) -> Iterator[str]:
        """The certificates as JSON text, streamed in ID order: chunks of whole objects, each on its own line.

        An object holds the fields of ``iter_certificate_dicts`` with the serial
        as openssl prints it (upper-case hex, whole bytes); every line ends in a
        newline. Made from the listing bodies, like ``iter_certificate_rows``.
        """
        from tui_ca.engine.listing_rows import CERTIFICATES, json_chunks

        wanted = None if status is None else status.value
        return json_chunks(CERTIFICATES, self._listing_bodies(CERTIFICATES), self.now().isoformat(), wanted)

    def iter_request_rows(self, status: RequestStatus | None = None) -> Iterator[tuple[int, str, str, str, str]]:
        """(id, status, requester, key type, submitted_at as ISO text) of each request, streamed in ID order.

        From the listing bodies, like ``iter_certificate_rows``.
        """
        from tui_ca.engine.listing_rows import REQUESTS, rows

        wanted = None if status is None else status.value
        return rows(REQUESTS, self._request_bodies(wanted, rows_only=True), "", wanted)

    def iter_request_json(self, status: RequestStatus | None = None) -> Iterator[str]:
        """The requests as JSON text, streamed in ID order: chunks of whole objects, each on its own line.

        Each object is ``iter_request_dicts``' dict as ``json`` encodes it by
        default; made from the listing bodies, like ``iter_certificate_json``.
        """
        from tui_ca.engine.listing_rows import REQUESTS, json_chunks

        wanted = None if status is None else status.value
        return json_chunks(REQUESTS, self._request_bodies(wanted), "", wanted)

    def _request_bodies(self, status: str | None, rows_only: bool = False) -> Iterator[str]:
        from tui_ca.engine.listing_rows import REQUESTS

        if status == "queued":
            # Few by rule, and found through the store's queue: rendering those beats reading every body.
            return _rendered_bodies(REQUESTS, self._stream_view().iter_requests(status=status))
        return self._listing_bodies(REQUESTS, rows_only)

    def iter_requests(self, status: RequestStatus | None = None) -> Iterator[Request]:
        """Requests by Certificate ID, streamed: memory does not grow with the store."""
        wanted = None if status is None else status.value
        for doc in self._stream_view().iter_requests(status=wanted):
            yield records.request_model(doc)

    def iter_certificates(self, status: CertStatus | None = None) -> Iterator[Certificate]:
        """Certificates by Certificate ID, streamed (status from the clock)."""
        now = self.now()
        for doc in self._stream_view().iter_certificates():
            cert = records.certificate_model(doc)
            if status is None or cert.status_at(now) == status:
                yield cert

    # --- integrity and copies ---

    def check(self) -> list[str]:
        """Every inconsistency between records, indexes, CRL, OCSP answers and the audit chain; one line each."""
        from tui_ca.engine.checking import check_records
        from tui_ca.engine.store import StoreDamagedError

        try:
            return self.store.read(lambda view: self._check(view, check_records))
        except StoreDamagedError as exc:
            return [str(exc)]

    def _check(self, view: StoreView, check_records: Callable[..., Iterator[str]]) -> list[str]:
        issuing = self.issuing_cert() if self.exists() else None
        return list(check_records(view, issuing, self.now()))

    def backup(self, dest: Path | str) -> Path:
        """A consistent copy of this home (keys, files, records) in the new or empty folder ``dest``."""
        from tui_ca.engine.backup import backup

        return backup(self, dest)


def _rendered_bodies(kind: Kind, docs: Iterator[dict], size: int = 256) -> Iterator[str]:
    """Listing bodies made on the fly, for stores that keep none."""
    from tui_ca.engine import listing_rows

    batch: list[dict] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield listing_rows.render(kind, batch)
            batch = []
    if batch:
        yield listing_rows.render(kind, batch)
