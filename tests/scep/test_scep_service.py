"""SCEP through the real aiohttp routes: capabilities, CA certificates, PKCSReq → PENDING → SUCCESS / FAILURE."""

from __future__ import annotations

import pytest
from scep_support import ScepClient, http_get, scep_ca, serving

from tui_ca.engine import RequestStatus
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.service import ScepService


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
    from cryptography.hazmat.primitives.serialization import pkcs7

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
    assert len(ca.requests()) == 1


def test_rejection_reaches_the_client_as_bad_request(ca, served):
    client = ScepClient.new(served, "phone-7")
    assert client.enroll().status == msg.PkiStatus.PENDING
    ca.reject(ca.requests()[0].id, "not one of ours")
    reply = client.poll(ca)
    assert (reply.status, reply.fail_info) == (msg.PkiStatus.FAILURE, msg.FailInfo.BAD_REQUEST)


def test_get_cert_and_get_crl_by_issuer_and_serial(ca, served):
    client = ScepClient.new(served, "gw")
    client.enroll()
    [outcome] = ca.approve([ca.requests()[0].id])
    serial = outcome.certificate.serial
    content = msg.issuer_and_serial_der(ca.issuing_cert().subject, serial)
    got = client.ask(msg.MessageType.GET_CERT, content)
    assert got.status == msg.PkiStatus.SUCCESS and got.certs[0].serial_number == serial
    crl = client.ask(msg.MessageType.GET_CRL, content)
    assert crl.status == msg.PkiStatus.SUCCESS and crl.crl == ca.published_crl(der=True)
    unknown = client.ask(msg.MessageType.GET_CERT, msg.issuer_and_serial_der(ca.issuing_cert().subject, 12345))
    assert (unknown.status, unknown.fail_info) == (msg.PkiStatus.FAILURE, msg.FailInfo.BAD_CERT_ID)
