"""The usual EST recipe with curl and openssl against a real `tui-ca serve`."""

from __future__ import annotations

from tests.server.live import curl_enroll, make_home, openssl_csr, pkcs7_to_pem, run, serve


def test_cacerts_enroll_approve_collect_verify(tmp_path):
    home = make_home(tmp_path)
    with serve(home) as serving:
        cacerts = tmp_path / "cacerts.b64"
        run(["curl", "-sS", "--cacert", str(home.chain), "-o", str(cacerts), f"{serving.est}/cacerts"])
        printed = pkcs7_to_pem(home, cacerts, tmp_path / "cacerts.pem")
        assert "subject=O = Example, CN = E2E Issuing CA" in printed and "CN = Example Root CA" in printed

        key, csr = openssl_csr(tmp_path, "phone-17")
        status, headers = curl_enroll(serving, home, csr, tmp_path / "r1.txt")
        assert status == 202 and headers["retry-after"].isdigit()
        assert "waits for an admin" in (tmp_path / "r1.txt").read_text()

        approved = home.cli("approve", home.request_id(1))
        assert approved.stdout.decode().startswith(f"{home.request_id(1)} ")
        status, headers = curl_enroll(serving, home, csr, tmp_path / "r2.b64")
        assert status == 200
        assert headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
        leaf = tmp_path / "leaf.pem"
        assert "subject=CN = phone-17" in pkcs7_to_pem(home, tmp_path / "r2.b64", leaf)
        verified = run(["openssl", "verify", "-CAfile", str(home.chain), str(leaf)])
        assert verified.stdout.decode().strip() == f"{leaf}: OK"
        # The certificate holds the key the client made.
        pub_leaf = run(["openssl", "x509", "-in", str(leaf), "-noout", "-pubkey"]).stdout
        pub_key = run(["openssl", "pkey", "-in", str(key), "-pubout"]).stdout
        assert pub_leaf == pub_key


def test_rejection_reaches_the_client(tmp_path):
    home = make_home(tmp_path)
    with serve(home) as serving:
        _, csr = openssl_csr(tmp_path, "intruder")
        assert curl_enroll(serving, home, csr, tmp_path / "r1.txt")[0] == 202
        home.cli("reject", home.request_id(1), "--reason", "nobody ordered this device")
        status, headers = curl_enroll(serving, home, csr, tmp_path / "r2.txt")
        assert status == 403 and headers["content-type"].startswith("text/plain")
        expected = f"request {home.request_id(1)} was rejected: nobody ordered this device\n"
        assert (tmp_path / "r2.txt").read_text() == expected


def test_reenroll_with_curl_client_certificate(tmp_path):
    home = make_home(tmp_path)
    with serve(home) as serving:
        key, csr = openssl_csr(tmp_path, "phone-9")
        curl_enroll(serving, home, csr, tmp_path / "r.txt")
        home.cli("approve", home.request_id(1))
        curl_enroll(serving, home, csr, tmp_path / "r.b64")
        leaf = tmp_path / "leaf.pem"
        pkcs7_to_pem(home, tmp_path / "r.b64", leaf)
        _, new_csr = openssl_csr_in(tmp_path, "phone-9")
        tls = ("--cert", str(leaf), "--key", str(key))
        assert curl_enroll(serving, home, new_csr, tmp_path / "n1.txt", "simplereenroll", tls)[0] == 202
        home.cli("approve", home.request_id(2))
        assert curl_enroll(serving, home, new_csr, tmp_path / "n2.b64", "simplereenroll", tls)[0] == 200
        shown = home.cli("show", home.request_id(1)).stdout.decode()
        assert "superseded" in shown


def openssl_csr_in(tmp_path, cn):
    folder = tmp_path / "renewal"
    folder.mkdir(exist_ok=True)
    return openssl_csr(folder, cn)
