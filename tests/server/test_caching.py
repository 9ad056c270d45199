"""CRL, CA certificates and OCSP as HTTP caches see them; OCSP for several certificates and RFC 8954 nonces."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.server.test_status import issue, ocsp_request, post_ocsp
from tui_ca.engine import RevocationReason


def _max_age(reply) -> int:
    parts = dict(p.strip().partition("=")[::2] for p in reply.headers["cache-control"].split(","))
    return int(parts["max-age"])


def _seconds_until(header: str) -> float:
    return (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()


def test_crl_is_cacheable_until_next_update_and_answers_conditional_gets(client, live_ca):
    reply = client.plain("GET", "/ca.crl")
    state = live_ca.crl_state()
    assert reply.status == 200
    assert parsedate_to_datetime(reply.headers["last-modified"]) == state.this_update
    assert parsedate_to_datetime(reply.headers["expires"]) == state.next_update
    assert abs(_max_age(reply) - _seconds_until(reply.headers["expires"])) < 30
    etag = reply.headers["etag"]
    again = client.plain("GET", "/ca.crl", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
    since = client.plain("GET", "/ca.crl", headers={"If-Modified-Since": reply.headers["last-modified"]})
    assert since.status == 304
    # A revocation publishes a new CRL: the old validator no longer matches.
    cert = issue(client, live_ca)
    live_ca.revoke(f"0x{cert.serial_number:x}", RevocationReason.KEY_COMPROMISE)
    fresh = client.plain("GET", "/ca.crl", headers={"If-None-Match": etag})
    assert fresh.status == 200 and fresh.headers["etag"] != etag
    assert len(x509.load_der_x509_crl(fresh.body)) == 1


def test_ca_certificates_are_cacheable(client, live_ca):
    for path in ("/ca.crt", "/root.crt"):
        reply = client.plain("GET", path)
        assert reply.status == 200 and _max_age(reply) > 0 and reply.headers["etag"]
        assert client.plain("GET", path, headers={"If-None-Match": reply.headers["etag"]}).status == 304
    cacerts = client.est("GET", "cacerts")
    assert cacerts.status == 200 and cacerts.headers["etag"]
    assert client.est("GET", "cacerts", headers={"If-None-Match": cacerts.headers["etag"]}).status == 304


def test_ocsp_get_is_cacheable_per_rfc5019_and_post_is_not(client, live_ca):
    cert = issue(client, live_ca)
    der = ocsp_request(cert, live_ca.issuing_cert())
    path = "/ocsp/" + quote(base64.b64encode(der).decode(), safe="")
    reply = client.plain("GET", path)
    answer = ocsp.load_der_ocsp_response(reply.body)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert parsedate_to_datetime(reply.headers["last-modified"]) == answer.this_update_utc
    assert parsedate_to_datetime(reply.headers["expires"]) == answer.next_update_utc
    assert 0 < _max_age(reply) <= (answer.next_update_utc - answer.this_update_utc).total_seconds()
    assert client.plain("GET", path, headers={"If-None-Match": reply.headers["etag"]}).status == 304
    # The same question gets the same signed answer while nothing changed.
    assert client.plain("GET", path).body == reply.body
    posted = client.plain("POST", "/ocsp", der, {"Content-Type": "application/ocsp-request"})
    assert posted.headers["cache-control"] == "no-store" and "etag" not in posted.headers
    # A revocation is a new store generation: the cached "good" is gone at once.
    live_ca.revoke(f"0x{cert.serial_number:x}", RevocationReason.KEY_COMPROMISE)
    revoked = client.plain("GET", path)
    assert ocsp.load_der_ocsp_response(revoked.body).certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.headers["etag"] != reply.headers["etag"]


def _multi_request(issuer: x509.Certificate, serials: list[int], nonce: bytes | None = None) -> bytes:
    """An OCSP request for several certificates (cryptography's builder takes one)."""
    name_hash = hashes.Hash(hashes.SHA1())
    name_hash.update(issuer.subject.public_bytes())
    key_bits = issuer.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint)  # fmt: skip
    key_hash = hashes.Hash(hashes.SHA1())
    key_hash.update(key_bits)
    ids = {"hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": name_hash.finalize(),
           "issuer_key_hash": key_hash.finalize()}  # fmt: skip
    tbs: dict = {"request_list": [{"req_cert": {**ids, "serial_number": serial}} for serial in serials]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def test_a_request_for_several_certificates_is_answered_for_each(client, live_ca):
    good = issue(client, live_ca, "phone-a")
    revoked = issue(client, live_ca, "phone-b")
    live_ca.revoke(f"0x{revoked.serial_number:x}", RevocationReason.SUPERSEDED)
    serials = [good.serial_number, revoked.serial_number, 0x1234ABCD]
    answer = post_ocsp(client, _multi_request(live_ca.issuing_cert(), serials))
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    got = [(r.serial_number, r.certificate_status) for r in answer.responses]
    assert got == [(serials[0], ocsp.OCSPCertStatus.GOOD), (serials[1], ocsp.OCSPCertStatus.REVOKED),
                   (serials[2], ocsp.OCSPCertStatus.UNKNOWN)]  # fmt: skip
    assert list(answer.responses)[1].revocation_reason == x509.ReasonFlags.superseded


def test_nonce_longer_than_32_octets_is_a_malformed_request(client, live_ca):
    cert = issue(client, live_ca)
    issuer = live_ca.issuing_cert()
    exact = os.urandom(32)
    echoed = post_ocsp(client, ocsp_request(cert, issuer, exact))
    assert echoed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == exact
    too_long = post_ocsp(client, _multi_request(issuer, [cert.serial_number], os.urandom(33)))
    assert too_long.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    empty = post_ocsp(client, _multi_request(issuer, [cert.serial_number], b""))
    assert empty.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
