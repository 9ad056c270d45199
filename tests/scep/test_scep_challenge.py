"""Challenge passwords: off by default; once required, one-time, bound, expiring, checked before anything is stored."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from scep_support import ScepClient, csr_der, scep_ca, scep_requests, serving

from tests.helpers import assert_refused, run_cli, snapshot_home
from tui_ca.engine import RequestStatus
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.service import ScepService
from tui_ca.server.scep.state import CHALLENGES, SETTINGS, Challenges


@pytest.fixture
def ca(tmp_path):
    return scep_ca(tmp_path)


@pytest.fixture
def served(ca):
    with serving(ScepService(ca, log=lambda line: None)) as running:
        yield running


def mint(ca, *args: str) -> str:
    result = run_cli(ca.home, "scep-challenge", *args, check=True)
    return result.stdout.decode().strip()


def submit_audit(ca):
    return [r for r in ca.audit_records() if r.action == "submit"]


def test_off_by_default_a_request_without_challenge_is_queued(ca, served):
    assert ScepClient.new(served, "plain").enroll().status == msg.PkiStatus.PENDING
    assert "challenge" not in submit_audit(ca)[-1].extra


def test_required_challenge_is_one_time_and_recorded_as_matched(ca, served):
    assert (
        run_cli(ca.home, "scep-challenge", "--require", check=True)
        .stdout.decode()
        .startswith("SCEP challenge passwords are now required")
    )
    password = mint(ca)
    stored = (ca.home / CHALLENGES).read_text()
    assert password not in stored and len(json.loads(stored)["challenges"]) == 1

    before = snapshot_home(ca.home)
    missing = ScepClient.new(served, "no-password").enroll()
    assert (missing.status, missing.fail_info) == (msg.PkiStatus.FAILURE, msg.FailInfo.BAD_REQUEST)
    wrong = ScepClient.new(served, "wrong")
    assert wrong.enroll(csr=csr_der(wrong.key, "wrong", challenge=password[:-1] + "x")).fail_info == "2"
    assert snapshot_home(ca.home) == before

    client = ScepClient.new(served, "laptop-3")
    assert client.enroll(csr=csr_der(client.key, "laptop-3", challenge=password)).status == msg.PkiStatus.PENDING
    assert submit_audit(ca)[-1].extra["challenge"] == "matched"
    assert json.loads((ca.home / CHALLENGES).read_text())["challenges"] == []
    # The same transaction polls on without it; another key cannot spend it again.
    assert client.poll(ca).status == msg.PkiStatus.PENDING
    again = ScepClient.new(served, "laptop-4")
    assert again.enroll(csr=csr_der(again.key, "laptop-4", challenge=password)).fail_info == "2"
    assert len(scep_requests(ca)) == 1


def test_a_challenge_for_one_requester_does_not_work_for_another(ca, served):
    Challenges(ca.home).set_required(True)
    password = mint(ca, "--requester", "Printer-9", "--ttl", "30m")
    other = ScepClient.new(served, "printer-8")
    assert other.enroll(csr=csr_der(other.key, "printer-8", challenge=password)).fail_info == "2"
    right = ScepClient.new(served, "printer-9")
    assert right.enroll(csr=csr_der(right.key, "printer-9", challenge=password)).status == msg.PkiStatus.PENDING
    assert [r.requester for r in ca.requests(RequestStatus.QUEUED)] == ["printer-9"]


def test_an_expired_challenge_is_refused(ca, served):
    Challenges(ca.home).set_required(True)
    minted = Challenges(ca.home).mint(ca.now() - timedelta(minutes=5), ttl=timedelta(minutes=1))
    client = ScepClient.new(served, "late")
    assert client.enroll(csr=csr_der(client.key, "late", challenge=minted.password)).fail_info == "2"
    assert scep_requests(ca) == []


@pytest.mark.parametrize("ttl", ["0", "31d", "soon", "-5m"])
def test_bad_ttl_is_one_line_and_stores_nothing(ca, ttl):
    assert_refused(run_cli(ca.home, "scep-challenge", "--ttl", ttl), 2, "--ttl")
    assert not (ca.home / CHALLENGES).exists()


def test_damaged_challenge_or_settings_file_is_named_not_emptied(ca, served):
    (ca.home / "scep").mkdir(exist_ok=True)
    (ca.home / CHALLENGES).write_text("[]")
    err = assert_refused(run_cli(ca.home, "scep-challenge"), 1, str(ca.home / CHALLENGES))
    assert "damaged" in err and (ca.home / CHALLENGES).read_text() == "[]"
    (ca.home / SETTINGS).write_text("null")
    before = snapshot_home(ca.home)
    client = ScepClient.new(served, "dam")
    answer = client.send(client.message(msg.MessageType.PKCS_REQ, csr_der(client.key, "dam")))
    assert answer.status == 500 and answer.body.count(b"\n") == 1
    assert snapshot_home(ca.home) == before
