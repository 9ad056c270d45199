"""OCSP answers from the in-memory set of issued serials stay exact.

The responder holds every issued serial in a compact set made once from the
listing; a serial issued after the set was made is found in the store's
index, and a revocation made by another process shows in the very next
answer, whether that answer was kept, is signed on the event loop or in the
executor.
"""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.server.support import enrolled, make_csr
from tests.server.test_status import issue, ocsp_request, post_ocsp
from tui_ca.engine.reader import CAReader
from tui_ca.server import ocsp as ocsp_module
from tui_ca.server.ocsp import Answer, Responder
from tui_ca.server.serial_set import SerialSet

WAIT = 120.0


def _cli(live_ca, *args: str) -> None:
    result = subprocess.run(["tui-ca", "--home", str(live_ca.home), *args], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()


def _issued(live_ca, cn: str) -> x509.Certificate:
    """A certificate issued in this process, without a server."""
    live_ca.submit(make_csr(cn)[0], requester=cn)
    request_id = live_ca.requests()[-1].id
    live_ca.approve([request_id])
    return x509.load_pem_x509_certificate(live_ca.certificate_pem(request_id))


def _status(answer: Answer | None) -> ocsp.OCSPCertStatus:
    assert answer is not None
    return ocsp.load_der_ocsp_response(answer.body).certificate_status


def _ready(live_ca, cn: str) -> tuple[Responder, x509.Certificate, x509.Certificate]:
    """A responder that has answered good for a new certificate and made its set of issued serials."""
    responder = Responder(CAReader(live_ca.home))
    issuer = live_ca.issuing_cert()
    cert = _issued(live_ca, cn)
    assert _status(responder.respond(ocsp_request(cert, issuer))) == ocsp.OCSPCertStatus.GOOD
    assert responder.wait_serials(WAIT)
    return responder, issuer, cert


def test_the_serial_set_holds_exactly_what_it_was_made_from():
    fitting = [0, 1, 255, 256, 2**64, 2**159 + 12345, 2**160 - 1]
    odd = [2**160, 2**200 + 7, -1, -(2**70)]  # wider than 20 octets, or negative
    serials = SerialSet([*reversed(fitting), *odd, 1, 2**64])
    for serial in fitting + odd:
        assert serial in serials
    for absent in (2, 254, 257, 2**64 - 1, 2**64 + 1, 2**159 + 12344, 2**160 - 2, 2**160 + 1, -2):
        assert absent not in serials
    assert "1" not in serials
    empty = SerialSet([])
    assert len(empty) == 0 and 0 not in empty and 2**100 not in empty


def test_a_serial_set_of_random_serials_finds_each_and_nothing_else():
    made = {int.from_bytes(os.urandom(20), "big") >> 1 for _ in range(3000)}
    serials = SerialSet(made)
    assert len(serials) == len(made)
    assert all(serial in serials for serial in made)
    neighbours = {serial + step for serial in made for step in (-1, 1)} - made
    assert not any(serial in serials for serial in neighbours)


def test_serials_issued_after_the_set_was_made_are_good_and_then_answered_from_memory(live_ca):
    responder = Responder(CAReader(live_ca.home))
    issuer = live_ca.issuing_cert()
    question = ocsp_request(_issued(live_ca, "first"), issuer)
    # Nothing looked at yet: the loop cannot answer, the executor can (and starts making the set).
    assert responder.answer_now(question) is None
    assert _status(responder.respond(question)) == ocsp.OCSPCertStatus.GOOD
    assert responder.wait_serials(WAIT)
    assert responder.answer_now(question) is not None

    later = _issued(live_ca, "later")
    late_question = ocsp_request(later, issuer)
    # A commit since: only the executor path looks at it. The serial is not in the set, but in the store.
    assert responder.answer_now(late_question) is None
    assert _status(responder.respond(late_question)) == ocsp.OCSPCertStatus.GOOD
    # Known in memory now: even a request with a nonce (never kept) is signed without the store.
    nonce = os.urandom(16)
    with_nonce = ocsp_request(later, issuer, nonce=nonce)
    signed_now = responder.answer_now(with_nonce)
    assert _status(signed_now) == ocsp.OCSPCertStatus.GOOD
    assert (
        ocsp.load_der_ocsp_response(signed_now.body).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        == nonce
    )

    live_ca.revoke(f"0x{later.serial_number:x}")
    assert responder.answer_now(with_nonce) is None  # the revocation is a commit: looked at in the executor
    assert _status(responder.respond(with_nonce)) == ocsp.OCSPCertStatus.REVOKED
    assert _status(responder.answer_now(late_question)) == ocsp.OCSPCertStatus.REVOKED


def test_a_serial_never_issued_is_unknown_until_the_next_commit(live_ca):
    responder, issuer, cert = _ready(live_ca, "real")
    real = ocsp.load_der_ocsp_request(ocsp_request(cert, issuer))
    stranger = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(real.issuer_name_hash, real.issuer_key_hash, cert.serial_number + 1, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    assert _status(responder.respond(stranger)) == ocsp.OCSPCertStatus.UNKNOWN
    # Kept in memory while nothing is committed; the next commit may issue it, so it is looked up again.
    assert _status(responder.answer_now(stranger)) == ocsp.OCSPCertStatus.UNKNOWN
    _issued(live_ca, "another")
    assert responder.answer_now(stranger) is None
    assert _status(responder.respond(stranger)) == ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.parametrize("kept", [True, False], ids=["kept-answer", "nonce"])
def test_the_live_server_follows_other_processes_with_the_set_made(client, live_ca, server, kept):
    cert = issue(client, live_ca, "watched")
    cert_id = str(enrolled(live_ca)[-1].id)
    issuer = live_ca.issuing_cert()

    def question() -> bytes:
        return ocsp_request(cert, issuer, nonce=None if kept else os.urandom(16))

    assert post_ocsp(client, question()).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert server.context.responder.wait_serials(WAIT)
    assert post_ocsp(client, question()).certificate_status == ocsp.OCSPCertStatus.GOOD
    _cli(live_ca, "revoke", cert_id, "--reason", "keyCompromise")
    revoked = post_ocsp(client, question())
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is not None and revoked.revocation_reason.name == "key_compromise"

    # Issued by another process after the set was made: good.
    client.enroll(make_csr("newcomer")[0])
    newcomer_id = live_ca.requests()[-1].id
    _cli(live_ca, "approve", str(newcomer_id))
    newcomer = x509.load_pem_x509_certificate(live_ca.certificate_pem(newcomer_id))
    assert post_ocsp(client, ocsp_request(newcomer, issuer)).certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("parameters", [True, False], ids=["null-parameters", "absent-parameters"])
def test_the_answer_repeats_the_certid_byte_for_byte(live_ca, parameters):
    cert = _issued(live_ca, "echoed")
    real = asn1_ocsp.OCSPRequest.load(ocsp_request(cert, live_ca.issuing_cert()))
    cert_id = real["tbs_request"]["request_list"][0]["req_cert"]
    algorithm = {"algorithm": "sha1", "parameters": core.Null() if parameters else None}
    asked = asn1_ocsp.CertId({**cert_id.native, "hash_algorithm": algorithm})
    der = asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": asked}]}}).dump()
    assert (b"\x05\x00" in asked["hash_algorithm"].dump()) is parameters
    answer = Responder(CAReader(live_ca.home)).respond(der)
    basic = asn1_ocsp.OCSPResponse.load(answer.body)["response_bytes"]["response"].parsed
    single = basic["tbs_response_data"]["responses"][0]
    assert single["cert_id"].dump() == asked.dump()
    assert single["cert_status"].name == "good"


def test_mangled_requests_get_an_ocsp_answer_never_an_exception(live_ca):
    responder = Responder(CAReader(live_ca.home))
    good = ocsp_request(_issued(live_ca, "mangled"), live_ca.issuing_cert())
    with_nonce = ocsp_request(_issued(live_ca, "mangled2"), live_ca.issuing_cert(), nonce=b"n" * 16)
    chance = random.Random(5)
    for base in (good, with_nonce):
        for _ in range(400):
            der = bytearray(base)
            for _ in range(chance.randint(1, 3)):
                der[chance.randrange(len(der))] = chance.randrange(256)
            cut = bytes(der[: chance.randint(len(der) - 3, len(der))])
            answer = responder.respond(cut)
            # Read leniently: a CertID that the client encoded loosely is repeated as it came.
            status = asn1_ocsp.OCSPResponse.load(answer.body)["response_status"].native
            assert status in ("successful", "malformed_request", "unauthorized")


def test_serials_issued_since_are_folded_into_a_new_set_past_a_bound(live_ca, monkeypatch):
    monkeypatch.setattr(ocsp_module, "_MAX_EXTRA", 2)
    responder = Responder(CAReader(live_ca.home))
    issuer = live_ca.issuing_cert()
    assert _status(responder.respond(ocsp_request(_issued(live_ca, "first"), issuer))) == ocsp.OCSPCertStatus.GOOD
    assert responder.wait_serials(WAIT)
    made = responder._serials
    later = [_issued(live_ca, f"later-{n}") for n in range(2)]
    for cert in later:
        assert _status(responder.respond(ocsp_request(cert, issuer))) == ocsp.OCSPCertStatus.GOOD
    deadline = time.monotonic() + WAIT
    while responder._serials is made and time.monotonic() < deadline:
        time.sleep(0.05)
    remade = responder._serials
    assert remade is not made and remade is not None
    assert all(cert.serial_number in remade for cert in later)
    assert not responder._known  # every serial found in the store since is in the new set
    with_nonce = ocsp_request(later[0], issuer, nonce=os.urandom(8))
    assert _status(responder.answer_now(with_nonce)) == ocsp.OCSPCertStatus.GOOD


def test_a_signer_slow_to_sign_never_signs_on_the_event_loop(live_ca):
    responder, issuer, cert = _ready(live_ca, "rsa-signed")
    fresh = ocsp_request(cert, issuer, nonce=os.urandom(16))
    assert responder.answer_now(fresh) is not None  # ECDSA (what server-setup makes): signed on the loop
    responder._signer.quick = False  # as an RSA signer is: milliseconds a signature
    assert responder.answer_now(ocsp_request(cert, issuer, nonce=os.urandom(16))) is None
    assert _status(responder.respond(fresh)) == ocsp.OCSPCertStatus.GOOD
    # A kept answer costs no signature: still given on the loop.
    assert _status(responder.answer_now(ocsp_request(cert, issuer))) == ocsp.OCSPCertStatus.GOOD
