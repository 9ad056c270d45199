"""How a request's applicant proved who it is, as stored on the request (``via``).

Apart from applicant.py so that reading stored records (``show``, ``list``)
needs neither the applicant models nor dataclasses.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Channel", "stored_channel"]


class Channel(StrEnum):
    """How the applicant proved who it is; stored on each request as ``via``."""

    ADMIN = "admin"
    CERTIFICATE = "certificate"
    USER = "user"
    CHALLENGE = "challenge"
    ANONYMOUS = "anonymous"


def stored_channel(doc: dict) -> Channel:
    """How a stored request arrived: its ``via``, else read from what older records kept (source, sender)."""
    via = doc.get("via")
    if via:
        try:
            return Channel(via)
        except ValueError:
            return Channel.ADMIN
    source, sender = doc.get("source"), (doc.get("by") or {}).get("u", "")
    if source == "est":
        if sender == "anonymous":
            return Channel.ANONYMOUS
        return Channel.CERTIFICATE if sender.startswith("cert:") else Channel.USER
    if source == "scep":
        if doc.get("renewal_of") is not None:
            return Channel.CERTIFICATE
        return Channel.CHALLENGE if (doc.get("note") or {}).get("challenge") == "matched" else Channel.ANONYMOUS
    return Channel.ADMIN
