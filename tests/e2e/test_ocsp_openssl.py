"""`openssl ocsp` against the live responder: good, then revoked with its reason; pkilint finds nothing."""

from __future__ import annotations

from tests.server.live import curl_enroll, make_home, openssl_csr, pkcs7_to_pem, require, run, serve


def lint(response: str) -> None:
    require("lint_ocsp_response")
    result = run(["lint_ocsp_response", "lint", "-s", "WARNING", response], check=False)
    assert result.returncode == 0 and result.stdout.strip() == b"", result.stdout.decode() + result.stderr.decode()


def ocsp(home, serving, leaf, response) -> str:
    result = run(["openssl", "ocsp", "-issuer", str(home.issuing), "-cert", str(leaf), "-url", f"{serving.http}/ocsp",
                  "-CAfile", str(home.chain), "-respout", str(response), "-resp_text"])  # fmt: skip
    return result.stdout.decode() + result.stderr.decode()


def test_openssl_ocsp_good_then_revoked(tmp_path):
    home = make_home(tmp_path)
    with serve(home) as serving:
        _, csr = openssl_csr(tmp_path, "phone-21")
        curl_enroll(serving, home, csr, tmp_path / "q.txt")
        home.cli("approve", home.request_id(1))
        curl_enroll(serving, home, csr, tmp_path / "c.b64")
        leaf = tmp_path / "leaf.pem"
        pkcs7_to_pem(home, tmp_path / "c.b64", leaf)
        # The OCSP URL openssl uses is the one in the certificate's AIA.
        aia = run(["openssl", "x509", "-in", str(leaf), "-noout", "-ocsp_uri"]).stdout.decode().strip()
        assert aia == f"{serving.http}/ocsp"

        good = ocsp(home, serving, leaf, tmp_path / "good.der")
        assert "Response verify OK" in good and f"{leaf}: good" in good
        assert "OCSP Nonce" in good  # echoed
        lint(str(tmp_path / "good.der"))

        home.cli("revoke", home.request_id(1), "--reason", "keyCompromise")
        revoked = ocsp(home, serving, leaf, tmp_path / "revoked.der")
        assert "Response verify OK" in revoked and f"{leaf}: revoked" in revoked
        assert "Reason: keyCompromise" in revoked and "Revocation Time:" in revoked
        lint(str(tmp_path / "revoked.der"))


def test_openssl_ocsp_unknown_serial(tmp_path):
    home = make_home(tmp_path)
    with serve(home) as serving:
        result = run(["openssl", "ocsp", "-issuer", str(home.issuing), "-serial", "0x1234abcd",
                      "-url", f"{serving.http}/ocsp", "-CAfile", str(home.chain), "-respout", str(tmp_path / "u.der")])  # fmt: skip
        assert "0x1234abcd: unknown" in result.stdout.decode()
        lint(str(tmp_path / "u.der"))


def test_openssl_ocsp_asks_about_several_certificates_at_once(tmp_path):
    home = make_home(tmp_path)
    with serve(home) as serving:
        _, csr = openssl_csr(tmp_path, "phone-22")
        curl_enroll(serving, home, csr, tmp_path / "q.txt")
        home.cli("approve", home.request_id(1))
        curl_enroll(serving, home, csr, tmp_path / "c.b64")
        leaf = tmp_path / "leaf.pem"
        pkcs7_to_pem(home, tmp_path / "c.b64", leaf)
        result = run(["openssl", "ocsp", "-issuer", str(home.issuing), "-cert", str(leaf), "-serial", "0x1234abcd",
                      "-url", f"{serving.http}/ocsp", "-CAfile", str(home.chain), "-respout", str(tmp_path / "m.der")])  # fmt: skip
        out = result.stdout.decode() + result.stderr.decode()
        assert "Response verify OK" in out and f"{leaf}: good" in out and "0x1234abcd: unknown" in out
        lint(str(tmp_path / "m.der"))
