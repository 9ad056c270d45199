"""`tui-ca serve` never opens the CA's private keys, traced with strace through a full flow."""

from __future__ import annotations

import re

from tests.server.live import curl_enroll, make_home, openssl_csr, pkcs7_to_pem, require, run, serve


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
