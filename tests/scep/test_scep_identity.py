"""SCEP requests are held to the same requester-identity rules as EST, and FAILURE answers name no one else's IDs."""

from __future__ import annotations

import pytest
from scep_support import ScepClient, csr_der, scep_ca, scep_requests, serving

from tests.helpers import csr_der as der_of
from tests.helpers import make_csr, run_cli, snapshot_home
from tui_ca.engine import RequestStatus
from tui_ca.engine.applicant import NamePatterns
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.service import ScepService
from tui_ca.server.scep.state import Challenges


@pytest.fixture
def ca(tmp_path):
    return scep_ca(tmp_path)


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def served(ca, lines):
    with serving(ScepService(ca, log=lines.append, reserved=NamePatterns(("bob", "lab-*")))) as running:
        yield running


def test_pkcsreq_cannot_take_a_name_an_est_user_owns(ca, served, lines):
    before = snapshot_home(ca.home)
    for name in ("bob", "lab-3"):
        reply = ScepClient.new(served, name).enroll()
        assert (reply.status, reply.fail_info) == (msg.PkiStatus.FAILURE, msg.FailInfo.BAD_REQUEST)
    assert snapshot_home(ca.home) == before
    assert sum("belongs to an EST user" in line for line in lines) == 2
    assert ScepClient.new(served, "router-2").enroll().status == msg.PkiStatus.PENDING


def test_pkcsreq_cannot_take_a_name_the_admin_queued(ca, served, lines):
    queued = ca.submit(der_of(make_csr("ec-p256", cn="gw-1")), requester="gw-1").request
    reply = ScepClient.new(served, "gw-1").enroll()
    assert (reply.status, reply.fail_info) == (msg.PkiStatus.FAILURE, msg.FailInfo.BAD_REQUEST)
    # The client gets a status and a failInfo only; the server log keeps which request stood in the way.
    assert any(f"holds request {queued.id}" in line for line in lines)
    assert [r.id for r in ca.requests(RequestStatus.QUEUED)] == [queued.id]


def test_a_challenge_minted_for_a_requester_vouches_for_that_name(ca, served):
    Challenges(ca.home).set_required(True)
    password = run_cli(ca.home, "scep-challenge", "--requester", "bob", check=True).stdout.decode().strip()
    client = ScepClient.new(served, "bob")
    assert client.enroll(csr=csr_der(client.key, "bob", challenge=password)).status == msg.PkiStatus.PENDING
    [request] = scep_requests(ca)
    assert (request.requester, request.via) == ("bob", "challenge")


def test_an_open_challenge_does_not_vouch_for_an_owned_name(ca, served):
    Challenges(ca.home).set_required(True)
    password = run_cli(ca.home, "scep-challenge", check=True).stdout.decode().strip()
    client = ScepClient.new(served, "lab-1")
    assert client.enroll(csr=csr_der(client.key, "lab-1", challenge=password)).fail_info == "2"
    other = ScepClient.new(served, "kiosk-2")
    # Unspent by the refusal, the password still works for a name no one owns.
    assert other.enroll(csr=csr_der(other.key, "kiosk-2", challenge=password)).status == msg.PkiStatus.PENDING
    assert [(r.requester, r.via) for r in scep_requests(ca)] == [("kiosk-2", "anonymous")]
