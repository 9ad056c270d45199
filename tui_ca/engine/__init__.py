"""The CA engine: models, CSR policy, issuing, CRL/OCSP and the store.

Nothing in this package imports Textual; the TUI, the CLI and the server are
faces on :class:`~tui_ca.engine.ca.CertificateAuthority`.
"""

from tui_ca.engine.ca import CertificateAuthority
from tui_ca.engine.errors import (
    CAError,
    InputError,
    KeyLockedError,
    NoCAError,
    NotFoundError,
    RuleError,
    UnsafeHomeError,
)
from tui_ca.engine.models import (
    Actor,
    AuditRecord,
    CAInfo,
    Certificate,
    CertStatus,
    CsrDetails,
    NameFields,
    Request,
    RequestStatus,
    RevocationReason,
)

__all__ = [
    "Actor",
    "AuditRecord",
    "CAError",
    "CAInfo",
    "CertStatus",
    "Certificate",
    "CertificateAuthority",
    "CsrDetails",
    "InputError",
    "KeyLockedError",
    "NameFields",
    "NoCAError",
    "NotFoundError",
    "Request",
    "RequestStatus",
    "RevocationReason",
    "RuleError",
    "UnsafeHomeError",
]
