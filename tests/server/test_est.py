"""EST over a real TLS socket: cacerts, enroll/poll/collect, refusals, re-enrollment."""

from __future__ import annotations

import base64
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from tests.server.support import assert_plain_line, b64, enrolled, exchange, make_csr, serving
from tui_ca.engine import RequestStatus, RevocationReason
from tui_ca.server.users import set_user


def certs_of(reply) -> list[x509.Certificate]:
    assert reply.headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(reply.body, validate=True))


def test_cacerts_gives_issuing_and_root(client, live_ca):
    reply = client.est("GET", "cacerts")
    assert reply.status == 200
    assert b"\n" not in reply.body.strip()  # RFC 8951: base64 without line breaks
    # A certs-only PKCS#7 holds a DER SET OF, ordered by encoding, not by role.
    got = sorted(c.subject.rfc4514_string() for c in certs_of(reply))
    assert got == sorted(c.subject.rfc4514_string() for c in (live_ca.issuing_cert(), live_ca.root_cert()))


def test_enroll_is_queued_then_collected_after_approval(client, live_ca):
    der, _ = make_csr("phone-1")
    first = client.enroll(der)
    assert first.status == 202 and first.headers["retry-after"] == "7"
    assert_plain_line(first)
    request = enrolled(live_ca, RequestStatus.QUEUED)[0]
    assert (request.source, request.submitted_by.user, request.submitted_by.address) == (
        "est",
        "anonymous",
        "127.0.0.1",
    )
    assert client.enroll(der).status == 202  # polling does not queue twice
    assert len(enrolled(live_ca)) == 1
    live_ca.approve([request.id])
    done = client.enroll(der)
    assert done.status == 200
    [cert] = certs_of(done)
    assert cert.serial_number == live_ca.certificate(request.id).serial
    assert cert.subject.rfc4514_string() == "CN=phone-1"


def test_rejected_request_gets_the_reason(client, live_ca):
    der, _ = make_csr("phone-2")
    client.enroll(der)
    live_ca.reject(enrolled(live_ca, RequestStatus.QUEUED)[0].id, "unknown device <b>")
    reply = client.enroll(der)
    assert reply.status == 403 and "unknown device <b>" in reply.text
    assert_plain_line(reply)


def test_revoked_certificate_is_not_handed_out_again(client, live_ca):
    der, _ = make_csr("phone-3")
    client.enroll(der)
    [request] = enrolled(live_ca)
    live_ca.approve([request.id])
    live_ca.revoke(request.id, RevocationReason.KEY_COMPROMISE)
    reply = client.enroll(der)
    assert reply.status == 403 and "revoked" in reply.text


def test_body_forms_are_all_accepted(client, live_ca):
    forms = []
    for i in range(6):
        der, _ = make_csr(f"form-{i}")
        pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
        forms.append(der)
        bodies = [
            b64(der),                                                        # one line
            base64.encodebytes(der),                                         # 76-column lines
            base64.encodebytes(der).replace(b"\n", b"\r\n"),                 # CRLF lines
            der,                                                             # raw DER
            pem,                                                             # PEM
            base64.b64encode(pem),                                           # base64 of PEM
        ]  # fmt: skip
        headers = {"Content-Type": "application/pkcs10"}
        if i % 2:
            headers["Content-Transfer-Encoding"] = "base64"
        reply = client.est("POST", "simpleenroll", bodies[i], headers)
        assert reply.status == 202, (i, reply.text)
    assert [r.details.common_name for r in enrolled(live_ca)] == [f"form-{i}" for i in range(6)]


def test_users_name_the_requester_and_bad_passwords_are_refused(live_ca, tmp_path):
    users = tmp_path / "users"
    set_user(users, "phone-17", "correct horse")
    with serving(live_ca, users_path=users, anonymous=False) as client:
        der, _ = make_csr("whatever-cn")
        anonymous = client.enroll(der)
        assert anonymous.status == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
        assert_plain_line(anonymous)
        wrong = client.est("POST", "simpleenroll", b64(der), {"Authorization": _basic("phone-17", "wrong!!!")})
        assert wrong.status == 401
        not_basic = client.est("POST", "simpleenroll", b64(der), {"Authorization": "Bearer abc"})
        assert not_basic.status == 401
        assert enrolled(live_ca) == []
        ok = client.est("POST", "simpleenroll", b64(der), {"Authorization": _basic("phone-17", "correct horse")})
        assert ok.status == 202
        [request] = enrolled(live_ca)
        assert request.requester == "phone-17" and request.submitted_by.user == "phone-17"


def test_two_authorization_headers_are_refused_and_malformed_credentials_say_why(live_ca, tmp_path):
    users = tmp_path / "users"
    set_user(users, "phone-17", "correct horse")
    with serving(live_ca, users_path=users, anonymous=False) as client:
        der, _ = make_csr("twice")
        body = b64(der)
        # One header that a proxy in front may have checked, one that we would: neither is taken.
        head = (b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/pkcs10\r\n"
                b"Authorization: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n"
                % (_basic("phone-17", "correct horse").encode(), _basic("other", "x").encode(), len(body)))  # fmt: skip
        answer = exchange(client, head + body, tls=True)
        assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b"more than one Authorization header\n")
        latin1 = "Basic " + base64.b64encode("phone-17:sécret".encode("latin-1")).decode()
        not_utf8 = client.est("POST", "simpleenroll", body, {"Authorization": latin1})
        assert (not_utf8.status, not_utf8.text) == (401, "the Basic credentials are not UTF-8\n")
        no_colon = client.est("POST", "simpleenroll", body, {"Authorization": "Basic " + b64(b"phone-17").decode()})
        assert (no_colon.status, no_colon.text) == (401, "the Basic credentials are not base64 of name:password\n")
        assert_plain_line(no_colon)
        assert enrolled(live_ca) == []


def _basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def _client_context(live_ca, cert_pem: bytes, key, tmp_path) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=live_ca.ca_cert_pem(chain=True).decode())
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))  # fmt: skip
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    return context


def test_reenroll_with_client_certificate_supersedes_the_old_one(client, live_ca, tmp_path):
    der, key = make_csr("phone-4")
    client.enroll(der)
    [first] = enrolled(live_ca)
    live_ca.approve([first.id])
    context = _client_context(live_ca, live_ca.certificate_pem(first.id), key, tmp_path)
    new_der, _ = make_csr("phone-4")
    reply = client.est("POST", "simplereenroll", b64(new_der), context=context)
    assert reply.status == 202, reply.text
    [renewal] = enrolled(live_ca, RequestStatus.QUEUED)
    assert renewal.renewal_of == first.id and renewal.requester == first.requester
    live_ca.approve([renewal.id])
    collected = client.est("POST", "simplereenroll", b64(new_der), context=context)
    assert collected.status == 200
    assert live_ca.certificate(first.id).revocation_reason == RevocationReason.SUPERSEDED


def test_reenroll_refusals(client, live_ca, tmp_path):
    der, key = make_csr("phone-5")
    client.enroll(der)
    [first] = enrolled(live_ca)
    live_ca.approve([first.id])
    other, _ = make_csr("someone-else")
    no_cert = client.est("POST", "simplereenroll", b64(other))
    assert no_cert.status == 403 and "client certificate" in no_cert.text
    context = _client_context(live_ca, live_ca.certificate_pem(first.id), key, tmp_path)
    changed = client.est("POST", "simplereenroll", b64(other), context=context)
    assert changed.status == 400 and "subject" in changed.text
    live_ca.revoke(first.id)
    revoked = client.est("POST", "simplereenroll", b64(make_csr("phone-5")[0]), context=context)
    assert revoked.status == 403 and "revoked" in revoked.text
    assert len(enrolled(live_ca)) == 1


def test_a_requester_holding_a_certificate_is_refused_without_its_id(client, live_ca):
    client.enroll(make_csr("phone-6")[0])
    [request] = enrolled(live_ca)
    live_ca.approve([request.id])
    serial = f"{live_ca.certificate(request.id).serial:x}"
    reply = client.enroll(make_csr("phone-6")[0])
    # An anonymous client is a stranger to every requester: the rule, not the certificate's ID or serial.
    assert reply.status == 403 and "holds an active certificate" in reply.text
    assert str(request.id) not in reply.text and serial not in reply.text.lower()
    assert_plain_line(reply)
