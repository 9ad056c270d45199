"""Shared test helpers: CSRs of every shape the intake policy must judge, and
a runner for the real ``tui-ca`` command.

Keys are generated fresh (they never reach a snapshot). RSA keys of the same
size are cached per process, because generating 2048-bit and larger keys is
the slowest part of most tests and a test never depends on the key itself
being new — only on the CSR, which is built afresh each call.

    csr = make_csr("ec-p256", cn="phone-17", sans=["DNS:phone-17.example"])
    pem, der = csr_pem(csr), csr_der(csr)
    bad = corrupt_signature(der)
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tui_ca.engine import NameFields

# Names for CAs that tests create themselves. (Test modules import this rather
# than ``conftest``: with several conftest.py files that name is ambiguous.)
CA_NAMES = NameFields(
    country="GB", state="England", locality="London", organization="Example Networks",
    org_unit="PKI", common_name="Test Issuing CA", email="pki@example.net",
)  # fmt: skip

_CURVES = {
    "ec-p256": ec.SECP256R1,
    "ec-p384": ec.SECP384R1,
    "ec-p521": ec.SECP521R1,
    "ec-secp256k1": ec.SECP256K1,
    "ec-brainpoolP256r1": ec.BrainpoolP256R1,
}


@cache
def _cached_rsa(bits: int, slot: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_key(kind: str = "ec-p256", *, fresh: bool = False, slot: int = 0):
    """A private key: ``ec-p256|p384|p521|secp256k1|brainpoolP256r1``,
    ``rsa-BITS`` (cached per ``slot`` unless ``fresh``), ``dsa-2048``, ``ed25519``."""
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind]())
    if kind.startswith("rsa-"):
        bits = int(kind[4:])
        if fresh:
            return rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return _cached_rsa(bits, slot)
    if kind.startswith("dsa-"):
        return dsa.generate_private_key(key_size=int(kind[4:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


def _general_name(text: str) -> x509.GeneralName:
    kind, value = text.split(":", 1)
    if kind == "DNS":
        return x509.DNSName(value)
    if kind == "IP":
        return x509.IPAddress(ipaddress.ip_address(value))
    if kind == "email":
        return x509.RFC822Name(value)
    if kind == "URI":
        return x509.UniformResourceIdentifier(value)
    raise ValueError(f"unknown SAN kind {kind!r}")


def make_csr(
    key="ec-p256",
    *,
    cn: str | None = "client-1",
    sans: Iterable[str] = (),
    subject: x509.Name | None = None,
    extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
) -> x509.CertificateSigningRequest:
    """A signed CSR. ``key`` is a key object or a :func:`make_key` kind.

    ``cn=None`` and no ``sans`` gives a CSR naming no subject at all;
    ``extensions`` are (value, critical) pairs added as requested extensions.
    """
    if isinstance(key, str):
        key = make_key(key)
    if subject is None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    names = [_general_name(s) for s in sans]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    # Ed25519 signs without a separate hash; everything else with SHA-256.
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def ca_true_extension() -> tuple[x509.BasicConstraints, bool]:
    return x509.BasicConstraints(ca=True, path_length=None), True


def key_cert_sign_extension() -> tuple[x509.KeyUsage, bool]:
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    return usage, True


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def corrupt_signature(der: bytes) -> bytes:
    """The same CSR with the last byte of its signature flipped: still parses,
    no longer verifies. (The signature BIT STRING is the DER's last element.)"""
    return der[:-1] + bytes([der[-1] ^ 0x01])


def with_version(der: bytes, version: int) -> bytes:
    """The CSR with its version INTEGER (the first one in the DER) changed;
    only v1 (0) exists, so anything else must be refused as not a CSR."""
    at = der.index(b"\x02\x01\x00")
    return der[:at] + bytes([2, 1, version]) + der[at + 3 :]


def spki_sha256(csr: x509.CertificateSigningRequest) -> str:
    der = csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# --------------------------------------------------------------- the command

# The installed console script, as an admin runs it; the module form only
# when the script is not on PATH (same code, same entry point).
TUI_CA = [shutil.which("tui-ca")] if shutil.which("tui-ca") else [sys.executable, "-m", "tui_ca"]


def run_cli(home: Path, *args: str, input: bytes | None = None, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:  # fmt: skip
    """Run the real ``tui-ca`` in a child process (bytes in, bytes out)."""
    # TUI_CA_CHANGE_LOG passes: a test of the journal's mechanics sets it for its commands too (conftest.py).
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("SSH_", "TUI_CA_")) or k == "TUI_CA_CHANGE_LOG"}  # fmt: skip
    environment.update(env or {})
    result = subprocess.run(
        [*TUI_CA, "--home", str(home), *args],
        input=input, capture_output=True, env=environment, timeout=120, check=False,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"tui-ca {' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}")
    return result


def state_files(home: Path) -> list[Path]:
    """The files under a home that hold its state, sorted: not the lock file (created empty
    on the first transaction), not the refusal log nor the commit token its own transaction
    writes (a refused submission is recorded there on purpose: engine/refusals.py)."""
    skipped = {home / "db" / "refusals", home / "db" / "generation"}
    return [
        p
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name != ".lock" and p not in skipped and p.parent not in skipped
    ]


def _lay_change_log_over_shards(home: Path, files: dict[str, bytes]) -> None:
    """The TinyDB shards as the store reads them: each file with the change log's records laid over it.

    A commit appends to ``db/changes.log`` or rewrites the shards (a fold); both
    hold the same records, so a snapshot compares records, not where they wait.
    """
    from tui_ca.engine.store.change_log import LOG_NAME, ChangeLog

    raw_log = files.pop(f"db/{LOG_NAME}", None)
    if raw_log is None:
        return
    changes = ChangeLog(home / "db" / LOG_NAME, json.loads).current().changes
    for key, docs in changes.items():
        collection = key.split("/")[0]
        if collection == "refusals":
            continue
        name = f"db/{key}.json"
        try:
            table = dict(json.loads(files.get(name, b"{}")).get(collection, {}))
        except ValueError:
            continue  # a shard a test damaged: kept as its bytes
        for doc_id, doc in docs.items():
            if doc is None:
                table.pop(doc_id, None)
            else:
                table[doc_id] = doc
        files[name] = json.dumps({collection: table}, separators=(",", ":")).encode()
    for name in [n for n in files if n.startswith("db/") and n.endswith(".json") and n.count("/") == 2]:
        try:
            files[name] = json.dumps(json.loads(files[name]), sort_keys=True).encode()
        except ValueError:
            pass


def snapshot_home(home: Path) -> dict[str, bytes]:
    """Every file under a home with its bytes (the lock file excluded: it is
    created empty on the first transaction and carries no state), and the
    records of the home's memory store when the test runs on that backend.

    The refusal log is left out, with the commit token its own transaction
    writes: a refused submission is recorded there on purpose, after its own
    transaction stored nothing (engine/refusals.py; tests/engine/test_refusals.py
    reads it through ``CAReader.refusals``)."""
    from tui_ca.engine.store.memory import MemoryStore

    files = {str(p.relative_to(home)): p.read_bytes() for p in state_files(home)}
    _lay_change_log_over_shards(Path(home), files)
    memory = MemoryStore._homes.get(Path(home).absolute())
    if memory is not None:
        for name, table in memory._state.tables.items():
            if table and name != "refusals":
                files[f"memory:{name}"] = json.dumps(table, sort_keys=True, default=repr).encode()
    return files


def assert_refused(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    """A user error: exit ``code``, one line on stderr starting ``tui-ca: ``, no traceback."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err, err
    assert err.startswith("tui-ca: "), err
    assert err.endswith("\n") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def _unchecked_name(*pairs) -> x509.Name:
    """A name cryptography would refuse to build; its warning is the point, so silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return x509.Name([x509.NameAttribute(oid, value, _validate=False) for oid, value in pairs])


def refused_inputs() -> dict[str, tuple[bytes, int, str]]:
    """Every intake the policy (DESIGN §1) refuses: name -> (input bytes,
    CLI exit code, a fragment the one-line message must contain)."""
    good = csr_der(make_csr("ec-p256", cn="good"))
    return {
        "not-a-csr": (b"hello, I am not a CSR\n", 2, "not a certificate signing request"),
        "pem-garbage": (
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            2,
            "not a certificate signing request",
        ),
        "empty": (b"", 2, "empty"),
        "bad-signature": (corrupt_signature(good), 2, "signature does not verify"),
        "bad-version": (with_version(good, 5), 2, "not a certificate signing request"),
        "rsa-1024": (csr_pem(make_csr("rsa-1024", cn="small")), 1, "RSA key of 1024 bits"),
        "rsa-2047": (csr_pem(make_csr("rsa-2047", cn="small")), 1, "RSA key of 2047 bits"),
        "dsa": (csr_pem(make_csr("dsa-2048", cn="dsa")), 1, "DSA"),
        "secp256k1": (csr_pem(make_csr("ec-secp256k1", cn="k1")), 1, "secp256k1"),
        "brainpool": (csr_pem(make_csr("ec-brainpoolP256r1", cn="bp")), 1, "brainpoolP256r1"),
        "ed25519": (csr_pem(make_csr("ed25519", cn="ed")), 1, "Ed25519"),
        "no-cn-no-san": (csr_pem(make_csr("ec-p256", cn=None)), 1, "neither a common name"),
        "ca-true": (csr_pem(make_csr("ec-p256", cn="ca", extensions=[ca_true_extension()])), 1, "CA:TRUE"),
        "key-cert-sign": (
            csr_pem(make_csr("ec-p256", cn="kcs", extensions=[key_cert_sign_extension()])),
            1,
            "keyCertSign",
        ),
        # Names past X.520's upper bounds (cryptography only warns when told
        # not to validate; other tools make such CSRs freely).
        "cn-over-64": (
            csr_pem(make_csr(subject=_unchecked_name((NameOID.COMMON_NAME, "z" * 65)))),
            2,
            "1 to 64 are allowed",
        ),
        "country-not-2": (
            csr_pem(make_csr(subject=_unchecked_name((NameOID.COUNTRY_NAME, "GBR"), (NameOID.COMMON_NAME, "c")))),
            2,
            "two letters",
        ),
        # A valid CSR followed by padding: refused for size before parsing.
        "over-64KiB": (csr_pem(make_csr("ec-p256", cn="big")) + b"\n" * (64 * 1024), 2, "64 KiB"),
    }
