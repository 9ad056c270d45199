"""SCEP through the real aiohttp routes: capabilities, CA certificates, PKCSReq → PENDING → SUCCESS / FAILURE."""

from __future__ import annotations

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs7
from scep_support import ScepClient, csr_der, http_get, rsa_key, scep_ca, scep_requests, serving

from tests.helpers import snapshot_home
from tests.server.live import run
from tui_ca.engine import RequestStatus
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.service import ScepService
from tui_ca.server.scep.state import TRANSACTIONS


@pytest.fixture
def ca(tmp_path):
    return scep_ca(tmp_path)


@pytest.fixture
def served(ca):
    with serving(ScepService(ca, log=lambda line: None)) as running:
        yield running


def test_caps_and_ca_certificates(ca, served):
    caps = http_get(served.port, "/scep?operation=GetCACaps")
    assert caps.status == 200 and caps.content_type.startswith("text/plain")
    assert set(caps.body.decode().split()) >= {"AES", "POSTPKIOperation", "Renewal", "SCEPStandard", "SHA-256"}
    certs = http_get(served.port, "/cgi-bin/pkiclient.exe?operation=GetCACert")
    assert certs.status == 200 and certs.content_type == "application/x-x509-ca-ra-cert"
    got = pkcs7.load_der_pkcs7_certificates(certs.body)
    assert set(got) == {served.service.ra.cert, ca.issuing_cert(), ca.root_cert()}


def test_pkcsreq_pends_until_approved_then_polls_to_success(ca, served):
    client = ScepClient.new(served, "router-1")
    first = client.enroll()
    assert first.status == msg.PkiStatus.PENDING
    [request] = ca.requests(RequestStatus.QUEUED)
    assert (request.requester, request.source) == ("router-1", "scep")
    audit = [r for r in ca.audit_records() if r.action == "submit"][-1]
    assert audit.extra["scep_transaction_id"] == client.transaction_id
    assert client.poll(ca).status == msg.PkiStatus.PENDING
    [outcome] = ca.approve([request.id])
    done = client.poll(ca)
    assert done.status == msg.PkiStatus.SUCCESS
    assert [c.serial_number for c in done.certs] == [outcome.certificate.serial]
    assert done.certs[0].public_key().public_numbers() == client.key.public_key().public_numbers()
    # Re-sending the PKCSReq is a poll too, and stores nothing new.
    assert client.enroll().status == msg.PkiStatus.SUCCESS
    assert len(scep_requests(ca)) == 1


def test_rejection_reaches_the_client_as_bad_request(ca, served):
    client = ScepClient.new(served, "phone-7")
    assert client.enroll().status == msg.PkiStatus.PENDING
    ca.reject(scep_requests(ca)[0].id, "not one of ours")
    reply = client.poll(ca)
    assert (reply.status, reply.fail_info) == (msg.PkiStatus.FAILURE, msg.FailInfo.BAD_REQUEST)


def test_get_cert_and_get_crl_by_issuer_and_serial(ca, served):
    client = ScepClient.new(served, "gw")
    client.enroll()
    [outcome] = ca.approve([scep_requests(ca)[0].id])
    serial = outcome.certificate.serial
    content = msg.issuer_and_serial_der(ca.issuing_cert().subject, serial)
    got = client.ask(msg.MessageType.GET_CERT, content)
    assert got.status == msg.PkiStatus.SUCCESS and got.certs[0].serial_number == serial
    crl = client.ask(msg.MessageType.GET_CRL, content)
    assert crl.status == msg.PkiStatus.SUCCESS and crl.crl == ca.published_crl(der=True)
    unknown = client.ask(msg.MessageType.GET_CERT, msg.issuer_and_serial_der(ca.issuing_cert().subject, 12345))
    assert (unknown.status, unknown.fail_info) == (msg.PkiStatus.FAILURE, msg.FailInfo.BAD_CERT_ID)


@pytest.mark.parametrize("cipher", ["aes128_cbc", "aes256_cbc", "tripledes_3key"])
def test_each_content_cipher_over_get_and_the_answer_uses_it(ca, served, cipher, tmp_path):
    client = ScepClient.new(served, f"dev-{cipher}")
    client.cipher = cipher
    answer = client.send(client.message(msg.MessageType.PKCS_REQ, csr_der(client.key, f"dev-{cipher}")), get=True)
    assert client.open(answer.body).status == msg.PkiStatus.PENDING
    ca.approve([scep_requests(ca)[0].id])
    answer = client.send(client.message(msg.MessageType.CERT_POLL,
                                        msg.issuer_and_subject_der(ca.issuing_cert().subject, client.cert.subject)))  # fmt: skip
    signed, _, _ = msg.read_header(answer.body)
    envelope = cms.ContentInfo.load(signed["encap_content_info"]["content"].native)
    algorithm = envelope["content"]["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"].native
    assert algorithm == cipher
    if cipher != "tripledes_3key":
        assert client.open(answer.body).status == msg.PkiStatus.SUCCESS
        return
    # cryptography decrypts AES only: openssl opens the DES3 answer, as an old client would.
    files = {name: tmp_path / name for name in ("env.der", "me.pem", "me.key")}
    files["env.der"].write_bytes(signed["encap_content_info"]["content"].native)
    files["me.pem"].write_bytes(client.cert.public_bytes(Encoding.PEM))
    files["me.key"].write_bytes(client.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    inner = run(["openssl", "cms", "-decrypt", "-inform", "DER", "-in", str(files["env.der"]), "-recip",
                 str(files["me.pem"]), "-inkey", str(files["me.key"]), "-binary"]).stdout  # fmt: skip
    assert [c.serial_number for c in pkcs7.load_der_pkcs7_certificates(inner)] == [
        ca.certificate(scep_requests(ca)[0].id).serial
    ]


def test_renewal_signed_by_a_foreign_certificate_or_changing_the_subject_is_refused(ca, served):
    client = ScepClient.new(served, "renew-me")
    client.enroll()
    ca.approve([scep_requests(ca)[0].id])
    issued = client.poll(ca).certs[0]
    before = snapshot_home(ca.home)
    foreign = ScepClient.new(served, "renew-me", transaction_id="foreign")
    assert foreign.ask(msg.MessageType.RENEWAL_REQ, csr_der(rsa_key(1), "renew-me")).fail_info == "2"
    renamer = ScepClient(served, client.ra, client.key, issued, "renamed")
    assert renamer.ask(msg.MessageType.RENEWAL_REQ, csr_der(rsa_key(1), "someone-else")).fail_info == "2"
    assert snapshot_home(ca.home) == before
    ca.revoke(scep_requests(ca)[0].id)
    revoked = ScepClient(served, client.ra, client.key, issued, "after-revoke")
    assert revoked.ask(msg.MessageType.RENEWAL_REQ, csr_der(rsa_key(1), "renew-me")).fail_info == "2"


def test_a_damaged_transaction_log_is_named_and_nothing_is_stored(ca, served):
    (ca.home / "scep").mkdir(exist_ok=True)
    (ca.home / TRANSACTIONS).write_bytes(b'{"t": "x", "id": 1, "spki": "ab"}\nnot json\n')
    before = snapshot_home(ca.home)
    lines: list[str] = []
    served.service._log = lines.append
    client = ScepClient.new(served, "victim")
    answer = client.send(client.message(msg.MessageType.PKCS_REQ, csr_der(client.key, "victim")))
    assert answer.status == 500 and answer.body.count(b"\n") == 1
    assert any(str(ca.home / TRANSACTIONS) in line for line in lines)
    assert snapshot_home(ca.home) == before


def test_an_unterminated_last_line_is_a_write_never_acknowledged(ca, served):
    client = ScepClient.new(served, "torn")
    client.enroll()
    log = ca.home / TRANSACTIONS
    log.write_bytes(log.read_bytes() + b'{"t": "half')
    other = ScepClient.new(served, "torn-2")
    assert other.enroll().status == msg.PkiStatus.PENDING
    assert b"half" not in log.read_bytes() and log.read_bytes().count(b"\n") == 2
    assert client.poll(ca).status == msg.PkiStatus.PENDING


def test_a_full_queue_is_503_and_stores_nothing(ca, tmp_path):
    with serving(ScepService(ca, max_queued=1, log=lambda line: None)) as running:
        ScepClient.new(running, "first").enroll()
        before = snapshot_home(ca.home)
        late = ScepClient.new(running, "second")
        answer = late.send(late.message(msg.MessageType.PKCS_REQ, csr_der(late.key, "second")))
        assert answer.status == 503 and answer.body.count(b"\n") == 1
        assert snapshot_home(ca.home) == before
