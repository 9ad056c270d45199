"""The CA key stays offline: a SCEP server process that cannot open it enrolls, polls, renews and serves GetCRL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scep_support import Remote, ScepClient, csr_der, scep_ca, scep_requests

from tests.server.live import wait_for
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.service import load_ra

WORKER = Path(__file__).with_name("scep_serve_worker.py")


def test_scep_needs_only_the_ra_key(tmp_path):
    ca = scep_ca(tmp_path)
    port_file = tmp_path / "port"
    worker = subprocess.Popen([sys.executable, str(WORKER), str(ca.home), str(port_file)], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: port_file.exists() and port_file.read_text() or worker.poll() is not None, timeout=60)
        assert worker.poll() is None, worker.stderr.read().decode()
        served = Remote(int(port_file.read_text()), load_ra(ca.home).cert)
        client = ScepClient.new(served, "offline-1")
        assert client.enroll().status == msg.PkiStatus.PENDING
        [outcome] = ca.approve([scep_requests(ca)[0].id])  # the admin, in this process, with the key
        assert client.poll(ca).certs[0].serial_number == outcome.certificate.serial
        content = msg.issuer_and_serial_der(ca.issuing_cert().subject, outcome.certificate.serial)
        assert client.ask(msg.MessageType.GET_CRL, content).crl == ca.published_crl()
        renewer = ScepClient(served, client.ra, client.key, client.poll(ca).certs[0], "offline-renew")
        reply = renewer.ask(msg.MessageType.RENEWAL_REQ, csr_der(ScepClient.new(served, "x").key, "offline-1"))
        assert reply.status == msg.PkiStatus.PENDING
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert b"must not open the CA key" not in err and b"Traceback" not in err, err.decode()
