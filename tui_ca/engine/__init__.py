"""The CA engine: models, CSR policy, issuing, CRL/OCSP and the store.

Nothing in this package imports Textual; the TUI, the CLI and the server are
faces on :class:`~tui_ca.engine.ca.CertificateAuthority`.

The names below are loaded on first use (PEP 562): importing a light module
such as ``tui_ca.engine.errors`` must not pull in the signing code and all of
``cryptography.x509``, which costs a command-line start-up more than the work.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "CertificateAuthority": "ca",
    **dict.fromkeys(
        ["CAError", "InputError", "KeyLockedError", "NoCAError", "NotFoundError", "RuleError", "UnsafeHomeError"],
        "errors",
    ),
    **dict.fromkeys(
        ["Actor", "AuditRecord", "CAInfo", "Certificate", "CertStatus", "CsrDetails", "NameFields", "Request",
         "RequestStatus", "RevocationReason"],
        "models",
    ),
}  # fmt: skip

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


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
