"""Hostile SCEP input: each is refused with a SCEP FAILURE or an HTTP status and one line, and nothing is stored."""

from __future__ import annotations

import base64

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.asymmetric import ec
from scep_support import ScepClient, csr_der, http_get, http_post, rsa_key, scep_ca, scep_requests, self_signed, serving

from tests.helpers import snapshot_home
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.routes import MAX_MESSAGE, MAX_QUERY
from tui_ca.server.scep.service import ScepService
from tui_ca.server.scep.state import TRANSACTIONS


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return scep_ca(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def served(ca):
    with serving(ScepService(ca, log=lambda line: None)) as running:
        yield running


@pytest.fixture
def unchanged(ca):
    """The home is byte-identical after the test body."""
    before = snapshot_home(ca.home)
    yield
    assert snapshot_home(ca.home) == before


def one_line(answer, status: int) -> str:
    assert answer.status == status, answer.body
    assert answer.content_type.startswith("text/plain")
    assert answer.body.endswith(b"\n") and answer.body.count(b"\n") == 1
    return answer.body.decode()


def failure(client: ScepClient, der: bytes) -> str:
    reply = client.open(client.send(der).body)
    assert reply.status == msg.PkiStatus.FAILURE
    return reply.fail_info


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"\x30\x03\x02\x01\x00", b"\x30\x80" + b"\x00" * 40, b"\x30\x82\xff\xff" + b"\x04" * 100],
    ids=["empty", "text", "not-content-info", "indefinite", "truncated"],
)
def test_malformed_pkcs7_is_400(served, unchanged, body):
    text = one_line(http_post(served.port, "/scep?operation=PKIOperation", body), 400)
    assert "Traceback" not in text


def test_signed_data_without_scep_attributes_is_400(served, unchanged):
    client = ScepClient.new(served, "no-attrs", key=rsa_key(0))
    der = msg.sign_pki_message(b"x", {}, client.cert, client.key)
    assert "transactionID" in one_line(client.send(der), 400)


def test_wrong_recipient_is_bad_message_check(served, unchanged):
    client = ScepClient.new(served, "wrong-rcpt", key=rsa_key(0))
    stranger = self_signed(rsa_key(1), "not the RA")
    der = client.message(msg.MessageType.PKCS_REQ, csr_der(client.key, "wrong-rcpt"), recipient=stranger)
    assert failure(client, der) == msg.FailInfo.BAD_MESSAGE_CHECK


def test_bad_signature_is_bad_message_check(served, unchanged):
    client = ScepClient.new(served, "bad-sig", key=rsa_key(0))
    der = bytearray(client.message(msg.MessageType.PKCS_REQ, csr_der(client.key, "bad-sig")))
    der[-5] ^= 0x01  # the signature is the last field of the message
    assert failure(client, bytes(der)) == msg.FailInfo.BAD_MESSAGE_CHECK


def test_content_changed_after_signing_is_bad_message_check(served, unchanged):
    client = ScepClient.new(served, "digest", key=rsa_key(0))
    good = client.message(msg.MessageType.PKCS_REQ, csr_der(client.key, "digest"))
    envelope = msg.envelope(csr_der(client.key, "other-cn"), served.service.ra.cert)
    # Same signed attributes, other content: the messageDigest no longer matches.
    info = cms.ContentInfo.load(good)
    info["content"]["encap_content_info"]["content"] = envelope
    der = info.dump(force=True)
    assert failure(client, der) == msg.FailInfo.BAD_MESSAGE_CHECK


def test_csr_of_another_key_is_bad_request(served, unchanged):
    client = ScepClient.new(served, "mismatch", key=rsa_key(0))
    der = client.message(msg.MessageType.PKCS_REQ, csr_der(rsa_key(1), "mismatch"))
    assert failure(client, der) == msg.FailInfo.BAD_REQUEST


def test_ec_signer_is_bad_alg(served, unchanged):
    key = ec.generate_private_key(ec.SECP256R1())
    client = ScepClient(served, served.service.ra.cert, key, self_signed(key, "ec"), "ec-tx")
    der = client.message(msg.MessageType.PKCS_REQ, csr_der(key, "ec"))
    reply = client.send(der)
    assert reply.status == 200
    signed, signer, _ = msg.read_header(reply.body)
    assert msg._attribute(signer["signed_attrs"], "scep_fail_info") == msg.FailInfo.BAD_ALG


def test_poll_for_an_unknown_transaction_is_bad_cert_id(ca, served, unchanged):
    client = ScepClient.new(served, "ghost", key=rsa_key(0), transaction_id="never-seen")
    assert client.poll(ca).fail_info == msg.FailInfo.BAD_CERT_ID


def test_replayed_transaction_id_with_another_key_is_refused(ca, served):
    owner = ScepClient.new(served, "owner-1", key=rsa_key(2), transaction_id="tx-replay")
    assert owner.enroll().status == msg.PkiStatus.PENDING
    before = snapshot_home(ca.home)
    thief = ScepClient.new(served, "owner-1", key=rsa_key(3), transaction_id="tx-replay")
    assert thief.enroll().fail_info == msg.FailInfo.BAD_REQUEST
    assert thief.poll(ca).fail_info == msg.FailInfo.BAD_REQUEST
    ca.approve([scep_requests(ca)[-1].id])
    # Even once issued, the certificate goes only to the key that opened the transaction.
    assert thief.poll(ca).fail_info == msg.FailInfo.BAD_REQUEST
    assert owner.poll(ca).status == msg.PkiStatus.SUCCESS
    assert {k: v for k, v in snapshot_home(ca.home).items() if k == TRANSACTIONS} == {
        TRANSACTIONS: before[TRANSACTIONS]
    }


def test_oversize_post_and_get_are_refused(served, unchanged):
    assert "larger" in one_line(
        http_post(served.port, "/scep?operation=PKIOperation", b"\x30" * (MAX_MESSAGE + 1)), 413
    )
    query = base64.b64encode(b"\x30" * (MAX_MESSAGE + 1)).decode()
    assert "larger" in one_line(http_get(served.port, f"/scep?operation=PKIOperation&message={query}"), 414)
    longer = "A" * (MAX_QUERY + 100 - len("operation=PKIOperation&message="))
    assert "longer" in one_line(http_get(served.port, f"/scep?operation=PKIOperation&message={longer}"), 414)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/scep?operation=Nope", 400),
        ("GET", "/scep", 400),
        ("GET", "/scep?operation=PKIOperation", 400),
        ("GET", "/scep?operation=PKIOperation&message=%%%", 400),
        ("POST", "/scep?operation=GetCACert", 405),
    ],
)
def test_wrong_operations_are_one_line(served, unchanged, method, path, status):
    answer = http_get(served.port, path) if method == "GET" else http_post(served.port, path, b"")
    one_line(answer, status)


def test_two_keys_racing_with_one_transaction_id_queue_one_request(ca, served):
    from concurrent.futures import ThreadPoolExecutor

    racers = [ScepClient.new(served, f"racer-{n}", key=rsa_key(4 + n), transaction_id="tx-race") for n in range(4)]
    bodies = [r.message(msg.MessageType.PKCS_REQ, csr_der(r.key, f"racer-{n}")) for n, r in enumerate(racers)]
    before = {r.id for r in scep_requests(ca)}
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda pair: pair[0].open(pair[0].send(pair[1]).body), zip(racers, bodies, strict=True))
        )
    assert sorted(a.status for a in answers) == [msg.PkiStatus.FAILURE] * 3 + [msg.PkiStatus.PENDING]
    assert len({r.id for r in scep_requests(ca)} - before) == 1


@pytest.mark.parametrize("transaction_id", ["tx\x1b[31mred", "x" * 129, "naïve"])
def test_a_transaction_id_that_cannot_go_into_the_audit_is_400(served, unchanged, transaction_id):
    client = ScepClient.new(served, "odd-tx", key=rsa_key(0), transaction_id=transaction_id)
    der = client.message(msg.MessageType.PKCS_REQ, csr_der(client.key, "odd-tx"))
    assert "transactionID" in one_line(client.send(der), 400)


def test_client_text_reaches_the_log_escaped(ca):
    lines: list[str] = []
    with serving(ScepService(ca, log=lines.append)) as running:
        client = ScepClient.new(running, "esc", key=rsa_key(0), transaction_id="tx-esc")
        envelope = msg.envelope(b"\x30\x00", running.ra_cert)
        der = msg.sign_pki_message(envelope, {"scep_message_type": "\x1b[2J99", "scep_transaction_id": "tx-esc",
                                              "scep_sender_nonce": b"n" * 16}, client.cert, client.key)  # fmt: skip
        client.last_nonce = b"n" * 16
        assert client.open(client.send(der).body).fail_info == msg.FailInfo.BAD_REQUEST
    assert lines and all("\x1b" not in line and "\n" not in line for line in lines)
    assert any("\\x1b[2J99" in line for line in lines)
