"""A throwaway CA home with plausible data, for ``tui-ca demo`` and screenshots.

The story spans a year: the CA was set up 400 days ago; certificates were
issued along the way (one of them ends within 30 days), one was revoked after
its key leaked, a stranger's request was rejected, and three requests wait in
the queue from different requesters and channels. Times come from a clock that
is stepped back and forth while building, so ages and expiry look real.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tui_ca.engine import Actor, CertificateAuthority, NameFields, RevocationReason
from tui_ca.engine.reader import utc_now

DEMO_CA = NameFields(
    country="GB", state="England", locality="London", organization="Example Networks",
    org_unit="Voice PKI", common_name="Example Issuing CA", email="pki@example.net",
)  # fmt: skip
ALICE = Actor("alice", "192.0.2.10")
BOB = Actor("bob", "198.51.100.7")
PHONE_NET = Actor("est", "203.0.113.41")

# (requester, CN, SANs, submitted days ago, who sent it, channel)
_ISSUED = [
    ("reception-desk", "reception.example.net", ["reception.example.net"], 340, PHONE_NET, "est"),
    ("voicemail", "vm.example.net", ["vm.example.net", "voicemail.example.net"], 90, ALICE, "cli"),
    ("phone-2002", "SEP-2002.example.net", [], 60, PHONE_NET, "est"),
    ("phone-2001", "SEP-2001.example.net", [], 30, PHONE_NET, "est"),
]
_REJECTED: tuple[str, str, list[str], int, Actor, str]
_REJECTED = ("unknown-laptop", "laptop-7f3a.local", [], 5, Actor("est", "203.0.113.200"), "est")
_QUEUED = [
    ("mbg-proxy", "mbg.example.net", ["mbg.example.net"], timedelta(days=3), BOB, "cli"),
    ("micontact-center", "mcc.example.net", ["mcc.example.net", "10.20.0.15"], timedelta(days=1), ALICE, "cli"),
    ("phone-1017", "SEP-1017.example.net", [], timedelta(hours=2), PHONE_NET, "est"),
]
KEYS_NEEDED = len(_ISSUED) + 1 + len(_QUEUED)


class _SteppedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str, sans: list[str]) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Networks"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ]))  # fmt: skip
    if sans:
        import ipaddress

        names: list[x509.GeneralName] = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _fresh_keys() -> list[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    keys: list[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(KEYS_NEEDED - 1)]
    # One RSA requester, as older phones still send.
    keys.insert(4, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return keys


def create_demo_home(
    home: Path | None,
    *,
    clock: Callable[[], datetime] | None = None,
    serials: Callable[[], int] | None = None,
    keys: Sequence | None = None,
) -> Path:
    """Build the demo home (``None``: a fresh temporary directory) and return it."""
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="tui-ca-demo-")) / "home"
    now = (clock or utc_now)()
    keys = list(keys) if keys is not None else _fresh_keys()
    if len(keys) < KEYS_NEEDED:
        raise ValueError(f"the demo needs {KEYS_NEEDED} requester keys")
    stepped = _SteppedClock(now - timedelta(days=400))
    ca = CertificateAuthority(home, clock=stepped, actor=ALICE, serials=serials)
    ca.init(DEMO_CA, base_url="http://ca.example.net:8080")
    key_iter = iter(keys)
    issued: dict[str, int] = {}
    for requester, cn, sans, ago, sender, source in _ISSUED:
        stepped.now = now - timedelta(days=ago)
        request = ca.submit(_csr(next(key_iter), cn, sans), requester=requester, source=source, actor=sender).request
        stepped.now += timedelta(hours=3)
        certificate = ca.approve([request.id], actor=ALICE if ago % 2 else BOB)[0].certificate
        assert certificate is not None, f"the demo's {requester} was refused"
        issued[requester] = certificate.id
    stepped.now = now - timedelta(days=12)
    ca.revoke(issued["phone-2002"], RevocationReason.KEY_COMPROMISE, actor=BOB)
    requester, cn, sans, days_ago, sender, source = _REJECTED
    stepped.now = now - timedelta(days=days_ago)
    request = ca.submit(_csr(next(key_iter), cn, sans), requester=requester, source=source, actor=sender).request
    stepped.now += timedelta(hours=20)
    ca.reject(request.id, "not one of our devices; nobody asked for it", actor=ALICE)
    for requester, cn, sans, waited, sender, source in _QUEUED:
        stepped.now = now - waited
        ca.submit(_csr(next(key_iter), cn, sans), requester=requester, source=source, actor=sender)
    stepped.now = now
    ca.publish_crl(actor=ALICE)
    return home
