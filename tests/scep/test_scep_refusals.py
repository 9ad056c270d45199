"""SCEP enrollments refused are kept for the admins (issue 13), each once, through the real routes."""

from __future__ import annotations

import pytest
from scep_support import ScepClient, csr_der, http_post, rsa_key, scep_ca, serving

from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.service import ScepService


@pytest.fixture
def ca(tmp_path):
    return scep_ca(tmp_path)


@pytest.fixture
def served(ca):
    with serving(ScepService(ca, log=lambda line: None)) as running:
        yield running


def test_an_engine_refusal_is_recorded_once_with_the_peer(ca, served):
    assert ScepClient.new(served, "router-1").enroll().status == msg.PkiStatus.PENDING
    other = ScepClient.new(served, "router-1", key=rsa_key(1))
    reply = other.enroll()
    assert (reply.status, reply.fail_info) == (msg.PkiStatus.FAILURE, msg.FailInfo.BAD_REQUEST)
    [refusal] = ca.refusals()
    assert "already has request" in refusal.reason
    assert (refusal.source, refusal.user, refusal.address) == ("scep", "scep", "127.0.0.1")
    assert refusal.subject == "CN=router-1"


def test_a_refusal_before_intake_is_recorded(ca, served):
    client = ScepClient.new(served, "signer")
    # A PKCSReq signed with another key than its CSR's.
    reply = client.ask(msg.MessageType.PKCS_REQ, csr_der(rsa_key(1), "someone-else"))
    assert reply.status == msg.PkiStatus.FAILURE
    [refusal] = ca.refusals()
    assert refusal.reason == "a PKCSReq must be signed with the key of its CSR"
    assert refusal.subject == "CN=someone-else" and refusal.source == "scep"


def test_a_full_queue_and_a_malformed_message_are_recorded(ca):
    with serving(ScepService(ca, max_queued=1, log=lambda line: None)) as running:
        ScepClient.new(running, "first").enroll()
        late = ScepClient.new(running, "second")
        assert late.send(late.message(msg.MessageType.PKCS_REQ, csr_der(late.key, "second"))).status == 503
        assert http_post(running.port, "/scep?operation=PKIOperation", b"\x30\x03junk").status == 400
    malformed, full = ca.refusals()
    assert full.reason.startswith("the queue is full") and full.subject == "CN=second"
    assert malformed.reason.startswith("not a SCEP pkiMessage") and malformed.subject is None


def test_a_poll_for_an_unknown_transaction_is_no_submission(ca, served):
    client = ScepClient.new(served, "poller")
    assert client.poll(ca).fail_info == msg.FailInfo.BAD_CERT_ID
    assert ca.refusals() == []
