"""The clock is checked, not trusted: nothing is signed at a time the CA's own records contradict.

A host whose clock jumped back (a dead RTC battery, a bad NTP source) would
otherwise issue certificates and CRLs dated before those already published;
one whose clock runs past the issuing CA's end would sign with an expired CA.
Every signing path calls :func:`check_signing_time` on the state it read in
its transaction, so the refusal is one line and nothing is stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tui_ca.engine import records
from tui_ca.engine.errors import RuleError

# A CRL dated this little in the future is clock skew between hosts (the same
# allowance certificates get by backdating); it is re-published, not refused.
SKEW = timedelta(minutes=5)
MAX_CRL_DAYS = 366


class ClockError(RuleError):
    """The clock contradicts the CA's records (before its CRL or its certificate, after its end)."""


def _fmt(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def check_signing_time(now: datetime, issuing_not_before: datetime, issuing_not_after: datetime,
                       meta: dict[str, Any]) -> None:  # fmt: skip
    """Refuse (ClockError) when ``now`` lies outside the issuing CA's validity or before the last CRL."""
    if now < issuing_not_before:
        raise ClockError(f"the clock says {_fmt(now)}, before the issuing CA's start ({_fmt(issuing_not_before)}): "
                         "check the system clock; nothing was signed")  # fmt: skip
    if now >= issuing_not_after:
        raise ClockError(f"the issuing CA ended on {_fmt(issuing_not_after)} (the clock says {_fmt(now)}): "
                         "nothing more can be signed with it")  # fmt: skip
    last = records.time_model(meta.get("crl_this_update"))
    if last is not None and now < last - SKEW:
        raise ClockError(f"the clock says {_fmt(now)}, before the last CRL's thisUpdate ({_fmt(last)}): "
                         "check the system clock; nothing was signed")  # fmt: skip


def crl_from_the_future(now: datetime, this_update: datetime | None) -> bool:
    """A published CRL dated after ``now``: relying parties reject it as not yet valid, so it is re-published."""
    return this_update is not None and this_update > now


def check_crl_days(days: int) -> None:
    from tui_ca.engine.errors import InputError

    if not 1 <= days <= MAX_CRL_DAYS:
        raise InputError(f"--crl-days must be between 1 and {MAX_CRL_DAYS}, not {days}")


def cut_short_warning(not_after: datetime, wanted_end: datetime, issuing_not_after: datetime) -> str | None:
    """The note an approval carries when the issuing CA's end shortened the certificate."""
    if not_after >= wanted_end or not_after < issuing_not_after - timedelta(seconds=1):
        return None
    return (f"cut short: it ends on {not_after:%Y-%m-%d} with the issuing CA, "
            f"not on {wanted_end:%Y-%m-%d} as asked")  # fmt: skip


def check_can_sign_crl(now: datetime, issuing: Any, meta: dict[str, Any]) -> None:
    """Called by every CRL signing path with the issuing certificate and the meta it read in its transaction."""
    check_signing_time(now, issuing.not_valid_before_utc, issuing.not_valid_after_utc, meta)


def check_can_issue(ca: Any, meta: dict[str, Any]) -> None:
    """Called by every certificate signing path: the clock, and an issuing CA the root has not revoked."""
    from tui_ca.engine.chain import check_issuing_not_revoked

    check_can_sign_crl(ca.now(), ca.issuing_cert(), meta)
    check_issuing_not_revoked(meta)
