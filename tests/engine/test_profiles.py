"""``init``: the root and issuing CA profiles, names, key types and refusals.

``assert_is_ca`` checks every extension of a CA certificate and its
criticality, so an added or missing extension fails the test.
"""

from __future__ import annotations

import json
import stat
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from helpers import CA_NAMES, assert_refused, csr_pem, make_csr, run_cli, snapshot_home

from tui_ca.engine import CertificateAuthority, InputError, RuleError

FLAGS = ["--country", "GB", "--state", "England", "--locality", "London", "--org", "Example Networks",
         "--ou", "PKI", "--cn", "Example Issuing CA", "--email", "pki@example.net"]  # fmt: skip


def assert_is_ca(cert: x509.Certificate, signer: x509.Certificate, path_length: int | None,
                 base_url: str | None = None) -> None:  # fmt: skip
    """A CA certificate: exactly BC, KU, SKI, AKI (and a SAN for an e-mail), each as RFC 5280 wants.

    With ``base_url``, an issuing CA also names the root's CRL (CDP) and certificate (AIA caIssuers).
    """
    ext = {e.oid: e for e in cert.extensions}
    expected = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.SUBJECT_KEY_IDENTIFIER,
                ExtensionOID.AUTHORITY_KEY_IDENTIFIER}  # fmt: skip
    if base_url is not None:
        expected |= {ExtensionOID.CRL_DISTRIBUTION_POINTS, ExtensionOID.AUTHORITY_INFORMATION_ACCESS}
        cdp = ext[ExtensionOID.CRL_DISTRIBUTION_POINTS]
        assert not cdp.critical and cdp.value[0].full_name[0].value == f"{base_url}/crl/root.crl"
        aia = ext[ExtensionOID.AUTHORITY_INFORMATION_ACCESS]
        assert not aia.critical and [d.access_location.value for d in aia.value] == [f"{base_url}/root.crt"]
    emails = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    if emails:
        expected.add(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        san = ext[ExtensionOID.SUBJECT_ALTERNATIVE_NAME]
        assert not san.critical and san.value.get_values_for_type(x509.RFC822Name) == emails
    assert set(ext) == expected
    assert cert.version is x509.Version.v3
    assert cert.serial_number > 0
    assert cert.issuer == signer.subject
    cert.verify_directly_issued_by(signer)
    bc = ext[ExtensionOID.BASIC_CONSTRAINTS]
    assert bc.critical and bc.value == x509.BasicConstraints(ca=True, path_length=path_length)
    ku = ext[ExtensionOID.KEY_USAGE]
    assert ku.critical and ku.value == x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    ski = ext[ExtensionOID.SUBJECT_KEY_IDENTIFIER]
    assert not ski.critical and ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = ext[ExtensionOID.AUTHORITY_KEY_IDENTIFIER]
    signer_ski = signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert not aki.critical and aki.value.key_identifier == signer_ski.digest


def _attrs(name: x509.Name) -> list[tuple[str, str]]:
    return [(a.oid._name, a.value) for a in name]


@pytest.mark.tinydb_only  # the CLI runs in a child process, on the TinyDB files
def test_init_from_flags_puts_every_name_field_in_place(tmp_path):
    home = tmp_path / "home"
    result = run_cli(home, "init", *FLAGS, "--base-url", "http://pki.example.net:8080/")
    assert result.returncode == 0, result.stderr
    assert "CA created" in result.stdout.decode()
    root = x509.load_pem_x509_certificate((home / "ca/root.crt.pem").read_bytes())
    issuing = x509.load_pem_x509_certificate(run_cli(home, "ca-cert", check=True).stdout)
    common = [("countryName", "GB"), ("stateOrProvinceName", "England"), ("localityName", "London"),
              ("organizationName", "Example Networks"), ("organizationalUnitName", "PKI")]  # fmt: skip
    # The issuer (root) shows emailAddress, the subject does not (DESIGN §5).
    assert _attrs(root.subject) == [*common, ("commonName", "Example Networks Root CA"),
                                    ("emailAddress", "pki@example.net")]  # fmt: skip
    assert _attrs(issuing.subject) == [*common, ("commonName", "Example Issuing CA")]
    assert_is_ca(root, root, None)
    assert_is_ca(issuing, root, 0, "http://pki.example.net:8080")
    assert json.loads(run_cli(home, "audit", "--json", check=True).stdout)[0]["action"] == "init"
    # The base URL (trailing slash dropped) lands in issued certificates.
    run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="dev")), check=True)
    run_cli(home, "approve", "1", check=True)
    leaf = x509.load_pem_x509_certificate(run_cli(home, "export", "1", check=True).stdout)
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == "http://pki.example.net:8080/ca.crl"
    aia = {d.access_method._name: d.access_location.value
           for d in leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value}  # fmt: skip
    assert aia == {"OCSP": "http://pki.example.net:8080/ocsp", "caIssuers": "http://pki.example.net:8080/ca.crt"}
    # Private keys and the home are closed to other users.
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "ca/issuing.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("key_type", "check", "algorithm"),
    [
        ("ec-p256", lambda k: isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp256r1", hashes.SHA256),
        ("ec-p384", lambda k: isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp384r1", hashes.SHA384),
        ("rsa-2048", lambda k: isinstance(k, rsa.RSAPublicKey) and k.key_size == 2048, hashes.SHA256),
        ("rsa-3072", lambda k: isinstance(k, rsa.RSAPublicKey) and k.key_size == 3072, hashes.SHA256),
        ("rsa-4096", lambda k: isinstance(k, rsa.RSAPublicKey) and k.key_size == 4096, hashes.SHA256),
    ],
)
def test_every_key_type(tmp_path, clock, key_type, check, algorithm):
    ca = CertificateAuthority(tmp_path / key_type, clock=clock)
    info = ca.init(CA_NAMES, key_type=key_type, days=400)
    root, issuing = ca.root_cert(), ca.issuing_cert()
    assert check(root.public_key()) and check(issuing.public_key())
    assert isinstance(root.signature_hash_algorithm, algorithm)
    assert_is_ca(root, root, None)
    assert_is_ca(issuing, root, 0)
    assert issuing.not_valid_after_utc == clock.now + timedelta(days=400) == info.not_after
    assert issuing.not_valid_before_utc == clock.now - timedelta(minutes=5)
    assert ca.config()["key_type"] == key_type
    crl = x509.load_der_x509_crl(ca.crl(republish_if_stale=False))
    assert crl.is_signature_valid(issuing.public_key()) and len(crl) == 0


@pytest.mark.tinydb_only  # the CLI runs in a child process, on the TinyDB files
def test_default_key_type_is_ec_p256(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "init", "--cn", "Default", check=True)
    issuing = x509.load_pem_x509_certificate((home / "ca/issuing.crt.pem").read_bytes())
    assert issuing.public_key().curve.name == "secp256r1"


@pytest.mark.tinydb_only  # the CLI runs in a child process, on the TinyDB files
def test_init_refuses_when_a_ca_exists(ca, home):
    before = snapshot_home(home)
    with pytest.raises(RuleError, match="already exists"):
        ca.init(CA_NAMES)
    assert_refused(run_cli(home, "init", "--cn", "Second"), 1, "already exists")
    assert snapshot_home(home) == before


@pytest.mark.tinydb_only  # the CLI runs in a child process, on the TinyDB files
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--org", "No CN"], "common name"),
        (["--cn", "X", "--country", "Britain"], "two-letter"),
        (["--cn", "X", "--key-type", "rsa-1024"], "unknown key type"),
        (["--cn", "X", "--days", "0"], "--days"),
        (["--cn", "X", "--base-url", "ftp://example.net"], "--base-url"),
        (["--cn", "X", "--days", "many"], "invalid int value"),
    ],
)
def test_init_bad_input_stores_nothing(tmp_path, args, fragment):
    home = tmp_path / "home"
    assert_refused(run_cli(home, "init", *args), 2, fragment)
    assert not home.exists() or snapshot_home(home) == {}


def test_crl_days_sets_next_update(tmp_path, clock):
    ca = CertificateAuthority(tmp_path / "h", clock=clock)
    ca.init(CA_NAMES, crl_days=2)
    crl = x509.load_der_x509_crl(ca.crl(republish_if_stale=False))
    assert crl.next_update_utc == clock.now + timedelta(days=2)
    with pytest.raises(InputError):
        CertificateAuthority(tmp_path / "other", clock=clock).init(CA_NAMES, days=36501)


def test_root_is_named_after_the_organisation_or_else_the_ca(tmp_path):
    from tui_ca.engine import CertificateAuthority, NameFields

    with_org = CertificateAuthority(tmp_path / "a")
    with_org.init(NameFields(common_name="Voice Issuing CA", organization="Example Networks"))
    without_org = CertificateAuthority(tmp_path / "b")
    without_org.init(NameFields(common_name="Lab CA"))
    assert with_org.info().issuer.common_name == "Example Networks Root CA"
    assert without_org.info().issuer.common_name == "Lab CA Root CA"
