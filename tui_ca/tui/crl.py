"""When the CRL needs attention: re-publish at half its life, warn in its last day.

Relying parties refuse every certificate once the CRL they hold is past its
next update. Re-publishing when half its life has passed leaves the other
half to notice a failure (a locked key, a full disk); the last day is when a
failure has to be shouted about. Pure functions of the CA's info and a time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tui_ca.engine import CAInfo

# Less than this before the next update, the header turns to a warning.
WARN_BEFORE = timedelta(days=1)


def half_life(info: CAInfo) -> datetime | None:
    """The moment the current CRL has lived half its life (``None``: no CRL yet)."""
    if info.crl_this_update is None or info.crl_next_update is None:
        return None
    return info.crl_this_update + (info.crl_next_update - info.crl_this_update) / 2


def republish_due(info: CAInfo, now: datetime) -> bool:
    """Whether the current CRL has passed half its life (a stale one too)."""
    middle = half_life(info)
    return middle is not None and now >= middle


def needs_warning(info: CAInfo, now: datetime) -> bool:
    """Missing, stale, or less than a day before its next update."""
    return info.crl_next_update is None or info.crl_next_update - now < WARN_BEFORE
