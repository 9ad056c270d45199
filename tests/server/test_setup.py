"""server-setup (the admin step with the CA key), est-user, and serve refusing without setup."""

from __future__ import annotations

import stat
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tui_ca.engine.home import OCSP_CERT, OCSP_KEY, TLS_CERT, TLS_KEY
from tui_ca.server.users import Users, check_password, hash_password, load_users, set_user


def cli(home, *args, input: bytes | None = None):
    return subprocess.run(["tui-ca", "--home", str(home), *args], capture_output=True, input=input, timeout=60)


def test_server_setup_writes_private_keys_and_fitting_certificates(ca, home):
    result = cli(home, "server-setup", "--name", "ca.example.net", "--name", "192.0.2.5", "--ocsp-days", "3")
    assert result.returncode == 0, result.stderr
    for key in (TLS_KEY, OCSP_KEY):
        assert stat.S_IMODE((home / key).stat().st_mode) == 0o600
    tls = x509.load_pem_x509_certificates((home / TLS_CERT).read_bytes())
    assert tls[1] == ca.issuing_cert()  # the chain the server presents
    names = tls[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["ca.example.net", "192.0.2.5"]
    assert list(tls[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    ocsp = x509.load_pem_x509_certificate((home / OCSP_CERT).read_bytes())
    assert list(ocsp.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.OCSP_SIGNING
    ]
    assert ocsp.extensions.get_extension_for_class(x509.OCSPNoCheck).critical is False
    assert (ocsp.not_valid_after_utc - ocsp.not_valid_before_utc).days == 3
    ocsp.verify_directly_issued_by(ca.issuing_cert())
    record = ca.audit_records()[-1]
    assert (record.action, record.outcome) == ("server-setup", "TLS and OCSP signer issued")
    assert ca.verify_audit() == []


def test_ocsp_only_renewal_keeps_the_tls_certificate(ca, home):
    assert cli(home, "server-setup").returncode == 0
    tls_before, ocsp_before = (home / TLS_CERT).read_bytes(), (home / OCSP_CERT).read_bytes()
    assert cli(home, "server-setup", "--ocsp-only").returncode == 0
    assert (home / TLS_CERT).read_bytes() == tls_before
    assert (home / OCSP_CERT).read_bytes() != ocsp_before
    names = x509.load_pem_x509_certificate(tls_before).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [str(n.value) for n in names.value] == ["127.0.0.1"]


def test_service_certificates_on_record_pass_check_through_a_renewal(ca, home):
    # They have no CSR (their keys never left this host), which check must not call damage.
    assert cli(home, "server-setup").returncode == 0
    assert cli(home, "server-setup").returncode == 0  # supersedes all three
    result = cli(home, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ca.check() == []


def test_server_setup_refuses_bad_names(ca, home):
    result = cli(home, "server-setup", "--name", "bad name/../x")
    assert result.returncode == 2 and result.stderr.decode().count("\n") == 1
    assert not (home / TLS_KEY).exists()


def test_serve_without_setup_refuses_with_one_line(ca, home):
    result = cli(home, "serve", "--port", "0", "--http-port", "0")
    assert result.returncode == 1
    assert (
        result.stderr.decode()
        == f"tui-ca: {home / OCSP_CERT} is missing: run 'tui-ca server-setup' as the CA admin first\n"
    )


def test_serve_refuses_no_anonymous_without_users(ca, home):
    cli(home, "server-setup")
    result = cli(home, "serve", "--port", "0", "--http-port", "0", "--no-anonymous")
    assert result.returncode == 2 and "--users" in result.stderr.decode()


def test_est_user_command_and_file(tmp_path):
    users = tmp_path / "est-users"
    result = subprocess.run(["tui-ca", "est-user", "phone-17", "--users", str(users)], input=b"s3cret-pass\n",
                            capture_output=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    name, _, stored = users.read_text().strip().partition(":")
    assert name == "phone-17" and stored.startswith("scrypt$") and "s3cret" not in stored
    assert Users(load_users(users)).check("phone-17", "s3cret-pass")
    assert not Users(load_users(users)).check("phone-17", "wrong")
    assert not Users(load_users(users)).check("nobody", "s3cret-pass")
    short = subprocess.run(["tui-ca", "est-user", "x", "--users", str(users)], input=b"short\n", capture_output=True)
    assert short.returncode == 2 and b"8 characters" in short.stderr


def test_users_file_rules(tmp_path):
    assert check_password("pw", hash_password("pw", n=2**4)) and not check_password("px", hash_password("pw", n=2**4))
    assert not check_password("pw", "plain$text")
    users = tmp_path / "u"
    set_user(users, "a", "password-a")
    set_user(users, "a", "password-b")  # replaced, not duplicated
    assert list(load_users(users)) == ["a"]
    users.chmod(0o644)
    try:
        load_users(users)
        raise AssertionError("a world-readable users file must be refused")
    except Exception as exc:
        assert "chmod 600" in str(exc)
    users.chmod(0o600)
    users.write_text("a:md5$abc\n")
    users.chmod(0o600)
    try:
        load_users(users)
        raise AssertionError("a line without a scrypt hash must be refused")
    except Exception as exc:
        assert "line 1" in str(exc)


def test_service_certificates_pass_pkilint(ca, home, tmp_path):
    assert cli(home, "server-setup", "--name", "ca.example.net", "--name", "127.0.0.1").returncode == 0
    leaf = tmp_path / "tls.pem"
    leaf.write_bytes(x509.load_pem_x509_certificates((home / TLS_CERT).read_bytes())[0].public_bytes(Encoding.PEM))
    for path in (leaf, home / OCSP_CERT):
        result = subprocess.run(
            ["lint_pkix_cert", "lint", "-s", "WARNING", str(path)], capture_output=True, timeout=120
        )
        assert result.returncode == 0 and result.stdout.strip() == b"", result.stdout.decode()
