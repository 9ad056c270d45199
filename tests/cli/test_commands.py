"""What the ``tui-ca`` commands print when they succeed, run as a real process.

One story per test: an admin (over SSH, so ``$SSH_CLIENT`` is set) takes
requests, decides, revokes and reads the results back in every output form.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from helpers import csr_der, csr_pem, make_csr, run_cli, spki_sha256

from tui_ca.cli import serial_text
from tui_ca.engine import CertificateAuthority, RevocationReason

SSH = {"SSH_CLIENT": "198.51.100.23 52144 22"}


def cli(home: Path, *args: str, input: bytes | None = None) -> str:
    result = run_cli(home, *args, input=input, env=SSH)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def cli_json(home: Path, *args: str):
    return json.loads(cli(home, *args, "--json"))


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    cli(home, "init", "--cn", "CLI Issuing CA", "--org", "Example", "--base-url", "http://pki.example.net")
    return home


def test_intake_decisions_and_listings(home, tmp_path):
    csr_a = make_csr("rsa-2048", cn="alpha", sans=["DNS:alpha.example"])
    path = tmp_path / "alpha.der"
    path.write_bytes(csr_der(csr_a))
    assert cli(home, "submit", str(path), "--requester", "Alpha desk") == "1\n"
    # The identical CSR re-sent (as PEM on stdin this time) is the same request.
    again = run_cli(home, "submit", "-", input=csr_pem(csr_a), env=SSH)
    assert (again.returncode, again.stdout, again.stderr) == (0, b"1\n", b"(already queued as request 1)\n")
    assert cli(home, "submit", "-", input=csr_pem(make_csr(cn="beta"))) == "2\n"
    assert cli(home, "submit", "-", input=csr_pem(make_csr(cn="gamma"))) == "3\n"

    queue = cli_json(home, "list", "requests", "--status", "queued")
    assert [(r["id"], r["requester"], r["status"]) for r in queue] == [
        (1, "Alpha desk", "queued"), (2, "beta", "queued"), (3, "gamma", "queued")]  # fmt: skip
    assert queue[0]["details"]["spki_sha256"] == spki_sha256(csr_a)
    assert queue[0]["details"]["key_type"] == "RSA 2048"
    assert queue[0]["submitted_by"] == {"user": queue[0]["submitted_by"]["user"], "address": "198.51.100.23"}
    shown = cli(home, "show", "1")
    assert "Alpha desk" in shown and "DNS:alpha.example" in shown and "RSA 2048" in shown
    assert spki_sha256(csr_a)[:4].upper() + " " + spki_sha256(csr_a)[4:8].upper() in shown

    approved = cli(home, "approve", "1", "2", "--days", "90").splitlines()
    assert [line.split()[0] for line in approved] == ["1", "2"]
    serials = {int(line.split()[0]): line.split()[1] for line in approved}
    assert cli(home, "reject", "3", "--reason", "unknown device") == "request 3 rejected\n"

    certs = cli_json(home, "list", "certs")
    assert [(c["id"], c["serial"], c["status"]) for c in certs] == [(1, serials[1], "valid"), (2, serials[2], "valid")]
    assert [r["id"] for r in cli_json(home, "list", "--status", "rejected")] == [3]
    rejected = cli_json(home, "show", "3")
    assert rejected["certificate"] is None
    assert (rejected["request"]["reason"], rejected["request"]["decided_by"]["address"]) == (
        "unknown device", "198.51.100.23")  # fmt: skip
    table = cli(home, "list", "certs").splitlines()
    assert table[0].split() == ["ID", "STATUS", "REQUESTER", "NOT", "AFTER", "SERIAL"] and len(table) == 3
    # The listed serial is the whole serial, as openssl prints it, and show accepts it.
    assert [line.split()[-1] for line in table[1:]] == [serials[1], serials[2]]

    # A certificate is found by ID or by its serial however it is typed.
    serial = serials[1]
    colons = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2))
    for spelling in ("1", serial, serial.lower(), serial.lstrip("0"), colons, colons.lower(), f"serial={serial}"):
        shown = cli_json(home, "show", spelling)
        assert shown["certificate"]["id"] == 1 and shown["request"]["id"] == 1, spelling
    pem = cli(home, "export", colons.upper()).encode()
    cert = x509.load_pem_x509_certificate(pem)
    # Printed as `openssl x509 -serial` prints it.
    printed = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, check=True)
    assert printed.stdout.decode().strip() == f"serial={serial}"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=90, minutes=5)


def test_exports_ca_certs_and_crl_forms(home, tmp_path):
    cli(home, "submit", "-", input=csr_pem(make_csr(cn="delta")))
    cli(home, "approve", "1")
    chain = x509.load_pem_x509_certificates(cli(home, "export", "1", "--chain").encode())
    issuing, root = chain[1], chain[2]
    assert len(chain) == 3 and chain[0].issuer == issuing.subject and issuing.issuer == root.subject
    assert root.issuer == root.subject
    out = tmp_path / "leaf.pem"
    assert cli(home, "export", "1", "-o", str(out)) == ""
    assert out.read_bytes() == chain[0].public_bytes(Encoding.PEM)
    assert x509.load_pem_x509_certificates(cli(home, "ca-cert").encode()) == [issuing]
    assert x509.load_pem_x509_certificates(cli(home, "ca-cert", "--chain").encode()) == [issuing, root]

    pem_crl = x509.load_pem_x509_crl(cli(home, "crl").encode())
    der_result = run_cli(home, "crl", "--der")
    der_crl = x509.load_der_x509_crl(der_result.stdout)
    assert pem_crl == der_crl and len(der_crl) == 0
    number = der_crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    published = run_cli(home, "crl", "--publish", "--der", "-o", str(tmp_path / "fresh.crl"))
    assert published.returncode == 0 and f"CRL {number + 1} published with 0 entries" in published.stderr.decode()
    fresh = x509.load_der_x509_crl((tmp_path / "fresh.crl").read_bytes())
    assert fresh.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1


def _crl(home: Path) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(run_cli(home, "crl", "--der").stdout)


def test_revoke_with_every_reason_name_publishes_at_once(home):
    # The names as RFC 5280 spells them; case and separators are forgiven.
    spellings = {r: r.value for r in RevocationReason}
    spellings[RevocationReason.KEY_COMPROMISE] = "key-compromise"
    spellings[RevocationReason.CERTIFICATE_HOLD] = "CERTIFICATEHOLD"
    number = _crl(home).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    # Certificates to revoke are made in-process; the revocations go through the command.
    ca = CertificateAuthority(home)
    ids = [ca.submit(csr_pem(make_csr(cn=f"r{n}"))).request.id for n in range(1, len(spellings) + 1)]
    serials = {str(o.id): serial_text(o.certificate.serial) for o in ca.approve(ids)}
    for n, (reason, spelling) in enumerate(spellings.items(), start=1):
        serial = serials[str(n)]
        line = cli(home, "revoke", serial if n % 2 else str(n), "--reason", spelling)
        # Each revocation published a CRL of its own, numbered one higher.
        assert line == f"certificate {n} (serial {serial}) revoked: {reason.value}; CRL {number + n} published\n"
    crl = _crl(home)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + len(spellings)
    assert len(crl) == len(spellings)
    for n, reason in enumerate(spellings, start=1):
        entry = crl.get_revoked_certificate_by_serial_number(int(serials[str(n)], 16))
        codes = [e.value.reason for e in entry.extensions if isinstance(e.value, x509.CRLReason)]
        assert codes == ([] if reason is RevocationReason.UNSPECIFIED else [reason.flag])
    assert {c["status"] for c in cli_json(home, "list", "certs")} == {"revoked"}
    # After a revocation the requester may ask again.
    assert cli(home, "submit", "-", input=csr_pem(make_csr(cn="r1"))) == f"{len(spellings) + 1}\n"


@pytest.mark.journal_commits  # watches the files a journal commit writes
def test_audit_shows_who_from_where_and_verifies(home):
    cli(home, "submit", "-", input=csr_pem(make_csr(cn="epsilon")))
    cli(home, "approve", "1")
    cli(home, "revoke", "1", "--reason", "superseded")
    cli(home, "submit", "-", input=csr_pem(make_csr(cn="zeta")))
    cli(home, "reject", "2", "--reason", "duplicate")
    records = cli_json(home, "audit")
    assert [(r["action"], r["target"], r["outcome"]) for r in records] == [
        ("init", "root and issuing CA", "created"), ("crl", "CRL 1", "published"),
        ("crl", "root CRL 1", "published"),
        ("submit", "request 1", "queued"), ("approve", "request 1", "issued"),
        ("revoke", "certificate 1", "revoked (superseded)"), ("crl", "CRL 2", "published"),
        ("submit", "request 2", "queued"), ("reject", "request 2", "rejected"),
    ]  # fmt: skip
    assert {r["address"] for r in records} == {"198.51.100.23"}
    assert all(r["user"] and r["at"] and r["hash"] for r in records)
    assert [r["seq"] for r in records] == list(range(1, 10))
    text = cli(home, "audit").splitlines()
    assert len(text) == 9 and "@198.51.100.23" in text[4] and "approve" in text[4]
    # Without $SSH_CLIENT the record carries no address.
    result = run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="eta")))
    assert result.returncode == 0
    assert cli_json(home, "audit")[-1]["address"] is None
    assert cli(home, "audit", "--verify") == "audit log intact: 10 records\n"

    # The check can fail: alter one stored record and it says where.
    shard = next((home / "db/audit").glob("*.json"))
    shard.write_text(shard.read_text().replace('"rejected"', '"approved"'))
    broken = run_cli(home, "audit", "--verify")
    assert broken.returncode == 1 and "Traceback" not in broken.stderr.decode()
    assert "record 9: content does not match its hash" in broken.stderr.decode()
