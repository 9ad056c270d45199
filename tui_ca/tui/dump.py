"""A certificate or CSR as text, in the shape of ``openssl x509 -text`` / ``openssl req -text``.

Built with ``cryptography`` alone (no openssl process). Every line passes
through the sanitiser, because a CSR's subject and SANs are the requester's
text. Nothing here touches Textual.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from tui_ca.tui.text import visible

_INDENT = "    "


def _hex(data: bytes, per_line: int = 18, indent: int = 3) -> list[str]:
    pairs = [f"{b:02x}" for b in data]
    return [_INDENT * indent + ":".join(pairs[i : i + per_line]) + (":" if i + per_line < len(pairs) else "")
            for i in range(0, len(pairs), per_line)]  # fmt: skip


def _name(name: x509.Name) -> str:
    return name.rfc4514_string() or "(empty)"


def _general_name(general: x509.GeneralName) -> str:
    if isinstance(general, x509.DNSName):
        return f"DNS:{general.value}"
    if isinstance(general, x509.IPAddress):
        return f"IP Address:{general.value}"
    if isinstance(general, x509.RFC822Name):
        return f"email:{general.value}"
    if isinstance(general, x509.UniformResourceIdentifier):
        return f"URI:{general.value}"
    if isinstance(general, x509.DirectoryName):
        return f"DirName:{_name(general.value)}"
    return f"{type(general).__name__}:{general.value!r}"


def _key_lines(key) -> list[str]:
    lines = [f"{_INDENT * 2}Subject Public Key Info:"]
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        lines += [f"{_INDENT * 3}Public Key Algorithm: rsaEncryption", f"{_INDENT * 4}Public-Key: ({key.key_size} bit)",
                  f"{_INDENT * 4}Exponent: {numbers.e} ({numbers.e:#x})"]  # fmt: skip
    elif isinstance(key, ec.EllipticCurvePublicKey):
        lines += [f"{_INDENT * 3}Public Key Algorithm: id-ecPublicKey",
                  f"{_INDENT * 4}Public-Key: ({key.curve.key_size} bit)", f"{_INDENT * 4}Curve: {key.curve.name}"]  # fmt: skip
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        lines.append(
            f"{_INDENT * 3}Public Key Algorithm: {'ED25519' if isinstance(key, ed25519.Ed25519PublicKey) else 'ED448'}"
        )
    elif isinstance(key, dsa.DSAPublicKey):
        lines += [f"{_INDENT * 3}Public Key Algorithm: dsaEncryption", f"{_INDENT * 4}Public-Key: ({key.key_size} bit)"]
    else:
        lines.append(f"{_INDENT * 3}Public Key Algorithm: {type(key).__name__}")
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    lines.append(f"{_INDENT * 3}SPKI SHA-256:")
    lines += _hex(hashlib.sha256(spki).digest(), indent=4)
    return lines


def _extension_value(ext: x509.Extension) -> list[str]:
    value = ext.value
    if isinstance(value, x509.BasicConstraints):
        return [
            f"CA:{str(value.ca).upper()}" + (f", pathlen:{value.path_length}" if value.path_length is not None else "")
        ]
    if isinstance(value, x509.KeyUsage):
        names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                 "key_cert_sign", "crl_sign"]  # fmt: skip
        shown = [n.replace("_", " ").title() for n in names if getattr(value, n)]
        if value.key_agreement:
            shown += [
                n for n, on in (("Encipher Only", value.encipher_only), ("Decipher Only", value.decipher_only)) if on
            ]
        return [", ".join(shown)]
    if isinstance(value, x509.ExtendedKeyUsage):
        return [", ".join(oid._name for oid in value)]
    if isinstance(value, x509.SubjectAlternativeName):
        return [", ".join(_general_name(g) for g in value)]
    if isinstance(value, x509.SubjectKeyIdentifier):
        return [":".join(f"{b:02X}" for b in value.digest)]
    if isinstance(value, x509.AuthorityKeyIdentifier) and value.key_identifier is not None:
        return [":".join(f"{b:02X}" for b in value.key_identifier)]
    if isinstance(value, x509.CRLDistributionPoints):
        return [f"Full Name: {_general_name(g)}" for point in value for g in (point.full_name or [])]
    if isinstance(value, x509.AuthorityInformationAccess):
        return [f"{d.access_method._name} - {_general_name(d.access_location)}" for d in value]
    return [repr(value)]


def _extensions(extensions: x509.Extensions) -> list[str]:
    if not len(extensions):
        return []
    lines = [f"{_INDENT * 2}X509v3 extensions:"]
    for ext in extensions:
        name = ext.oid._name if ext.oid._name != "Unknown OID" else ext.oid.dotted_string
        lines.append(f"{_INDENT * 3}{name}:" + (" critical" if ext.critical else ""))
        lines += [f"{_INDENT * 4}{line}" for line in _extension_value(ext)]
    return lines


def _signature(algorithm: str, signature: bytes) -> list[str]:
    return [f"{_INDENT}Signature Algorithm: {algorithm}", f"{_INDENT}Signature Value:", *_hex(signature, indent=2)]


def _algorithm(obj) -> str:
    return obj.signature_algorithm_oid._name


def _pem_lines(pem: bytes, label: str) -> list[str]:
    """The first PEM block of that label, line by line."""
    text = pem.decode("ascii", "replace")
    end = f"-----END {label}-----"
    return (text.split(end)[0] + end).strip().splitlines()


def _safe(lines: Iterable[str]) -> str:
    return "\n".join(visible(line, 400) for line in lines)


def certificate_text(pem: bytes) -> str:
    """``openssl x509 -text`` in spirit, then the SHA-256 fingerprint and the PEM (first certificate only)."""
    cert = x509.load_pem_x509_certificate(pem)
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, "big")
    lines = [
        "Certificate:", f"{_INDENT}Data:", f"{_INDENT * 2}Version: {cert.version.value + 1} ({cert.version.value:#x})",
        f"{_INDENT * 2}Serial Number:", *_hex(serial), f"{_INDENT * 2}Signature Algorithm: {_algorithm(cert)}",
        f"{_INDENT * 2}Issuer: {_name(cert.issuer)}", f"{_INDENT * 2}Validity",
        f"{_INDENT * 3}Not Before: {cert.not_valid_before_utc:%b %d %H:%M:%S %Y} GMT",
        f"{_INDENT * 3}Not After : {cert.not_valid_after_utc:%b %d %H:%M:%S %Y} GMT",
        f"{_INDENT * 2}Subject: {_name(cert.subject)}", *_key_lines(cert.public_key()), *_extensions(cert.extensions),
        *_signature(_algorithm(cert), cert.signature), "",
        f"SHA-256 Fingerprint={cert.fingerprint(hashes.SHA256()).hex(':').upper()}",
        "", *_pem_lines(pem, "CERTIFICATE"),
    ]  # fmt: skip
    return _safe(lines)


def csr_text(pem: bytes) -> str:
    """``openssl req -text`` in spirit, whether the signature verifies, then the PEM."""
    csr = x509.load_pem_x509_csr(pem)
    try:
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        extensions_lines = [f"{_INDENT * 2}Requested Extensions: unreadable ({exc})"]
    else:
        extensions_lines = [
            line.replace("X509v3 extensions:", "Requested Extensions:") for line in _extensions(extensions)
        ]
    lines = [
        "Certificate Request:", f"{_INDENT}Data:", f"{_INDENT * 2}Version: 1 (0x0)",
        f"{_INDENT * 2}Subject: {_name(csr.subject)}", *_key_lines(csr.public_key()), *extensions_lines,
        *_signature(_algorithm(csr), csr.signature),
        f"{_INDENT}Signature verifies: {'yes' if csr.is_signature_valid else 'NO'}", "", *_pem_lines(pem, "CERTIFICATE REQUEST"),
    ]  # fmt: skip
    return _safe(lines)
