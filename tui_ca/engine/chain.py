"""Revocation for the whole chain: the root's own CRL and the emergency revocation of the issuing CA.

Relying parties that check every certificate of a path (Java's PKIX with
revocation on, NSS, strict Go configurations) need revocation data for the
issuing CA too: the issuing CA's certificate names the root's CRL (CDP) and
the root's certificate (AIA caIssuers), and the root publishes that CRL,
signed with the root key. The root signs almost nothing, so its CRL lives long
(a year by default) and is re-signed by ``crl --publish`` when a quarter of
that remains. Its state (number, entries) is kept in the meta record and it is
published in the caller's operation, like the issuing CA's CRL.

An external root (``import-ca-cert``) publishes its own CRL; nothing here runs
for such a home, and the emergency revocation is refused with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tui_ca.engine import records
from tui_ca.engine.crl import der_to_pem, encode_entry, sign_crl
from tui_ca.engine.errors import KeyLockedError, RuleError
from tui_ca.engine.models import Actor, CrlInfo, RevocationReason
from tui_ca.engine.store import ROOT_CRL_DER_BLOB, ROOT_CRL_PEM_BLOB

if TYPE_CHECKING:
    from cryptography import x509

    from tui_ca.engine.operation import Operation
    from tui_ca.engine.reader import CAReader
DEFAULT_ROOT_CRL_DAYS = 365
# Re-signed from cron once this fraction of its period is left: a relying party
# that cached it at the start must never see it lapse.
_REFRESH_FRACTION = 0.25
# The reasons that make sense for a CA certificate (RFC 5280 §5.3.1).
ISSUING_CA_REASONS = (
    RevocationReason.UNSPECIFIED,
    RevocationReason.KEY_COMPROMISE,
    RevocationReason.CA_COMPROMISE,
    RevocationReason.AFFILIATION_CHANGED,
    RevocationReason.SUPERSEDED,
    RevocationReason.CESSATION_OF_OPERATION,
)


class IssuingRevokedError(RuleError):
    """The issuing CA was revoked by the root: nothing more is signed with it."""


def root_is_ours(ca: CAReader) -> bool:
    """Whether this home holds the root key, as a file or in its token (false for an external root)."""
    from tui_ca.engine.home import ROOT_KEY

    token = ca.config().get("pkcs11") or {}
    return ROOT_KEY in (token.get("keys") or {}) or (ca.home / ROOT_KEY).exists()


def root_crl_der(ca: CAReader) -> bytes | None:
    """The published root CRL (DER), or None when the root is external or none was published."""
    return ca.published_root_crl()


def issuing_revocation(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The root's record of the issuing CA's revocation, if it was revoked."""
    entries = meta.get("root_revoked") or []
    return entries[0] if entries else None


def publish_root_crl(ca: Any, op: Operation, root: x509.Certificate, root_key: Any) -> CrlInfo:
    """Sign the root's CRL with the root key and stage it in the operation (audited)."""
    config, meta = op.txn.config(), op.meta
    now = ca.now()
    number = meta.get("root_crl_number", 0) + 1
    next_update = now + timedelta(days=config.get("root_crl_days", DEFAULT_ROOT_CRL_DAYS))
    entries = [
        encode_entry(int(e["serial"], 16), datetime.fromisoformat(e["at"]), e["code"])
        for e in meta.get("root_revoked") or []
    ]
    der = sign_crl(root, root_key, number, now, next_update, entries)
    op.txn.put_blob(ROOT_CRL_DER_BLOB, der)
    op.txn.put_blob(ROOT_CRL_PEM_BLOB, der_to_pem(der, "X509 CRL"))
    meta["root_crl_number"] = number
    meta["root_crl_this_update"] = records.time_doc(now)
    meta["root_crl_next_update"] = records.time_doc(next_update)
    op.audit("crl", f"root CRL {number}", "published", entries=len(entries), next_update=meta["root_crl_next_update"])
    return CrlInfo(number=number, this_update=now, next_update=next_update, entries=len(entries))


def root_crl_due(ca: CAReader, meta: dict[str, Any]) -> bool:
    """Whether the root CRL is missing or within the last quarter of its period."""
    if not root_is_ours(ca):
        return False
    this_update = records.time_model(meta.get("root_crl_this_update"))
    next_update = records.time_model(meta.get("root_crl_next_update"))
    if this_update is None or next_update is None or ca.published_root_crl() is None:
        return True
    return ca.now() >= next_update - (next_update - this_update) * _REFRESH_FRACTION


def refresh_root_crl_if_due(ca: Any, op: Operation) -> None:
    """Re-sign the root CRL in the operation when it is due (a home made before it existed heals here)."""
    from tui_ca.engine.home import ROOT_KEY

    if not root_crl_due(ca, op.meta):
        return
    try:
        root_key = ca.signing_key(ROOT_KEY)
    except KeyLockedError:
        # The issuing CA's CRL must not wait for the root's: a process that was
        # given no passphrase for the root key leaves it to the next publish.
        return
    publish_root_crl(ca, op, ca.root_cert(), root_key)


def revoke_issuing_ca(
    ca: Any, reason: RevocationReason = RevocationReason.KEY_COMPROMISE, *, actor: Actor | None = None
) -> CrlInfo:
    """Emergency: the root revokes the issuing CA and publishes its CRL; later signing is refused."""
    from tui_ca.engine.home import ROOT_KEY

    ca.require_ca()
    if reason not in ISSUING_CA_REASONS:
        names = ", ".join(r.value for r in ISSUING_CA_REASONS)
        raise RuleError(f"{reason.value} is not a reason to revoke a CA certificate; use one of: {names}")
    if not root_is_ours(ca):
        raise RuleError("the root is external (import-ca-cert): ask its operator to revoke the issuing CA")
    root_key = ca.signing_key(ROOT_KEY)
    root, issuing = ca.root_cert(), ca.issuing_cert()
    with ca._operation(actor) as op:
        meta = op.meta
        done = issuing_revocation(meta)
        if done is not None:
            raise IssuingRevokedError(f"the issuing CA was already revoked by the root on {done['at']}")
        now = ca.now()
        serial = format(issuing.serial_number, "x")
        meta["root_revoked"] = [{"serial": serial, "at": records.time_doc(now), "code": reason.code,
                                 "reason": reason.value}]  # fmt: skip
        op.audit("revoke-issuing-ca", f"issuing CA {serial}", f"revoked ({reason.value})", serial=serial,
                 reason=reason.value)  # fmt: skip
        return publish_root_crl(ca, op, root, root_key)


def check_issuing_not_revoked(meta: dict[str, Any]) -> None:
    """Refuse to sign with an issuing CA that the root has revoked."""
    done = issuing_revocation(meta)
    if done is not None:
        raise IssuingRevokedError(
            f"the issuing CA was revoked by the root on {done['at']} ({done['reason']}); "
            "nothing more is signed with it: set up a new CA"
        )
