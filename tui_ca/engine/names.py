"""Names a certificate binds: DNS names, IP and e-mail addresses, requester names.

Relying parties match hostnames against the SAN only (RFC 6125 §6.4.4; Go,
Python, Java and browsers ignore the CN), so a CN that is a hostname or an IP
address must also be in the SAN, and anything in the SAN must be a name a
resolver could ask for. Everything here is pure: no store, no keys.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import TYPE_CHECKING

from tui_ca.engine.errors import InputError, RuleError

if TYPE_CHECKING:
    # x509 is imported by the functions that take its objects: show and list
    # use name_warning and is_decimal_id, and must not load it (bench/cli_startup.py).
    from cryptography import x509

    from tui_ca.engine.models import NameFields

MAX_REQUESTER_CHARS = 128
# RFC 1035 §2.3.4: 63 octets a label, 253 for the name in text form.
MAX_DNS_CHARS = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# RFC 5321 §4.5.3.1.1: 64 octets for the local part; atext and dots only
# (quoted local parts are legal but no mail client of a device writes them).
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
NAME_WARNING = (
    "the certificate names no DNS name or IP address (its CN is not one): TLS stacks will not accept it by name"
)


def _has_controls(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def dns_name_problem(name: str, *, allow_wildcard: bool = False) -> str | None:
    """Why ``name`` is not a usable DNS SAN (None when it is): LDH labels, lengths, wildcards."""
    if not name:
        return "is empty"
    if not name.isascii() or _has_controls(name) or any(ch.isspace() for ch in name):
        return "contains spaces, control or non-ASCII characters (IDNs go in as xn-- A-labels)"
    if len(name) > MAX_DNS_CHARS:
        return f"is {len(name)} characters long; at most {MAX_DNS_CHARS} are allowed"
    labels = name.lower().split(".")
    if labels[0] == "*":
        if not allow_wildcard:
            return "is a wildcard, which this CA's policy does not allow"
        if len(labels) < 3:
            # *.com or a bare * would match a whole top-level domain.
            return "is a wildcard directly under a top-level domain"
        labels = labels[1:]
    elif "*" in name:
        return "has a wildcard that is not the whole leftmost label"
    for label in labels:
        if not _LABEL.fullmatch(label):
            return "is not made of letters, digits and inner hyphens (1-63 per label)"
    if labels[-1].isdigit():
        # 10.0.0.300 or 1.2.3 would otherwise pass as a hostname.
        return "ends in a numeric label; an IP address belongs in an IP SAN"
    return None


def email_problem(address: str) -> str | None:
    """Why ``address`` is not a usable rfc822Name (None when it is)."""
    if not address.isascii() or _has_controls(address) or any(ch.isspace() for ch in address):
        return "contains spaces, control or non-ASCII characters"
    local, at, domain = address.rpartition("@")
    if not at:
        if dns_name_problem(address) is None:
            return None  # RFC 5280 §4.2.1.6: a bare host means every mailbox on it
        return "is not an e-mail address (local@domain)"
    if not local or len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return "has an unusable local part (before the @)"
    if dns_name_problem(domain) is not None:
        return "has an unusable domain (after the @)"
    return None


def uri_problem(uri: str) -> str | None:
    if not uri or not uri.isascii() or _has_controls(uri) or any(ch.isspace() for ch in uri):
        return "contains spaces, control or non-ASCII characters"
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", uri):
        return "has no scheme"
    return None


def check_general_names(names: x509.SubjectAlternativeName, *, allow_wildcard: bool = False) -> None:
    """Refuse (InputError/RuleError, one line) any SAN a relying party could not use."""
    from cryptography import x509

    if len(names) == 0:
        raise InputError("the CSR's subject alternative name extension is empty")
    for general_name in names:
        if isinstance(general_name, x509.DNSName):
            if general_name.value.startswith("*.") and not allow_wildcard:
                raise RuleError(
                    f"the CSR's DNS name {general_name.value!r} is a wildcard, which this CA does not allow"
                )
            problem = dns_name_problem(general_name.value, allow_wildcard=True)
            if problem is not None:
                raise InputError(f"the CSR's DNS name {general_name.value!r} {problem}")
        elif isinstance(general_name, x509.IPAddress):
            if not isinstance(general_name.value, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise InputError(f"the CSR's IP SAN {general_name.value} is a network, not one address")
        elif isinstance(general_name, x509.RFC822Name):
            problem = email_problem(general_name.value)
            if problem is not None:
                raise InputError(f"the CSR's e-mail SAN {general_name.value!r} {problem}")
        elif isinstance(general_name, x509.UniformResourceIdentifier):
            problem = uri_problem(general_name.value)
            if problem is not None:
                raise InputError(f"the CSR's URI SAN {general_name.value!r} {problem}")


def cn_as_general_name(common_name: str | None) -> x509.GeneralName | None:
    """The SAN a CN stands for: an IP address, or a hostname with at least one dot.

    Single labels ("alice", "phone-17") are far more often user or device names
    than hostnames, so they are not turned into DNS SANs.
    """
    from cryptography import x509

    if not common_name:
        return None
    try:
        return x509.IPAddress(ipaddress.ip_address(common_name))
    except ValueError:
        pass
    text = common_name.rstrip(".")
    if "." in text and dns_name_problem(text) is None:
        return x509.DNSName(text.lower())
    return None


def _same(a: x509.GeneralName, b: x509.GeneralName) -> bool:
    from cryptography import x509

    if isinstance(a, x509.DNSName) and isinstance(b, x509.DNSName):
        return a.value.lower() == b.value.lower()
    return a == b


def effective_sans(common_name: str | None, names: list[x509.GeneralName]) -> list[x509.GeneralName]:
    """The SANs an issued certificate carries: the CSR's, plus the CN when it is a name and missing."""
    from_cn = cn_as_general_name(common_name)
    if from_cn is None or any(_same(from_cn, n) for n in names):
        return list(names)
    return [*names, from_cn]


def group_fingerprint(hex_digest: str, size: int = 4) -> str:
    """``ab12cd34…`` → ``AB12 CD34 …``, for reading a fingerprint aloud."""
    upper = hex_digest.upper()
    return " ".join(upper[i : i + size] for i in range(0, len(upper), size))


def name_warning(sans: tuple[str, ...]) -> str | None:
    """The warning show and the confirm screen give when no TLS stack can match the certificate by name."""
    if any(s.startswith(("DNS:", "IP:")) for s in sans):
        return None
    return NAME_WARNING


def check_requester(name: str, *, origin: str = "the requester name") -> str:
    """A requester name, stripped; refused when empty, too long or holding control characters."""
    name = name.strip()
    if not name:
        raise InputError(f"{origin} is empty")
    if len(name) > MAX_REQUESTER_CHARS:
        raise InputError(f"{origin} is longer than {MAX_REQUESTER_CHARS} characters")
    if _has_controls(name):
        raise InputError(f"{origin} contains control characters")
    return name


def requester_from(requester: str | None, common_name: str | None, sans: tuple[str, ...]) -> str:
    """The requester: as given, else the CSR's CN, else its first SAN; checked the same way."""
    if requester is not None:
        return check_requester(requester)
    if common_name:
        return check_requester(common_name, origin="the CSR's common name (used as the requester name)")
    return check_requester(sans[0].split(":", 1)[1], origin="the CSR's first SAN (used as the requester name)")


def is_decimal_id(text: str) -> bool:
    """ASCII digits only: str.isdigit() accepts '²' and '⑦' (int() then fails) and int() reads '٣' as 3."""
    return text.isascii() and text.isdigit()


# X.520 upper bounds (RFC 5280 Appendix A) for the fields init takes, with the flag that sets each.
_CA_FIELD_BOUNDS = (("common_name", "--cn", 64), ("organization", "--org", 64), ("org_unit", "--ou", 64),
                    ("locality", "--locality", 128), ("state", "--state", 128), ("email", "--email", 255))  # fmt: skip
ROOT_SUFFIX = " Root CA"


def check_ca_fields(names: NameFields) -> None:
    """Refuse CA name fields outside X.520's bounds (cryptography would raise deep inside init)."""
    for attribute, flag, bound in _CA_FIELD_BOUNDS:
        value = getattr(names, attribute)
        if value is None:
            continue
        if not 1 <= len(value) <= bound:
            raise InputError(f"{flag} is {len(value)} characters long; 1 to {bound} are allowed")
        if _has_controls(value):
            raise InputError(f"{flag} contains control characters")
    if names.email is not None and email_problem(names.email) is not None:
        raise InputError(f"--email {names.email!r} {email_problem(names.email)}")


def root_common_name(names: NameFields) -> str:
    """The root's CN, named after the organisation (else the CN), cut so that it fits in 64 characters.

    Any legal O (up to 64 characters) must give a legal CN; the root's O keeps the full name.
    """
    base = names.organization or names.common_name or "tui-ca"
    room = 64 - len(ROOT_SUFFIX)
    if len(base) > room:
        base = base[:room].rstrip()
    return f"{base}{ROOT_SUFFIX}"


def check_renewal(csr: x509.CertificateSigningRequest, subject: str, sans: tuple[str, ...]) -> None:
    """RFC 7030 §4.2.2: a re-enrollment keeps the subject AND the SANs of the certificate it renews."""
    from cryptography import x509

    from tui_ca.engine.csr_policy import format_general_name

    if csr.subject.rfc4514_string() != subject:
        raise InputError(
            f"a re-enrollment must keep the subject of the certificate being renewed ({_printable(subject)})"
        )
    try:
        asked = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        asked = []
    common_names = csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    cn = common_names[0].value if common_names and isinstance(common_names[0].value, str) else None
    kept = set(sans)
    # Either as the CSR says or as the certificate will carry them (a certificate
    # issued before the CN went into the SAN lists the CSR's alone).
    if {format_general_name(n) for n in asked} != kept and {
        format_general_name(n) for n in effective_sans(cn, asked)
    } != kept:
        shown = _printable(", ".join(sans)) or "none"
        raise InputError(f"a re-enrollment must keep the SANs of the certificate being renewed ({shown})")


def _printable(text: str, limit: int = 200) -> str:
    """Requester text inside a one-line message: control characters made visible, cut to ``limit``."""
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text[:limit])
