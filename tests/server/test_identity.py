"""Requester identity over real EST: a client certificate, an EST user or nobody, each held to its own names.

Every test talks to a real server on 127.0.0.1 over TLS with Python's ssl
client, with client certificates issued by the CA under test.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives import serialization

from tests.helpers import assert_refused, run_cli
from tests.server.support import assert_plain_line, b64, enrolled, make_csr, serving
from tui_ca.engine import RequestStatus
from tui_ca.server.users import load_user_file, set_user


def _basic(name: str, password: str) -> dict:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/pkcs10"}


def _client_context(ca, cert_id: int, key, tmp_path):
    import ssl

    context = ssl.create_default_context(cadata=ca.ca_cert_pem(chain=True).decode())
    cert, private = tmp_path / f"c{cert_id}.pem", tmp_path / f"k{cert_id}.pem"
    cert.write_bytes(ca.certificate_pem(cert_id))
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    context.load_cert_chain(cert, private)
    return context


@contextmanager
def access_log() -> Iterator[list[dict]]:
    """The server's access-log lines, as parsed JSON."""
    lines: list[dict] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    logger = logging.getLogger("tui_ca.server.access")
    handler = Keep()
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def _wait_for(lines: list[dict], predicate, what: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [line for line in lines if predicate(line)]
        if found:
            return found[-1]
        time.sleep(0.02)
    raise AssertionError(f"no access-log line {what}: {lines}")


def _enroll_approved(ca, client, cn: str):
    """An anonymous enrollment the admin approves; its certificate's ID and key."""
    der, key = make_csr(cn)
    assert client.enroll(der).status == 202
    [request] = [r for r in enrolled(ca, RequestStatus.QUEUED) if r.requester == cn]
    ca.approve([request.id])
    return request.id, key


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users"
    set_user(path, "bob", "bob's password")
    set_user(path, "lab-admin", "lab password", ("lab-*", "printer-3"))
    return path


# ------------------------------------------------------- client certificates


def test_client_certificate_enrolls_only_as_its_own_requester(live_ca, tmp_path):
    with serving(live_ca) as client:
        cert_id, key = _enroll_approved(live_ca, client, "phone-a")
        before = len(enrolled(live_ca))
        context = _client_context(live_ca, cert_id, key, tmp_path)
        other = client.enroll(make_csr("phone-b")[0], context=context)
        assert other.status == 403 and "only as requester 'phone-a'" in other.text
        assert_plain_line(other)
        # Its own name: the client owns it, so it is told which certificate stands in the way.
        own = client.enroll(make_csr("phone-a")[0], context=context)
        assert own.status == 403 and f"holds active certificate {cert_id}" in own.text
        assert len(enrolled(live_ca)) == before


def test_reenrollment_keeps_the_certificate_requester_whatever_user_is_named(live_ca, users, tmp_path):
    with serving(live_ca, users_path=users) as client:
        cert_id, key = _enroll_approved(live_ca, client, "phone-c")
        context = _client_context(live_ca, cert_id, key, tmp_path)
        changed = client.est("POST", "simplereenroll", b64(make_csr("phone-d")[0]), context=context)
        assert changed.status in (400, 403) and "phone-d" not in {r.requester for r in enrolled(live_ca)}
        # EST user credentials beside the certificate do not turn the renewal into bob's.
        renewal = client.est("POST", "simplereenroll", b64(make_csr("phone-c")[0]),
                             _basic("bob", "bob's password"), context=context)  # fmt: skip
        assert renewal.status == 202, renewal.text
        [queued] = enrolled(live_ca, RequestStatus.QUEUED)
        assert (queued.requester, queued.renewal_of, queued.via) == ("phone-c", cert_id, "certificate")


def test_reenrollment_cannot_renew_another_certificate_through_the_engine(live_ca, tmp_path):
    from tui_ca.engine.applicant import Applicant, RequesterNotAllowed
    from tui_ca.engine.csr_policy import check_and_describe, load_csr
    from tui_ca.engine.intake import Submission

    with serving(live_ca) as client:
        first, key = _enroll_approved(live_ca, client, "phone-e")
        second, _ = _enroll_approved(live_ca, client, "phone-f")
    csr = load_csr(make_csr("phone-f")[0])
    entry = Submission(csr, check_and_describe(csr), renewal_of=second,
                       applicant=Applicant.certificate(live_ca.certificate(first)))  # fmt: skip
    [outcome] = live_ca.submit_each([entry], source="est")
    assert isinstance(outcome, RequesterNotAllowed) and str(second) not in outcome.public


# ---------------------------------------------------------------- EST users


def test_est_user_enrolls_as_itself_unless_mapped(live_ca, users):
    with serving(live_ca, users_path=users, anonymous=False) as client:
        assert (
            client.est("POST", "simpleenroll", b64(make_csr("lab-1")[0]), _basic("bob", "bob's password")).status == 202
        )
        assert client.est("POST", "simpleenroll", b64(make_csr("lab-2")[0]),
                          _basic("lab-admin", "lab password")).status == 202  # fmt: skip
        assert client.est("POST", "simpleenroll", b64(make_csr("PRINTER-3")[0]),
                          _basic("lab-admin", "lab password")).status == 202  # fmt: skip
        assert client.est("POST", "simpleenroll", b64(make_csr("bob")[0]),
                          _basic("lab-admin", "lab password")).status == 202  # fmt: skip
    got = {r.details.common_name: (r.requester, r.via) for r in enrolled(live_ca)}
    # bob's CSR names lab-1, but lab-1 is not bob's to take; lab-admin's names are mapped to it.
    assert got == {"lab-1": ("bob", "user"), "lab-2": ("lab-2", "user"), "PRINTER-3": ("PRINTER-3", "user"),
                   "bob": ("lab-admin", "user")}  # fmt: skip


def test_est_user_refusals_about_its_own_names_keep_their_ids(live_ca, users):
    with serving(live_ca, users_path=users, anonymous=False) as client:
        headers = _basic("lab-admin", "lab password")
        assert client.est("POST", "simpleenroll", b64(make_csr("lab-7")[0]), headers).status == 202
        [request] = enrolled(live_ca)
        again = client.est("POST", "simpleenroll", b64(make_csr("lab-7")[0]), headers)
        assert again.status == 403 and f"request {request.id} in the queue" in again.text


# --------------------------------------------------------------- anonymous


def test_anonymous_cannot_take_a_name_an_est_user_owns(live_ca, users):
    with access_log() as lines, serving(live_ca, users_path=users, quiet=False) as client:
        for name in ("bob", "BOB", "lab-9", "printer-3", "lab-admin"):
            reply = client.enroll(make_csr(name)[0])
            assert reply.status == 403, (name, reply.text)
            assert "belongs to an authenticated client" in reply.text
            assert_plain_line(reply)
        assert enrolled(live_ca) == []
        _wait_for(lines, lambda line: "belongs to an EST user" in line.get("reason", ""), "with the detail")
        assert client.enroll(make_csr("printer-4")[0]).status == 202


def test_anonymous_cannot_take_a_name_held_through_an_authenticated_channel(live_ca, tmp_path):
    queued = live_ca.submit(make_csr("desk-1")[0], requester="desk-1")  # the admin, on the CLI
    with access_log() as lines, serving(live_ca, quiet=False) as client:
        reply = client.enroll(make_csr("desk-1")[0])
        assert reply.status == 403 and "belongs to an authenticated client" in reply.text
        assert str(queued.request.id) not in reply.text
        logged = _wait_for(lines, lambda line: line.get("status") == 403, "for the refusal")
        assert f"request {queued.request.id}" in logged["reason"]
        live_ca.approve([queued.request.id])
        serial = f"{live_ca.certificate(queued.request.id).serial:x}"
        reply = client.enroll(make_csr("desk-1")[0])
        assert reply.status == 403 and "belongs to an authenticated client" in reply.text
        assert str(queued.request.id) not in reply.text and serial not in reply.text.lower()
    assert len(enrolled(live_ca)) == 1


def test_anonymous_is_told_no_ids_of_anonymous_requesters_either(live_ca):
    with access_log() as lines, serving(live_ca, quiet=False) as client:
        assert client.enroll(make_csr("kiosk-1")[0]).status == 202
        [request] = enrolled(live_ca)
        reply = client.enroll(make_csr("kiosk-1")[0])
        assert reply.status == 403 and "already has a request waiting" in reply.text
        assert str(request.id) not in reply.text
        logged = _wait_for(lines, lambda line: line.get("status") == 403, "for the refusal")
        assert f"request {request.id} in the queue" in logged["reason"]


def test_a_strangers_csr_is_not_followed(live_ca, users):
    with serving(live_ca, users_path=users) as client:
        der, _ = make_csr("lab-5")
        assert client.est("POST", "simpleenroll", b64(der), _basic("lab-admin", "lab password")).status == 202
        [request] = enrolled(live_ca)
        # The CSR is no secret: re-sending it anonymously must not poll (or later collect) lab-5's request.
        stolen = client.enroll(der)
        assert stolen.status == 403 and "another requester" in stolen.text and str(request.id) not in stolen.text
        live_ca.approve([request.id])
        assert client.enroll(der).status == 403
        assert client.est("POST", "simpleenroll", b64(der), _basic("lab-admin", "lab password")).status == 200
        assert client.est("POST", "simpleenroll", b64(der), _basic("bob", "bob's password")).status == 403


def test_keycompromise_refusal_names_no_certificate(live_ca):
    from tui_ca.engine import RevocationReason

    with serving(live_ca) as client:
        der, key = make_csr("cam-1")
        client.enroll(der)
        [request] = enrolled(live_ca)
        live_ca.approve([request.id])
        live_ca.revoke(request.id, RevocationReason.KEY_COMPROMISE)
        reply = client.enroll(make_csr("cam-2", key)[0])
        assert reply.status == 403 and "keyCompromise" in reply.text and str(request.id) not in reply.text


# ------------------------------------------------------------ est-user CLI


def test_est_user_command_maps_names_and_refuses_in_one_line(tmp_path):
    users = tmp_path / "users"
    home = tmp_path / "home"
    run_cli(home, "est-user", "lab-admin", "--users", str(users), "--may-request", "lab-*", "--may-request", "p-3",
            input=b"a long password\n", check=True)  # fmt: skip
    hashes, mapped = load_user_file(users)
    assert mapped == {"lab-admin": ("lab-*", "p-3")}
    stored = hashes["lab-admin"]
    run_cli(home, "est-user", "lab-admin", "--users", str(users), "--keep-password", "--only-self", check=True)
    hashes, mapped = load_user_file(users)
    assert mapped == {} and hashes["lab-admin"] == stored
    before = users.read_bytes()
    assert_refused(run_cli(home, "est-user", "lab-admin", "--users", str(users), "--keep-password",
                           "--may-request", "*"), 2, "every requester name")  # fmt: skip
    assert_refused(run_cli(home, "est-user", "nobody", "--users", str(users), "--keep-password",
                           "--may-request", "x"), 2, "no EST user 'nobody'")  # fmt: skip
    assert_refused(run_cli(home, "est-user", "lab-admin", "--users", str(users), "--keep-password",
                           "--may-request", "x", "--only-self"), 2, "contradict")  # fmt: skip
    assert users.read_bytes() == before


def test_a_damaged_mapping_is_named_not_ignored(tmp_path):
    users = tmp_path / "users"
    set_user(users, "bob", "bob's password")
    users.write_text(users.read_text().rstrip("\n") + ":[1, 2]\n")
    with pytest.raises(Exception, match="line 1: the requester names"):
        load_user_file(users)


# ------------------------------------------------------------------- audit


def test_audit_names_the_os_user_of_the_uid_not_user(live_ca, tmp_path):
    import os
    import pwd

    csr = tmp_path / "r.der"
    csr.write_bytes(make_csr("audited-1")[0])
    forged = {"USER": "someone-else", "LOGNAME": "someone-else", "USERNAME": "someone-else"}
    run_cli(live_ca.home, "submit", str(csr), "--requester", "audited-1", env=forged, check=True)
    [request] = enrolled(live_ca)
    run_cli(live_ca.home, "reject", str(request.id), "--reason", "test", env=forged, check=True)
    records = json.loads(run_cli(live_ca.home, "audit", "--json", env=forged, check=True).stdout)
    real = pwd.getpwuid(os.getuid()).pw_name
    mine = [r for r in records if r["action"] in ("submit", "reject")]
    assert [r["action"] for r in mine] == ["submit", "reject"]
    assert {r["user"] for r in mine} == {real} and real != "someone-else"
