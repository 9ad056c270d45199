"""Frozen dataclasses that engine operations take and return.

Records on disk are plain dicts; these types are what the faces see. Times are
timezone-aware UTC datetimes; serial numbers are ints (``serial_hex`` is the
form people type).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

# Here for the faces that import it from the models; it lives with the other pure text helpers.
from tui_ca.engine.names import group_fingerprint

if TYPE_CHECKING:
    # Imported where used: a command that signs nothing should not pay for x509.
    from cryptography import x509

    from tui_ca.engine.errors import CAError


class RequestStatus(StrEnum):
    """Where a request stands in the queue."""

    QUEUED = "queued"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class CertStatus(StrEnum):
    """A certificate's state; ``expired`` is derived from the clock."""

    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"


class RevocationReason(StrEnum):
    """RFC 5280 CRLReason names, as admins type them."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"

    @property
    def code(self) -> int:
        """The CRLReason enumeration value (RFC 5280 §5.3.1)."""
        return _REASON_CODES[self]

    @property
    def flag(self) -> x509.ReasonFlags:
        """The matching ``cryptography`` flag."""
        from cryptography import x509

        return x509.ReasonFlags(_REASON_FLAG_VALUES[self])

    @classmethod
    def parse(cls, text: str) -> RevocationReason:
        """Accept the RFC name in any case, with or without separators."""
        wanted = text.replace("-", "").replace("_", "").replace(" ", "").lower()
        for reason in cls:
            if reason.value.lower() == wanted:
                return reason
        names = ", ".join(r.value for r in cls)
        from tui_ca.engine.errors import InputError

        raise InputError(f"unknown revocation reason {text!r}; use one of: {names}")


# removeFromCRL (8) is only meaningful in delta CRLs, which we do not issue.
_REASON_CODES = {
    RevocationReason.UNSPECIFIED: 0,
    RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2,
    RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.CERTIFICATE_HOLD: 6,
    RevocationReason.PRIVILEGE_WITHDRAWN: 9,
}
_REASON_FLAG_VALUES = {
    RevocationReason.UNSPECIFIED: "unspecified",
    RevocationReason.KEY_COMPROMISE: "keyCompromise",
    RevocationReason.CA_COMPROMISE: "cACompromise",
    RevocationReason.AFFILIATION_CHANGED: "affiliationChanged",
    RevocationReason.SUPERSEDED: "superseded",
    RevocationReason.CESSATION_OF_OPERATION: "cessationOfOperation",
    RevocationReason.CERTIFICATE_HOLD: "certificateHold",
    RevocationReason.PRIVILEGE_WITHDRAWN: "privilegeWithdrawn",
}


@dataclass(frozen=True)
class Actor:
    """Who performs an operation: the OS user and, over SSH, the client address."""

    user: str
    """OS login name (or an EST user for network requests)."""
    address: str | None = None
    """SSH client or network peer address, when there is one."""

    @classmethod
    def from_environment(cls) -> Actor:
        """The person at this terminal: ``$SSH_CLIENT`` names their address."""
        # The real uid, not $USER or $LOGNAME, which anyone can set (roles and
        # the distinct-approver rule rest on this name).
        try:
            user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            user = f"uid:{os.getuid()}"
        ssh = os.environ.get("SSH_CLIENT") or os.environ.get("SSH_CONNECTION") or ""
        address = ssh.split()[0] if ssh.split() else None
        return cls(user=user, address=address)

    def describe(self) -> str:
        """``alice`` or ``alice from 192.0.2.7``."""
        return f"{self.user} from {self.address}" if self.address else self.user


@dataclass(frozen=True)
class NameFields:
    """The distinguished-name fields the product shows (C, ST, L, O, OU, CN, emailAddress)."""

    country: str | None = None
    """C: two-letter country code."""
    state: str | None = None
    """ST: state or province."""
    locality: str | None = None
    """L: city."""
    organization: str | None = None
    """O: organisation."""
    org_unit: str | None = None
    """OU: organisational unit."""
    common_name: str | None = None
    """CN."""
    email: str | None = None
    """emailAddress (shown for the issuer only, as the product does)."""

    def as_pairs(self) -> list[tuple[str, str | None]]:
        """Label/value pairs in display order."""
        return [
            ("C", self.country),
            ("ST", self.state),
            ("L", self.locality),
            ("O", self.organization),
            ("OU", self.org_unit),
            ("CN", self.common_name),
            ("emailAddress", self.email),
        ]


@dataclass(frozen=True)
class CsrDetails:
    """What an admin needs to confirm a requester, read from a CSR."""

    subject: str
    """RFC 4514 rendering of the subject (requester-controlled text)."""
    subject_fields: NameFields
    """The common subject fields, for display."""
    common_name: str | None
    """Subject CN, if any."""
    sans: tuple[str, ...]
    """Subject alternative names as ``DNS:…``, ``IP:…``, ``email:…``, ``URI:…``."""
    key_type: str
    """``EC P-256``, ``RSA 2048`` …"""
    key_size: int
    """Key size in bits."""
    signature_valid: bool
    """Whether the CSR's self-signature verifies (intake refuses bad ones)."""
    spki_sha256: str
    """SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex."""
    csr_sha256: str
    """SHA-256 of the CSR's DER, used to recognise a re-sent request."""

    @property
    def name_warning(self) -> str | None:
        """Set when no TLS stack could match the certificate by hostname or address."""
        from tui_ca.engine.names import name_warning

        return name_warning(self.sans)

    @property
    def fingerprint_groups(self) -> str:
        """The SPKI fingerprint in groups of four, for reading aloud."""
        return group_fingerprint(self.spki_sha256)


@dataclass(frozen=True)
class Request:
    """One CSR in the queue or decided, identified by its Certificate ID."""

    id: int
    """Certificate ID: small, unique, never reused."""
    requester: str
    """Given at submission, else the subject CN."""
    status: RequestStatus
    """queued, approved, rejected or expired."""
    details: CsrDetails
    """What the CSR says."""
    submitted_at: datetime
    """When it arrived."""
    submitted_by: Actor
    """Who or what sent it."""
    source: str
    """How it arrived: ``cli``, ``est``, ``tui``."""
    decided_at: datetime | None = None
    """When it was approved, rejected or expired."""
    decided_by: Actor | None = None
    """Who decided."""
    reason: str | None = None
    """Why it was rejected or expired."""
    renewal_of: int | None = None
    """For a re-enrollment: the Certificate ID it replaces."""
    approvals: tuple[Actor, ...] = ()
    """Admins who approved it so far (under a K-of-N policy, fewer than K while queued)."""
    note: dict = field(default_factory=dict, compare=False)
    """How it arrived beyond ``source``: a SCEP transaction ID, whether a challenge matched."""
    via: str = "admin"
    """How its sender authenticated (applicant.Channel): admin, certificate, user, challenge or anonymous."""


@dataclass(frozen=True)
class Certificate:
    """An issued certificate; its Certificate ID is that of its request."""

    id: int
    """Certificate ID (same as the request's)."""
    requester: str
    """Who asked for it."""
    serial: int
    """Serial number (random, ≥ 64 bits)."""
    subject: str
    """RFC 4514 subject."""
    common_name: str | None
    """Subject CN."""
    sans: tuple[str, ...]
    """Subject alternative names."""
    key_type: str
    """Key description, e.g. ``EC P-256``."""
    spki_sha256: str
    """SHA-256 of the subject public key info, hex."""
    sha256: str
    """SHA-256 fingerprint of the certificate DER, hex."""
    not_before: datetime
    """Start of validity."""
    not_after: datetime
    """End of validity."""
    issued_at: datetime
    """When it was approved."""
    issued_by: Actor
    """Who approved it."""
    revoked_at: datetime | None = None
    """When it was revoked."""
    revoked_by: Actor | None = None
    """Who revoked it."""
    revocation_reason: RevocationReason | None = None
    """Why."""

    @property
    def name_warning(self) -> str | None:
        """Set when no TLS stack could match the certificate by hostname or address."""
        from tui_ca.engine.names import name_warning

        return name_warning(self.sans)

    @property
    def serial_hex(self) -> str:
        """Serial as lowercase hex, the form `show`/`revoke` accept."""
        return format(self.serial, "x")

    @property
    def short_serial(self) -> str:
        """First 8 hex digits, for narrow lists."""
        return self.serial_hex[:8]

    def status_at(self, now: datetime) -> CertStatus:
        """Revoked wins over expired; otherwise expiry comes from the clock."""
        if self.revoked_at is not None:
            return CertStatus.REVOKED
        if now >= self.not_after:
            return CertStatus.EXPIRED
        return CertStatus.VALID

    def is_active(self, now: datetime) -> bool:
        """Valid and unexpired: blocks a new request from the same requester."""
        return self.status_at(now) is CertStatus.VALID


@dataclass(frozen=True)
class CAInfo:
    """The signing certificate as the header shows it, plus CRL freshness."""

    issuer: NameFields
    """Issuer of the issuing CA (the root)."""
    subject: NameFields
    """Subject of the issuing CA."""
    not_before: datetime
    """Issuing CA validity start."""
    not_after: datetime
    """Issuing CA validity end."""
    serial: int
    """Issuing CA serial."""
    key_type: str
    """Issuing CA key, e.g. ``EC P-256``."""
    base_url: str | None
    """Public HTTP base for CDP/AIA, if configured."""
    crl_number: int | None
    """Number of the current CRL, if one was published."""
    crl_this_update: datetime | None
    """When the current CRL was published."""
    crl_next_update: datetime | None
    """When the current CRL goes stale."""
    key_encrypted: bool = False
    """Whether the CA keys are protected by a passphrase."""


@dataclass(frozen=True)
class CrlInfo:
    """A published CRL."""

    number: int
    """Monotonic CRL number."""
    this_update: datetime
    """Publication time."""
    next_update: datetime
    """When relying parties should fetch again."""
    entries: int
    """Revoked certificates listed."""


@dataclass(frozen=True)
class ApproveOutcome:
    """Result for one ID of a (bulk) approval."""

    id: int
    """The Certificate ID asked for."""
    certificate: Certificate | None = None
    """The issued certificate, on success."""
    error: str | None = None
    """Why it was refused, otherwise."""
    refusal: type[CAError] | None = None
    """The class of the refusal (a ``RuleError`` or ``InputError``), for the faces to map."""
    approvals: tuple[str, ...] = ()
    """Who has approved the request so far, this approval included."""
    needed: int = 1
    """Approvals the policy asks for; fewer given means the request still waits."""

    @property
    def pending(self) -> bool:
        """The approval was recorded but more admins must approve before issuing."""
        return self.certificate is None and self.error is None

    warning: str | None = None
    """Issued, but not as asked (e.g. cut short by the issuing CA's end)."""


@dataclass(frozen=True)
class SubmitResult:
    """Outcome of an intake: the request, and whether it is new."""

    request: Request
    """The queued (or already queued) request."""
    created: bool
    """False when the identical CSR was already queued (a client polling)."""


@dataclass(frozen=True)
class AuditRecord:
    """One line of the hash-chained audit log."""

    seq: int
    """Position in the log, from 1."""
    at: datetime
    """When."""
    user: str
    """OS user (or EST identity)."""
    address: str | None
    """SSH client or network peer."""
    action: str
    """init, submit, approve, reject, revoke, crl, expire, import-ca."""
    target: str
    """What it acted on (``request 42``, ``serial 1f…``)."""
    outcome: str
    """What happened."""
    prev_hash: str
    """Hash of the previous record ('' for the first)."""
    hash: str
    """SHA-256 over this record's fields and ``prev_hash``."""
    extra: dict = field(default_factory=dict, compare=False)
    """Action-specific details (serials, reasons)."""


@dataclass(frozen=True)
class Refusal:
    """A submission refused at intake (nothing of it was stored but this record)."""

    at: datetime
    """When it was refused."""
    source: str
    """How it came: ``cli``, ``est``, ``scep``."""
    reason: str
    """The one-line reason the submitter was given."""
    user: str | None = None
    """Who sent it: the OS user, the EST user, ``scep``."""
    address: str | None = None
    """The client's network (or SSH) address, when known."""
    requester: str | None = None
    """The requester the submission claimed, when it named one."""
    subject: str | None = None
    """The CSR's subject (or CN), when the CSR could be read."""
    seq: int = 0
    """Position in the store's refusal log (from 1; 0 before it is stored)."""
