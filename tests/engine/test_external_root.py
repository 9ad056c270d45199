"""An issuing CA signed by an external root made with the real ``openssl``.

``init --external-root`` writes the issuing CA's CSR; openssl plays the
other organisation's root (``req -x509``, then ``x509 -req -extfile``);
``import-ca-cert ROOT ISSUING`` finishes. Wrong certificates are refused
with one line and leave the home as it was.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from helpers import assert_refused, csr_pem, make_csr, run_cli, snapshot_home

OPENSSL = "/usr/bin/openssl"
CA_EXTENSIONS = """\
[v3_issuing]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""
NO_SKI_EXTENSIONS = """\
[v3_issuing]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = none
authorityKeyIdentifier = keyid:always
"""
LEAF_EXTENSIONS = """\
[v3_issuing]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

# Driven through the CLI in child processes, which open the home's TinyDB files.
pytestmark = pytest.mark.tinydb_only


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def make_root(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed EC root as another organisation would make it."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "3650", "-subj", f"/O=Other Org/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)  # fmt: skip
    return key, cert


def sign(folder: Path, csr: Path, root: tuple[Path, Path], out: str, extensions: str = CA_EXTENSIONS) -> Path:
    """The root signs a CSR with ``openssl x509 -req -extfile``."""
    extfile = folder / f"{out}.cnf"
    extfile.write_text(extensions)
    target = folder / out
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(root[1]), "-CAkey", str(root[0]), "-CAcreateserial",
             "-days", "1825", "-sha256", "-extfile", str(extfile), "-extensions", "v3_issuing", "-out", str(target),
             cwd=folder)  # fmt: skip
    return target


@pytest.fixture
def pending(tmp_path) -> tuple[Path, Path, tuple[Path, Path]]:
    """A home waiting for import, its CSR, and an external root."""
    home = tmp_path / "home"
    result = run_cli(home, "init", "--external-root", "-o", str(tmp_path / "issuing.csr"), "--cn", "Branch Issuing CA",
                     "--org", "Example Networks", "--country", "GB", "--base-url", "http://pki.example.net")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "import-ca-cert" in result.stderr.decode()
    return home, tmp_path / "issuing.csr", make_root(tmp_path, "External Root")


def test_external_root_round_trip(pending, tmp_path):
    home, csr_path, root = pending
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=Branch Issuing CA,O=Example Networks,C=GB"
    constraints = csr.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    # Until the import, the CA cannot take requests.
    assert_refused(run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="early"))), 1, "import-ca-cert")

    issuing = sign(tmp_path, csr_path, root, "issuing.pem")
    result = run_cli(home, "import-ca-cert", str(root[1]), str(issuing))
    assert result.returncode == 0, result.stderr
    assert run_cli(home, "ca-cert", check=True).stdout == issuing.read_bytes()
    chain = run_cli(home, "ca-cert", "--chain", check=True).stdout
    assert chain == issuing.read_bytes() + root[1].read_bytes()
    assert not (home / "ca/issuing.csr.pem").exists()

    # The imported CA issues, and openssl accepts the chain to the external root.
    run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="device.example.net")), check=True)
    run_cli(home, "approve", "1", check=True)
    leaf = tmp_path / "leaf.pem"
    run_cli(home, "export", "1", "-o", str(leaf), check=True)
    crl = tmp_path / "crl.pem"
    run_cli(home, "crl", "-o", str(crl), check=True)
    verify = subprocess.run([OPENSSL, "verify", "-CAfile", str(root[1]), "-untrusted", str(issuing),
                             "-crl_check", "-CRLfile", str(crl), "-purpose", "sslclient", str(leaf)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    issued = x509.load_pem_x509_certificate(leaf.read_bytes())
    assert issued.issuer == x509.load_pem_x509_certificate(issuing.read_bytes()).subject
    assert [r["action"] for r in _audit(home)] == ["init", "import-ca", "crl", "submit", "approve"]

    # Once imported, neither init nor another import is possible.
    before = snapshot_home(home)
    assert_refused(run_cli(home, "import-ca-cert", str(root[1]), str(issuing)), 1, "no issuing-CA request")
    assert_refused(run_cli(home, "init", "--cn", "Again"), 1, "already exists")
    assert snapshot_home(home) == before


def _audit(home: Path) -> list[dict]:
    import json

    return json.loads(run_cli(home, "audit", "--json", check=True).stdout)


def test_init_external_root_again_is_refused(pending):
    home, _, _ = pending
    before = snapshot_home(home)
    assert_refused(run_cli(home, "init", "--external-root", "--cn", "Twice"), 1, "already exists")
    assert snapshot_home(home) == before


def test_certificate_for_another_key_is_refused(pending, tmp_path):
    home, _, root = pending
    stranger = tmp_path / "stranger.csr"
    stranger.write_bytes(csr_pem(make_csr(cn="Impostor Issuing CA")))
    wrong = sign(tmp_path, stranger, root, "wrong-key.pem")
    before = snapshot_home(home)
    assert_refused(run_cli(home, "import-ca-cert", str(root[1]), str(wrong)), 1, "does not match the key")
    assert snapshot_home(home) == before


def test_certificate_not_signed_by_the_given_root_is_refused(pending, tmp_path):
    home, csr_path, root = pending
    other_root = make_root(tmp_path, "Other Root")
    issuing = sign(tmp_path, csr_path, other_root, "by-other.pem")
    before = snapshot_home(home)
    assert_refused(run_cli(home, "import-ca-cert", str(root[1]), str(issuing)), 1, "not signed by the given root")
    # The arguments swapped: the "root" is then the issuing certificate itself.
    assert_refused(run_cli(home, "import-ca-cert", str(issuing), str(other_root[1])), 1)
    assert snapshot_home(home) == before


@pytest.mark.parametrize(("extensions", "fragment"), [(NO_SKI_EXTENSIONS, "subject key identifier"),
                                                      (LEAF_EXTENSIONS, "not a CA certificate")])  # fmt: skip
def test_issuing_certificate_unfit_for_a_ca_is_refused(pending, tmp_path, extensions, fragment):
    home, csr_path, root = pending
    unfit = sign(tmp_path, csr_path, root, "unfit.pem", extensions)
    before = snapshot_home(home)
    assert_refused(run_cli(home, "import-ca-cert", str(root[1]), str(unfit)), 1, fragment)
    assert snapshot_home(home) == before


def test_unreadable_or_non_pem_inputs_are_bad_input(pending, tmp_path):
    home, _, root = pending
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    before = snapshot_home(home)
    assert_refused(run_cli(home, "import-ca-cert", str(root[1]), str(junk)), 2, "PEM certificates")
    assert_refused(run_cli(home, "import-ca-cert", str(root[1]), str(tmp_path / "missing.pem")), 2, "cannot read")
    assert snapshot_home(home) == before
