"""Publishing: signing the CRL from the store's revocation entries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cryptography import x509

from tui_ca.engine import chain, clock, records
from tui_ca.engine.authority import DEFAULT_CRL_DAYS, AuthorityBase
from tui_ca.engine.crl import der_to_pem, sign_crl
from tui_ca.engine.models import Actor, CrlInfo
from tui_ca.engine.operation import Operation
from tui_ca.engine.store import CRL_DER_BLOB, CRL_PEM_BLOB


class Publishing(AuthorityBase):
    def _publish_crl(self, op: Operation, issuing: x509.Certificate, key: Any) -> CrlInfo:
        """Sign a CRL of every revocation staged or stored, in the operation's commit."""
        now = self.now()
        clock.check_can_sign_crl(now, issuing, op.meta)
        config = op.txn.config()
        number = op.meta.get("crl_number", 0) + 1
        next_update = now + timedelta(days=config.get("crl_days", DEFAULT_CRL_DAYS))
        chunks, count = op.txn.crl_entries()
        der = sign_crl(issuing, key, number, now, next_update, chunks)
        op.txn.put_blob(CRL_DER_BLOB, der)
        op.txn.put_blob(CRL_PEM_BLOB, der_to_pem(der, "X509 CRL"))
        op.meta["crl_number"] = number
        op.meta["crl_this_update"] = records.time_doc(now)
        op.meta["crl_next_update"] = records.time_doc(next_update)
        op.meta["crl_entries"] = count
        op.audit("crl", f"CRL {number}", "published", entries=count, next_update=op.meta["crl_next_update"])
        return CrlInfo(number=number, this_update=now, next_update=next_update, entries=count)

    def publish_crl(self, *, actor: Actor | None = None) -> CrlInfo:
        """Sign and publish a fresh CRL now (cron, stale CRL, admin request)."""
        self._require_ca()
        key, issuing = self.signing_key(), self.issuing_cert()
        with self._operation(actor) as op:
            info = self._publish_crl(op, issuing, key)
            chain.refresh_root_crl_if_due(self, op)
            return info

    def crl(self, *, der: bool = True, republish_if_stale: bool = True) -> bytes:
        """The current CRL; re-published first if it is missing or stale."""
        self._require_ca()
        if republish_if_stale and self.crl_is_stale():
            self.publish_crl()
        return self.published_crl(der=der)
