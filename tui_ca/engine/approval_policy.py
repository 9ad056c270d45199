"""K-of-N approval: how many distinct admins must approve a request.

Off by default (one approval issues). The policy is part of the CA's
configuration, signed with the issuing CA's key when it is set: an admin who
can edit the home's files but does not hold the key cannot lower the number
of approvals, because a policy whose signature does not verify stops every
approval (with a message saying so) instead of falling back to one.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tui_ca.engine.errors import InputError, RuleError

# More distinct approvers than this is a typo, not a control: no team that
# runs a CA like this has a dozen admins awake for one request.
MAX_APPROVALS = 9
MAX_RULES = 32
MAX_PATTERN_CHARS = 253


class PolicyTamperedError(RuleError):
    """The stored approval policy is not the one signed with the CA key."""


@dataclass(frozen=True)
class ApprovalRule:
    """Requests naming a matching identity need more approvals."""

    pattern: str
    """Shell-style pattern (``*.bank.example``) matched, case-insensitively, against
    the request's requester, CN and every SAN value."""
    approvals: int
    """Distinct approvals such a request needs."""

    def __post_init__(self) -> None:
        _check_count("a rule's approvals", self.approvals)
        _check_pattern(self.pattern)

    def matches(self, names: Iterable[str]) -> bool:
        """Whether any of ``names`` matches the pattern."""
        pattern = self.pattern.casefold()
        return any(fnmatch.fnmatchcase(name.casefold(), pattern) for name in names)


@dataclass(frozen=True)
class ApprovalPolicy:
    """How many distinct admins must approve before a certificate is issued."""

    approvals: int = 1
    """Approvals every request needs."""
    renewal_approvals: int | None = None
    """Approvals a renewal (re-enrollment) needs, when it differs."""
    rules: tuple[ApprovalRule, ...] = field(default_factory=tuple)
    """Patterns that raise the number for the requests they match."""

    def __post_init__(self) -> None:
        _check_count("--approvals", self.approvals)
        if self.renewal_approvals is not None:
            _check_count("--renewal-approvals", self.renewal_approvals)
        if len(self.rules) > MAX_RULES:
            raise InputError(f"at most {MAX_RULES} approval rules")

    @property
    def is_default(self) -> bool:
        """One approval for everything: the policy is off."""
        return self.approvals == 1 and self.renewal_approvals in (None, 1) and not self.rules

    def required_for(self, names: Iterable[str], *, renewal: bool) -> int:
        """Approvals a request naming ``names`` needs; the strictest applicable figure wins."""
        names = list(names)
        base = self.renewal_approvals if renewal and self.renewal_approvals is not None else self.approvals
        return max([base, *(rule.approvals for rule in self.rules if rule.matches(names))])

    def describe(self) -> str:
        """One line for ``policy show`` and the audit."""
        parts = [f"{self.approvals} approval{'s' if self.approvals != 1 else ''}"]
        if self.renewal_approvals is not None:
            parts.append(f"renewals {self.renewal_approvals}")
        parts.extend(f"{rule.pattern} needs {rule.approvals}" for rule in self.rules)
        return "; ".join(parts)

    def to_doc(self) -> dict[str, object]:
        """The configuration's form (plain JSON)."""
        return {
            "approvals": self.approvals,
            "renewal_approvals": self.renewal_approvals,
            "rules": [{"pattern": rule.pattern, "approvals": rule.approvals} for rule in self.rules],
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, object]) -> ApprovalPolicy:
        """Read the configuration's form back; a wrong shape is a refusal, not a default."""
        try:
            raw_rules: Any = doc.get("rules") or []
            rules = tuple(ApprovalRule(str(r["pattern"]), int(r["approvals"])) for r in raw_rules)
            renewal: Any = doc.get("renewal_approvals")
            approvals: Any = doc["approvals"]
            return cls(approvals=int(approvals), renewal_approvals=None if renewal is None else int(renewal),
                       rules=rules)  # fmt: skip
        except (KeyError, TypeError, ValueError, InputError):
            raise PolicyTamperedError("the stored approval policy is damaged; set it again with 'policy set'") from None


def parse_rule(text: str) -> ApprovalRule:
    """``PATTERN=N`` as typed after ``--rule``."""
    pattern, sep, count = text.rpartition("=")
    if not sep or not pattern:
        raise InputError(f"a rule is PATTERN=N (such as '*.bank.example=3'), not {text!r}")
    if not count.isascii() or not count.isdigit():
        raise InputError(f"the approvals in rule {text!r} must be a whole number")
    return ApprovalRule(pattern, int(count))


def _check_count(what: str, value: int) -> None:
    if not 1 <= value <= MAX_APPROVALS:
        raise InputError(f"{what} must be between 1 and {MAX_APPROVALS}, not {value}")


def _check_pattern(pattern: str) -> None:
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise InputError(f"a rule's pattern must be 1 to {MAX_PATTERN_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in pattern):
        raise InputError("a rule's pattern contains control characters")


def _canonical(doc: Mapping[str, object]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_policy(policy: ApprovalPolicy, key: object, roles: Mapping[str, str] | None = None) -> dict[str, object]:
    """The stored form: the policy (and the role groups) with a signature by the issuing CA key."""
    doc = {**policy.to_doc(), "roles": dict(roles or {})}
    payload = _canonical(doc)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise RuleError("the CA key cannot sign the approval policy")
    return {"policy": doc, "sig": base64.b64encode(signature).decode()}


def verified_policy(stored: Mapping[str, object] | None, public_key: object) -> ApprovalPolicy:
    """The stored policy if its signature verifies with ``public_key``; none stored: the default."""
    return verified_governance(stored, public_key)[0]


def verified_governance(stored: Mapping[str, object] | None,
                        public_key: object) -> tuple[ApprovalPolicy, Mapping[str, object]]:  # fmt: skip
    """The stored policy and role groups if their signature verifies; none stored: the defaults."""
    if stored is None:
        return ApprovalPolicy(), {}
    doc, sig = stored.get("policy"), stored.get("sig")
    if not isinstance(doc, Mapping) or not isinstance(sig, str):
        raise PolicyTamperedError("the stored approval policy is damaged; set it again with 'policy set'")
    try:
        signature = base64.b64decode(sig, validate=True)
        payload = _canonical(doc)
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise InvalidSignature
    except (InvalidSignature, ValueError):
        raise PolicyTamperedError(
            "the approval policy was changed without the CA key (its signature does not verify); "
            "no approvals count until an admin holding the key sets it again with 'policy set'"
        ) from None
    roles = doc.get("roles") or {}
    if not isinstance(roles, Mapping):
        raise PolicyTamperedError("the stored role groups are damaged; set them again with 'policy roles'")
    return ApprovalPolicy.from_doc(doc), roles


GOVERNANCE_CONFIG_KEY = "governance"
"""Where the signed policy and role groups live in the CA's configuration."""


def governance_in_force(config: Mapping[str, object],
                        issuing_public_key: Callable[[], object]) -> tuple[ApprovalPolicy, Mapping[str, object]]:  # fmt: skip
    """The verified policy and role-group document from a CA configuration.

    ``issuing_public_key`` is called only when a policy is stored: extracting
    the key costs a one-shot command milliseconds, and most CAs set none.
    """
    stored = config.get(GOVERNANCE_CONFIG_KEY)
    if stored is None:
        return verified_governance(None, None)
    return verified_governance(stored if isinstance(stored, Mapping) else {}, issuing_public_key())


def approvals_needed(policy: ApprovalPolicy, requester: str, common_name: str | None, sans: Iterable[str],
                     *, renewal: bool) -> int:  # fmt: skip
    """Approvals a request needs; SANs as stored (``DNS:name``), matched on the bare name."""
    names = [requester, *([common_name] if common_name else []), *(san.split(":", 1)[-1] for san in sans)]
    return policy.required_for(names, renewal=renewal)
