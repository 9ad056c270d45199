"""EST enrollments refused are kept for the admins (issue 13): before intake and by it, each once."""

from __future__ import annotations

from tests.server.support import make_csr, serving


def test_bad_body_policy_and_rule_refusals_are_recorded_once_each(client, live_ca):
    assert client.est("POST", "simpleenroll", b"!!! not base64 !!!").status == 400
    der, _key = make_csr("phone-1")
    assert client.enroll(der).status == 202
    again, _ = make_csr("phone-1")
    assert client.enroll(again).status == 403
    collision, bad_body = live_ca.refusals()
    assert bad_body.reason == "the body is neither base64 nor a PKCS#10 CSR" and bad_body.subject is None
    assert "already has request" in collision.reason and collision.subject == "CN=phone-1"
    for refusal in (collision, bad_body):
        assert (refusal.source, refusal.user, refusal.address) == ("est", "anonymous", "127.0.0.1")


def test_rate_limited_submissions_are_recorded(live_ca):
    with serving(live_ca, rate=0.01) as client:
        statuses = [client.enroll(make_csr(f"dev-{i}")[0]).status for i in range(6)]
        assert statuses == [202] * 5 + [429]
    [refusal] = live_ca.refusals()
    assert refusal.reason == "too many new requests from this address; slow down"
    assert refusal.subject == "CN=dev-5" and refusal.address == "127.0.0.1"


def test_polling_a_queued_request_is_no_refusal(client, live_ca):
    der, _key = make_csr("poller")
    assert [client.enroll(der).status for _ in range(3)] == [202, 202, 202]
    assert live_ca.refusals() == []


def test_a_client_refused_over_and_over_is_recorded_a_bounded_number_of_times(client, live_ca):
    import math
    import time

    from tui_ca.server.limits import REFUSAL_RECORDS_BURST, REFUSAL_RECORDS_PER_SECOND

    started = time.monotonic()
    for _ in range(REFUSAL_RECORDS_BURST * 3):
        assert client.est("POST", "simpleenroll", b"!!! not base64 !!!").status == 400
    elapsed = time.monotonic() - started
    kept = len(live_ca.refusals(limit=1000))
    # The burst, then the steady allowance for the time the flood took (each a store commit).
    assert REFUSAL_RECORDS_BURST <= kept <= REFUSAL_RECORDS_BURST + math.ceil(elapsed * REFUSAL_RECORDS_PER_SECOND)
