"""SCEP's PKIOperation fuzzed with hypothesis through the real aiohttp routes.

Inputs: garbage, and valid pkiMessages (PKCSReq, CertPoll, GetCert, GetCRL)
mutated by bit flips, truncation, insertion and splicing, sent by POST and by
GET. Invariants, per case: never a 5xx; a 200 is a CertRep the RA signed; an
HTTP refusal is one line of text; a refusal (FAILURE or 4xx) leaves the home
byte-identical. At the end the server still answers and the store holds only
requests that were answered PENDING.

Fast profile by default; ``TUI_CA_LONG=1`` runs thousands of cases.
"""

from __future__ import annotations

import base64
import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scep_support import ScepClient, csr_der, http_get, http_post, rsa_key, scep_ca, scep_requests, serving

from tests.helpers import snapshot_home
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.service import ScepService

LONG = os.environ.get("TUI_CA_LONG") == "1"
EXAMPLES = 3000 if LONG else 120
_SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": not LONG,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    ca = scep_ca(tmp_path_factory.mktemp("fuzz"))
    lines: list[str] = []
    with serving(ScepService(ca, log=lines.append)) as served:
        client = ScepClient.new(served, "fuzz-seed", key=rsa_key(0), transaction_id="fuzz-seed")
        assert client.enroll().status == msg.PkiStatus.PENDING
        [request] = scep_requests(ca)
        [outcome] = ca.approve([request.id])
        issuer = ca.issuing_cert().subject
        serial = msg.issuer_and_serial_der(issuer, outcome.certificate.serial)
        seeds = [
            client.message(msg.MessageType.PKCS_REQ, csr_der(client.key, "fuzz-seed")),
            client.message(msg.MessageType.CERT_POLL, msg.issuer_and_subject_der(issuer, client.cert.subject)),
            client.message(msg.MessageType.GET_CERT, serial),
            client.message(msg.MessageType.GET_CRL, serial),
        ]
        other = ScepClient.new(served, "fuzz-new", key=rsa_key(1), transaction_id="fuzz-new")
        seeds.append(other.message(msg.MessageType.PKCS_REQ, csr_der(other.key, "fuzz-new")))
        yield ca, served, seeds, lines


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            donor = draw(st.sampled_from(seeds))
            data[at:] = donor[draw(st.integers(0, len(donor) - 1)) :]
    return bytes(data)


def check(world, body: bytes, via_get: bool) -> None:
    ca, served, _, _ = world
    before = snapshot_home(ca.home)
    if via_get:
        answer = http_get(served.port, f"/scep?operation=PKIOperation&message={quote(base64.b64encode(body))}")
    else:
        answer = http_post(served.port, "/scep?operation=PKIOperation", body)
    assert answer.status < 500, answer.body
    if answer.status != 200:
        assert answer.content_type.startswith("text/plain")
        assert answer.body.endswith(b"\n") and answer.body.count(b"\n") == 1
        assert snapshot_home(ca.home) == before
        return
    assert answer.content_type == "application/x-pki-message"
    signed, signer, header = msg.read_header(answer.body)
    msg._verify_signature(signer, served.service.ra.cert, header)
    status = msg._attribute(signer["signed_attrs"], "scep_pki_status")
    if status == msg.PkiStatus.FAILURE:
        assert snapshot_home(ca.home) == before


@settings(max_examples=EXAMPLES, **_SETTINGS)
@given(data=st.data())
def test_mutated_pki_messages(world, data):
    body = data.draw(mutated(world[2]))
    check(world, body, data.draw(st.booleans()))


@settings(max_examples=EXAMPLES // 3, **_SETTINGS)
@given(body=st.binary(max_size=2048), via_get=st.booleans())
def test_garbage(world, body, via_get):
    check(world, body, via_get)


def test_afterwards_the_server_still_serves_and_stored_only_what_it_queued(world):
    ca, served, _, lines = world
    assert http_get(served.port, "/scep?operation=GetCACaps").status == 200
    # Only the seed requester and (at most) the second seed's request exist: mutations made nothing new.
    assert {r.requester for r in scep_requests(ca)} <= {"fuzz-seed", "fuzz-new"}
    assert not any("Traceback" in line for line in lines)
    assert ca.verify_audit() == []
