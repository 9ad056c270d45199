"""OCSP answers are signed once and kept while no revocation changed, whoever commits meanwhile.

A commit that changes no revocation state (an enrollment, an approval) keeps
the signed answers; a revocation, a released hold or a reason change, made by
another process through the CLI, shows in the very next answer.
"""

from __future__ import annotations

import subprocess

from cryptography.x509 import ocsp

from tests.server.support import enrolled, make_csr
from tests.server.test_status import issue, ocsp_request, post_ocsp


def _cli(live_ca, *args: str) -> None:
    result = subprocess.run(["tui-ca", "--home", str(live_ca.home), *args], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()


def _raw(client, der: bytes) -> bytes:
    reply = client.plain("POST", "/ocsp", der, {"Content-Type": "application/ocsp-request"})
    assert reply.status == 200
    return reply.body


def test_answers_survive_enrollments_and_follow_revocations_from_another_process(client, live_ca):
    cert = issue(client, live_ca, "kept")
    other = issue(client, live_ca, "held")
    kept_id, held_id = (str(r.id) for r in enrolled(live_ca))  # after server-setup's own certificates
    issuer = live_ca.issuing_cert()
    question = ocsp_request(cert, issuer)
    first = _raw(client, question)
    assert ocsp.load_der_ocsp_response(first).certificate_status == ocsp.OCSPCertStatus.GOOD
    # ECDSA signatures differ on every signing: equal bytes mean the answer was kept.
    assert _raw(client, question) == first
    client.enroll(make_csr("newcomer")[0])
    _cli(live_ca, "approve", str(live_ca.requests()[-1].id))
    assert _raw(client, question) == first

    _cli(live_ca, "revoke", kept_id, "--reason", "superseded")
    revoked = post_ocsp(client, question)
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is not None and revoked.revocation_reason.name == "superseded"
    _cli(live_ca, "revoke", kept_id, "--reason", "keyCompromise")
    assert post_ocsp(client, question).revocation_reason.name == "key_compromise"

    held = ocsp_request(other, issuer)
    _cli(live_ca, "revoke", held_id, "--reason", "certificateHold")
    assert post_ocsp(client, held).certificate_status == ocsp.OCSPCertStatus.REVOKED
    _cli(live_ca, "unhold", held_id)
    assert post_ocsp(client, held).certificate_status == ocsp.OCSPCertStatus.GOOD
