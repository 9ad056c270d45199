"""HTTP Basic password guessing is throttled per address and per user, while OCSP goes on answering."""

from __future__ import annotations

import base64
import http.client

from cryptography import x509
from cryptography.x509 import ocsp

from tests.server.support import b64, enrolled, make_csr, serving
from tests.server.test_status import ocsp_request
from tui_ca.server.main import LOGIN_BURST
from tui_ca.server.users import set_user


def _basic(name: str, password: str) -> dict:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/pkcs10"}


def _enroll_from(client, source: str, headers: dict) -> tuple[int, str | None]:
    conn = http.client.HTTPSConnection("127.0.0.1", client.running.https_port, context=client.context, timeout=30,
                                       source_address=(source, 0))  # fmt: skip
    try:
        conn.request("POST", "/.well-known/est/simpleenroll", b64(make_csr("guess")[0]), headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("retry-after")
    finally:
        conn.close()


def test_guesses_are_throttled_per_address_and_per_user(live_ca, tmp_path):
    users = tmp_path / "users"
    set_user(users, "phone-17", "correct horse")
    set_user(users, "phone-18", "battery staple")
    # A refill an hour apart: on a loaded machine each scrypt check can take seconds, and
    # the default 10 s refill would let a guess through that the burst alone should stop.
    with serving(live_ca, users_path=users, anonymous=False, login_interval=3600.0) as client:
        # One address: a few wrong guesses are checked, then no more are looked at.
        first = [_enroll_from(client, "127.0.0.2", _basic("phone-17", f"guess-{i}"))[0] for i in range(LOGIN_BURST)]
        assert first == [401] * LOGIN_BURST
        status, retry = _enroll_from(client, "127.0.0.2", _basic("phone-18", "battery staple"))
        assert status == 429 and int(retry) >= 1  # the address is throttled, whichever user it names
        # One user from many addresses: throttled too, even with the right password.
        for i in range(LOGIN_BURST):
            assert _enroll_from(client, f"127.0.0.{10 + i}", _basic("phone-17", f"other-{i}"))[0] == 401
        assert _enroll_from(client, "127.0.0.30", _basic("phone-17", "correct horse"))[0] == 429
        # Others are not affected: another user from another address, and OCSP.
        assert _enroll_from(client, "127.0.0.31", _basic("phone-18", "battery staple"))[0] == 202
        [request] = enrolled(live_ca)
        live_ca.approve([request.id])
        cert = x509.load_pem_x509_certificate(live_ca.certificate_pem(request.id))
        reply = client.plain("POST", "/ocsp", ocsp_request(cert, live_ca.issuing_cert()))
        assert ocsp.load_der_ocsp_response(reply.body).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert [r.requester for r in enrolled(live_ca)] == ["phone-18"]
