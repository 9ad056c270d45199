"""`tui-ca serve` never opens the CA's private keys, traced with strace through a full flow."""

from __future__ import annotations

import re
import subprocess

from cryptography import x509

from tests.server.live import curl_enroll, make_home, openssl_csr, pkcs7_to_pem, require, run, serve, wait_for


def test_serve_never_opens_a_ca_key(tmp_path):
    require("strace")
    home = make_home(tmp_path)
    trace = tmp_path / "trace.txt"
    with serve(home, prefix=("strace", "-f", "-e", "trace=open,openat", "-o", str(trace))) as serving:
        _, csr = openssl_csr(tmp_path, "traced")
        assert curl_enroll(serving, home, csr, tmp_path / "q.txt")[0] == 202
        home.cli("approve", home.request_id(1))  # the admin's process, not the server's
        assert curl_enroll(serving, home, csr, tmp_path / "c.b64")[0] == 200
        leaf = tmp_path / "leaf.pem"
        pkcs7_to_pem(home, tmp_path / "c.b64", leaf)
        home.cli("revoke", home.request_id(1))
        result = run(["openssl", "ocsp", "-issuer", str(home.issuing), "-cert", str(leaf),
                      "-url", f"{serving.http}/ocsp", "-CAfile", str(home.chain)])  # fmt: skip
        assert f"{leaf}: revoked" in result.stdout.decode()
        run(["curl", "-sS", "-f", "-o", str(tmp_path / "crl.der"), f"{serving.http}/ca.crl"])
    opened = re.findall(r'open(?:at)?\([^"]*"([^"]+)"', trace.read_text())
    # The trace saw the server's own files, so its silence about the CA keys means something.
    assert any(p.endswith("server/ocsp.key") for p in opened) and any(p.endswith("server/tls.key") for p in opened)
    assert any("/db/" in p for p in opened)
    assert not [p for p in opened if p.endswith(("ca/issuing.key", "ca/root.key"))]


def test_the_guard_refuses_opening_a_ca_key(tmp_path):
    home = make_home(tmp_path)
    script = (
        "import sys\nfrom pathlib import Path\nfrom tui_ca.engine import CertificateAuthority\n"
        "from tui_ca.server.main import guard_ca_keys\nhome = Path(sys.argv[1])\nguard_ca_keys(home)\n"
        "open(home / 'server/ocsp.key').close()\n"
        "try:\n    CertificateAuthority(home).signing_key()\nexcept PermissionError as exc:\n    print('refused:', exc)\n"
    )
    result = run(["python3", "-c", script, str(home.path)])
    assert result.stdout.decode().startswith("refused: the network server must not open the CA key")


def test_scep_under_serve_never_opens_a_ca_key(tmp_path):
    """strongSwan enrolls over SCEP through a traced `serve`: the RA key decrypts and signs, never a CA key."""
    require("strace", "pki")
    home = make_home(tmp_path)
    trace = tmp_path / "trace.txt"
    with serve(home, prefix=("strace", "-f", "-e", "trace=open,openat", "-o", str(trace))) as serving:
        url = f"{serving.http}/scep"
        cas = {"root": tmp_path / "ca.der", "issuing": tmp_path / "ca-1.der", "ra": tmp_path / "ra.der"}
        run(["pki", "--scepca", "--url", url, "--caout", str(cas["root"]), "--raout", str(cas["ra"])])
        key, cert = tmp_path / "gw.key", tmp_path / "gw.crt"
        key.write_bytes(run(["pki", "--gen", "--type", "rsa", "--size", "2048", "--outform", "pem"]).stdout)
        args = ["pki", "--scep", "--url", url, "--in", str(key), "--dn", "CN=traced-gw", "--cacert-enc", str(cas["ra"]),
                "--cacert-sig", str(cas["ra"]), "--cacert", str(cas["root"]), "--cacert", str(cas["issuing"]),
                "--interval", "1", "--maxpolltime", "120", "--outform", "pem"]  # fmt: skip
        with (tmp_path / "pki.err").open("wb") as err, cert.open("wb") as out:
            client = subprocess.Popen(args, stdout=out, stderr=err)
        try:
            wait_for(lambda: '"status": "queued"' in home.cli("list", "--json").stdout.decode(), timeout=120)
            home.cli("approve", home.request_id(1))  # the admin's process, holding the key the server never opens
            assert client.wait(120) == 0, (tmp_path / "pki.err").read_text(errors="replace")
        finally:
            if client.poll() is None:
                client.kill()
        issued = x509.load_pem_x509_certificate(cert.read_bytes())
        assert issued.subject.rfc4514_string() == "CN=traced-gw"
        assert issued.issuer == x509.load_der_x509_certificate(cas["issuing"].read_bytes()).subject
    opened = re.findall(r'open(?:at)?\([^"]*"([^"]+)"', trace.read_text())
    # The RA key was opened by the traced server, so the trace covers SCEP's decrypt-and-sign path.
    assert any(p.endswith("server/scep-ra.key") for p in opened)
    assert not [p for p in opened if p.endswith(("ca/issuing.key", "ca/root.key"))]
