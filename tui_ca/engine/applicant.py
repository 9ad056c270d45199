"""Who asks for a certificate, and which requester names that lets them take.

A requester name is an identity: the admin approves "phone-17", and whoever
holds phone-17's certificate is phone-17 from then on. So a network client
must not be able to borrow a name by writing it into a CSR's CN. The faces
only report who authenticated (a client certificate of this CA, an EST user
with the names an admin mapped to it, a one-time SCEP challenge minted for a
requester, or nobody); the rules of which name each may use live here and in
intake.py, where they are checked inside the submit's transaction:

* the admin (CLI, UI) submits for any name;
* a client certificate enrolls only as that certificate's requester;
* an EST user enrolls as itself, or as a name the admin mapped to it;
* an anonymous client may not take a name an EST user owns, nor one whose
  active certificate or queued request came from an authenticated channel.

Refusals to a client that does not own the name never carry another
requester's Certificate ID or serial: the engine's message (for the admin's
log) keeps them, and ``CAError.public`` is what the client is told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tui_ca.engine.channels import Channel, stored_channel
from tui_ca.engine.errors import InputError, RuleError
from tui_ca.engine.models import Certificate, CsrDetails, Request
from tui_ca.engine.names import check_requester, requester_from


class RequesterNotAllowed(RuleError):
    """The applicant asked for a requester name its credentials do not cover, or one another client owns."""


@dataclass(frozen=True)
class NamePatterns:
    """Requester names, each exact or with ``*`` standing for any run of characters; matched case-insensitively."""

    patterns: tuple[str, ...] = ()
    """As the admin wrote them (``lab-*``, ``printer-3``)."""
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(re.compile(".*".join(re.escape(part) for part in p.split("*")), re.IGNORECASE | re.DOTALL)
                         for p in self.patterns)  # fmt: skip
        object.__setattr__(self, "_compiled", compiled)

    def matches(self, name: str) -> bool:
        return any(p.fullmatch(name) for p in self._compiled)


def check_pattern(pattern: str) -> str:
    """A requester name or pattern an admin maps to an EST user; refused like a bad requester name."""
    pattern = check_requester(pattern, origin="the requester name pattern")
    if pattern.strip("*") == "":
        raise InputError("a pattern of only '*' would let the user take every requester name; list the names")
    return pattern


@dataclass(frozen=True)
class Applicant:
    """Who submits, as the face that authenticated it reports; build one with the class methods."""

    channel: Channel
    """How it authenticated."""
    name: str | None = None
    """The client certificate's requester, the EST user, or the requester a challenge was minted for."""
    may_request: NamePatterns = NamePatterns()
    """Further names the admin mapped to an EST user."""
    certificate_id: int | None = None
    """The client certificate's Certificate ID (what a re-enrollment may renew)."""
    subject: str | None = None
    """The client certificate's subject: a CSR with the same subject asks for its requester."""
    reserved: NamePatterns = NamePatterns()
    """For an anonymous client: names EST users own (their own and those mapped to them)."""

    @classmethod
    def admin(cls) -> Applicant:
        return cls(Channel.ADMIN)

    @classmethod
    def certificate(cls, cert: Certificate) -> Applicant:
        return cls(Channel.CERTIFICATE, cert.requester, certificate_id=cert.id, subject=cert.subject)

    @classmethod
    def user(cls, name: str, may_request: tuple[str, ...] = ()) -> Applicant:
        return cls(Channel.USER, name, NamePatterns(may_request))

    @classmethod
    def challenge(cls, requester: str) -> Applicant:
        return cls(Channel.CHALLENGE, requester)

    @classmethod
    def anonymous(cls, reserved: NamePatterns | None = None) -> Applicant:
        return cls(Channel.ANONYMOUS, reserved=reserved or NamePatterns())

    @property
    def authenticated(self) -> bool:
        return self.channel is not Channel.ANONYMOUS

    def owns(self, requester: str) -> bool:
        """Whether this applicant speaks for ``requester`` (and so may be told its IDs and serials)."""
        if self.channel is Channel.ADMIN:
            return True
        if self.channel is Channel.ANONYMOUS or self.name is None:
            return False
        return requester.casefold() == self.name.casefold() or (
            self.channel is Channel.USER and self.may_request.matches(requester)
        )

    def choose(self, asked: str | None, details: CsrDetails) -> str:
        """The requester name of a CSR from this applicant: ``asked`` (the admin's), else the CSR's, as allowed."""
        if self.channel is Channel.ADMIN or self.channel is Channel.ANONYMOUS:
            return requester_from(asked, details.common_name, details.sans)
        assert self.name is not None
        wanted = requester_from(asked, details.common_name, details.sans) if asked is not None else None
        if self.channel is Channel.USER:
            # Devices name themselves in their CN; only a name the admin mapped to the user changes the requester.
            if asked is None and (details.common_name or details.sans):
                candidate = requester_from(None, details.common_name, details.sans)
                if self.may_request.matches(candidate):
                    return candidate
            if wanted is not None and not self.owns(wanted):
                raise self._not_allowed(wanted)
            return wanted or self.name
        csr_name = requester_from(None, details.common_name, details.sans)
        same_subject = self.subject is not None and details.subject == self.subject
        if (wanted is not None and not self.owns(wanted)) or not (self.owns(csr_name) or same_subject):
            raise self._not_allowed(wanted or csr_name)
        # A challenge names whom the admin expects (any case); a certificate keeps its requester's spelling.
        return csr_name if self.channel is Channel.CHALLENGE else self.name

    def _not_allowed(self, wanted: str) -> RequesterNotAllowed:
        what = {Channel.CERTIFICATE: "this client certificate", Channel.USER: f"EST user {self.name!r}",
                Channel.CHALLENGE: "this challenge password"}[self.channel]  # fmt: skip
        return RequesterNotAllowed(f"{what} may enroll only as requester {self.name!r}, not {wanted!r}")

    def check_renewal(self, renewal_of: int | None) -> None:
        """A re-enrollment renews the client certificate it authenticated with, nothing else (the admin: any)."""
        if renewal_of is None or self.channel is Channel.ADMIN:
            return
        if self.channel is not Channel.CERTIFICATE or self.certificate_id != renewal_of:
            raise RequesterNotAllowed(f"a re-enrollment of certificate {renewal_of} must authenticate with that "
                                      "certificate", public="a re-enrollment must authenticate with the certificate "
                                      "it renews")  # fmt: skip


ADMIN = Applicant.admin()


def may_follow(applicant: Applicant, doc: dict) -> bool:
    """Whether ``applicant`` may be answered about this stored request (poll it, collect its certificate)."""
    return _may_follow(applicant, doc["requester"], stored_channel(doc))


def may_follow_request(applicant: Applicant, request: Request) -> bool:
    """:func:`may_follow` for a request model (what the readers return)."""
    return _may_follow(applicant, request.requester, Channel(request.via))


def _may_follow(applicant: Applicant, requester: str, via: Channel) -> bool:
    if applicant.owns(requester):
        return True
    # Anonymous clients are told only of what was sent anonymously, under a name no EST user owns.
    return (
        via is Channel.ANONYMOUS
        and applicant.channel is Channel.ANONYMOUS
        and not applicant.reserved.matches(requester)
    )
