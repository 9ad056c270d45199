"""Hostile CSR intake, fuzzed with hypothesis through the engine and the CLI.

Inputs: garbage bytes, garbage in PEM armour, valid CSRs (PEM and DER) with
bit flips, truncations, insertions and corrupted DER length fields, huge and
deeply nested DER, and valid CSRs whose subject, SANs or requester name carry
odd Unicode (RTL overrides, zero-width, control characters, non-BMP, lone
surrogates where the encoding allows them).

Invariants:
* only ``CAError`` subclasses escape ``submit``;
* a refused input leaves every file of the home byte-identical;
* an accepted input is queued and reads back (by ID and by the CSR itself);
* ``tui-ca submit -`` never prints a traceback, exits 0, 1 or 2, and a
  refusal is one line on stderr.

Fast profile by default; ``TUI_CA_LONG=1`` runs over 10,000 engine cases.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hardening_support import LONG, cli, init_home
from helpers import snapshot_home
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui_ca.engine import CAError, RequestStatus
from tui_ca.engine.csr_policy import MAX_CSR_BYTES

ENGINE_EXAMPLES = 4000 if LONG else 60  # long: 4000 + 4000 + 2000 engine cases
CLI_EXAMPLES = 150 if LONG else 8
_SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": not LONG,  # CI runs the same cases every time; the long profile explores
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
}

_KEYS = [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
         rsa.generate_private_key(public_exponent=65537, key_size=2048)]  # fmt: skip


def _build(cn: str | None, sans: list[x509.GeneralName], key, org: str | None = None) -> bytes:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# Valid seeds the mutators start from: each key type, with and without SANs.
_SEEDS = [
    _build("seed-ec256", [], _KEYS[0]),
    _build("seed-ec384", [x509.DNSName("seed.example"), x509.RFC822Name("a@seed.example")], _KEYS[1]),
    _build(None, [x509.DNSName("only-san.example")], _KEYS[0]),
    _build("seed-rsa", [x509.UniformResourceIdentifier("https://seed.example/x")], _KEYS[2], org="Ørg \u202e"),
]


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE REQUEST-----\n" + body + b"-----END CERTIFICATE REQUEST-----\n"


def _headers(der: bytes) -> list[int]:
    """Offsets of every DER length octet reachable by walking constructed TLVs."""
    found: list[int] = []

    def walk(start: int, end: int, depth: int) -> None:
        offset = start
        while offset + 2 <= end and depth < 20:
            tag, first = der[offset], der[offset + 1]
            found.append(offset + 1)
            if first & 0x80:
                count = first & 0x7F
                length = int.from_bytes(der[offset + 2 : offset + 2 + count], "big")
                body = offset + 2 + count
            else:
                length, body = first, offset + 2
            if tag & 0x20:
                walk(body, min(body + length, end), depth + 1)
            offset = body + length

    walk(0, len(der), 0)
    return found


def _nested(depth: int) -> bytes:
    inner = b"\x05\x00"
    for _ in range(depth):
        length = len(inner)
        header = bytes([length]) if length < 0x80 else bytes([0x82, length >> 8, length & 0xFF]) \
            if length < 0x10000 else bytes([0x83, length >> 16, (length >> 8) & 0xFF, length & 0xFF])  # fmt: skip
        inner = b"\x30" + header + inner
    return inner


@st.composite
def mutated_csr(draw) -> bytes:
    der = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "length", "delete", "byte"]))
        if not der:
            break
        at = draw(st.integers(0, len(der) - 1))
        if kind == "flip":
            der[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            der[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del der[at:]
        elif kind == "delete":
            del der[at : at + draw(st.integers(1, 16))]
        elif kind == "insert":
            der[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:  # a DER length field: too long, too short, indefinite, absurdly large
            headers = _headers(bytes(der))
            where = draw(st.sampled_from(headers)) if headers else at
            der[where : where + 1] = draw(st.sampled_from(
                [bytes([draw(st.integers(0, 0x7F))]), b"\x80", b"\x84\xff\xff\xff\xff", b"\x81\x00", b"\x89" + b"\x01" * 9]
            ))  # fmt: skip
    return _pem(bytes(der)) if draw(st.booleans()) else bytes(der)


# Characters that make trouble on terminals and in logs.
_ODD = ["\u202e", "\u202d", "\u200b", "\u200d", "\ufeff", "\x1b[31m", "\x00", "\x07", "\r\n", "\t", "\u0000",
        "\U0001f600", "\u0301", "\ud800", "\udfff", "Ω", "ß", "İ", "ﬁ", "\u2028", "%s", "{0}", "[b]x[/b]"]  # fmt: skip
odd_text = st.lists(st.one_of(st.sampled_from(_ODD), st.text(min_size=1, max_size=4)), min_size=1, max_size=8).map(
    "".join
)


@st.composite
def unicode_csr(draw) -> bytes:
    """A valid, signed CSR whose names carry odd Unicode (skipped when not encodable)."""
    cn = draw(st.one_of(st.none(), odd_text.map(lambda t: t[:64])))
    san_text = draw(st.lists(odd_text.map(lambda t: t[:60]), max_size=2))
    try:
        # A hostile client is not bound by cryptography's A-label check, so the
        # SANs are made without it (private constructor; ValueError if it goes).
        sans = [(x509.DNSName if i % 2 == 0 else x509.RFC822Name)._init_without_validation(t)
                for i, t in enumerate(san_text)]  # fmt: skip
        der = _build(cn or None, sans, _KEYS[0], org=draw(st.one_of(st.none(), odd_text.map(lambda t: t[:64]))))
    except (ValueError, UnicodeError, AttributeError):
        # cryptography refuses to encode it (e.g. a lone surrogate, a non-ASCII
        # dNSName): no client can send that CSR, so there is nothing to test.
        der = b"\x30\x00"
    return _pem(der) if draw(st.booleans()) else der


garbage = st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=512).map(lambda b: _pem(b)),
    st.binary(max_size=256).map(
        lambda b: b"-----BEGIN CERTIFICATE REQUEST-----\n" + b + b"\n-----END NEW CERTIFICATE REQUEST-----"
    ),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"",
            b" \n\t",
            b"\x00" * 100,
            b"-----BEGIN",
            b"-----BEGIN CERTIFICATE REQUEST-----" * 50,
            _pem(b""),
            b"\x30\x80" * 1000,
            b"\x30\x84\xff\xff\xff\xff",
        ]
    ),
)
hostile = st.one_of(garbage, mutated_csr(), unicode_csr(), st.sampled_from(_SEEDS).map(_pem))
requester = st.one_of(st.none(), odd_text, st.text(max_size=200), st.just(" "), st.just("x" * 129))


def _snapshot(home: Path) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(snapshot_home(home).items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz") / "home"
    ca = init_home(home)
    ca.stats = {"accepted": 0, "refused": 0, "again": 0}  # type: ignore[attr-defined]
    yield ca
    print(f"\nengine intake fuzz: {ca.stats}")  # type: ignore[attr-defined]


def _submit_and_check(ca, data: bytes, name: str | None) -> None:
    before = _snapshot(ca.home)
    try:
        result = ca.submit(data, requester=name, source="fuzz")
    except CAError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        assert _snapshot(ca.home) == before, f"refused input changed the store: {exc}"
        ca.stats["refused"] += 1
        return
    # Anything else than CAError propagates and fails the test with the input.
    request = ca.request(result.request.id)
    assert request.status == RequestStatus.QUEUED
    assert request == result.request
    assert ca.find_by_csr(data).id == request.id
    if name is not None:
        assert request.requester == name.strip()
    ca.stats["accepted" if result.created else "again"] += 1
    if result.created:
        # Keep the next examples free to be accepted: close this request.
        ca.reject(request.id, "fuzz")


@settings(max_examples=ENGINE_EXAMPLES, **_SETTINGS)
@given(data=hostile, name=requester)
def test_engine_intake_survives_hostile_input(intake, data, name):
    _submit_and_check(intake, data, name)


@settings(max_examples=ENGINE_EXAMPLES, **_SETTINGS)
@given(data=mutated_csr())
def test_engine_intake_survives_mutated_csrs(intake, data):
    _submit_and_check(intake, data, None)


@settings(max_examples=max(ENGINE_EXAMPLES // 2, 30), **_SETTINGS)
@given(data=unicode_csr(), name=requester)
def test_engine_intake_survives_odd_unicode(intake, data, name):
    _submit_and_check(intake, data, name)


@pytest.mark.parametrize("data", [
    pytest.param(_nested(12000), id="nested-12000"),
    pytest.param(_nested(200), id="nested-200"),
    pytest.param(b"\x30\x80" * (MAX_CSR_BYTES // 2), id="indefinite-64k"),
    pytest.param(_SEEDS[0] + b"\x00" * (MAX_CSR_BYTES - len(_SEEDS[0])), id="padded-to-limit"),
    pytest.param(_pem(_SEEDS[0]) * (MAX_CSR_BYTES // len(_pem(_SEEDS[0]))), id="many-pem-blocks"),
    pytest.param(b"A" * (MAX_CSR_BYTES + 1), id="over-limit"),
    pytest.param(b"A" * (16 * 1024 * 1024), id="16-MiB"),
    # Found by the long profile: version 1 raised InvalidVersion (not a ValueError).
    pytest.param(_SEEDS[0].replace(b"\x02\x01\x00", b"\x02\x01\x01", 1), id="csr-version-1"),
    pytest.param(_pem(_SEEDS[1].replace(b"\x02\x01\x00", b"\x02\x01\x05", 1)), id="csr-version-5-pem"),
], )  # fmt: skip
def test_engine_intake_huge_and_nested(intake, data):
    _submit_and_check(intake, data, None)


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("fuzzcli") / "home"
    init_home(home)
    return home


@settings(max_examples=CLI_EXAMPLES, **_SETTINGS)
@given(data=hostile, name=st.one_of(st.none(), odd_text.filter(lambda t: "\x00" not in t and not t.startswith("-"))))
def test_cli_submit_never_tracebacks(cli_home, data, name):
    before = _snapshot(cli_home)
    # argv is bytes on POSIX: a lone surrogate arrives as invalid UTF-8.
    args = ["submit", "-"] + ([] if name is None else ["--requester", name.encode("utf-8", "surrogatepass")])
    result = cli(cli_home, *args, input=data)
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert result.returncode in (0, 1, 2), (result.returncode, err)
    if result.returncode == 0:
        request_id = int(result.stdout)
        shown = cli(cli_home, "show", str(request_id), "--json")
        assert shown.returncode == 0 and b'"queued"' in shown.stdout
        assert cli(cli_home, "reject", str(request_id), "--reason", "fuzz").returncode == 0
    else:
        assert err.startswith("tui-ca: ") and err.count("\n") == 1, err
        assert _snapshot(cli_home) == before
