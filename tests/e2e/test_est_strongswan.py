"""strongSwan's `pki --est` enrolls and polls while an admin approves with the real CLI."""

from __future__ import annotations

import json
import subprocess

from tests.server.live import make_home, require, run, serve, wait_for


def test_pki_est_polls_until_approved(tmp_path):
    require("pki")
    home = make_home(tmp_path)
    key, csr = tmp_path / "key.der", tmp_path / "req.der"
    key.write_bytes(run(["pki", "--gen", "--type", "ecdsa", "--size", "256"]).stdout)
    csr.write_bytes(run(["pki", "--req", "--in", str(key), "--type", "ecdsa", "--dn", "CN=sw-phone-3",
                         "--san", "sw-phone-3.example.net", "--outform", "der"]).stdout)  # fmt: skip
    root = tmp_path / "root.pem"
    chain = home.chain.read_text()
    root.write_text(chain[chain.index("-----BEGIN", 1) :])
    with serve(home) as serving:
        pki = subprocess.Popen(
            ["pki", "--est", "--url", f"https://127.0.0.1:{serving.https_port}", "--cacert", str(root),
             "--cacert", str(home.issuing), "--in", str(csr), "--interval", "1", "--maxpolltime", "60",
             "--outform", "pem"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            queued = wait_for(lambda: json.loads(home.cli("list", "requests", "--status", "queued", "--json").stdout))
            assert queued[0]["requester"] == "sw-phone-3" and queued[0]["source"] == "est"
            assert pki.poll() is None  # still polling
            home.cli("approve", str(queued[0]["id"]))
            out, err = pki.communicate(timeout=60)
        finally:
            if pki.poll() is None:
                pki.kill()
        assert pki.returncode == 0, err.decode()
        assert b"Issued certificate is trusted" in err
        issued = tmp_path / "issued.pem"
        issued.write_bytes(out)
        text = run(
            ["openssl", "x509", "-in", str(issued), "-noout", "-subject", "-ext", "subjectAltName"]
        ).stdout.decode()
        assert "CN = sw-phone-3" in text and "DNS:sw-phone-3.example.net" in text
        assert run(["openssl", "verify", "-CAfile", str(home.chain), str(issued)]).returncode == 0
