"""The plain-HTTP side: CRL, CA certificates, and OCSP answers from the live store."""

from __future__ import annotations

import base64
import os
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.server.support import assert_plain_line, make_csr
from tui_ca.engine import RevocationReason
from tui_ca.engine.home import OCSP_CERT


def issue(client, live_ca, cn="phone") -> x509.Certificate:
    client.enroll(make_csr(cn)[0])
    request_id = live_ca.requests()[-1].id
    live_ca.approve([request_id])
    return x509.load_pem_x509_certificate(live_ca.certificate_pem(request_id))


def ocsp_request(cert, issuer, nonce: bytes | None = None, algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    algorithm = algorithm or hashes.SHA1()
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def post_ocsp(client, der: bytes) -> ocsp.OCSPResponse:
    reply = client.plain("POST", "/ocsp", der, {"Content-Type": "application/ocsp-request"})
    assert reply.status == 200 and reply.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(reply.body)


def test_crl_and_ca_certificates_are_served_as_der(client, live_ca):
    crl = client.plain("GET", "/ca.crl")
    assert crl.status == 200 and crl.headers["content-type"] == "application/pkix-crl"
    assert x509.load_der_x509_crl(crl.body).is_signature_valid(live_ca.issuing_cert().public_key())
    assert x509.load_der_x509_certificate(client.plain("GET", "/ca.crt").body) == live_ca.issuing_cert()
    assert x509.load_der_x509_certificate(client.plain("GET", "/root.crt").body) == live_ca.root_cert()
    missing = client.plain("GET", "/../ca/issuing.key")
    assert missing.status == 404
    assert_plain_line(missing)


def test_crl_shows_a_revocation_at_once(client, live_ca):
    cert = issue(client, live_ca)
    live_ca.revoke(f"0x{cert.serial_number:x}", RevocationReason.KEY_COMPROMISE)
    crl = x509.load_der_x509_crl(client.plain("GET", "/ca.crl").body)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_ocsp_good_then_revoked_with_reason_and_nonce(client, live_ca):
    cert = issue(client, live_ca)
    issuer = live_ca.issuing_cert()
    nonce = os.urandom(16)
    good = post_ocsp(client, ocsp_request(cert, issuer, nonce))
    assert good.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert good.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    signer = x509.load_pem_x509_certificate((live_ca.home / OCSP_CERT).read_bytes())
    assert good.certificates == [signer]
    signer.public_key().verify(good.signature, good.tbs_response_bytes, ec.ECDSA(good.signature_hash_algorithm))
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert signer.extensions.get_extension_for_class(x509.OCSPNoCheck)
    live_ca.revoke(f"0x{cert.serial_number:x}", RevocationReason.KEY_COMPROMISE)
    revoked = post_ocsp(client, ocsp_request(cert, issuer, algorithm=hashes.SHA256()))
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.key_compromise
    assert revoked.revocation_time_utc == live_ca.certificate(f"0x{cert.serial_number:x}").revoked_at


def test_ocsp_over_get_and_unknown_serial(client, live_ca):
    cert = issue(client, live_ca)
    der = ocsp_request(cert, live_ca.issuing_cert())
    reply = client.plain("GET", "/ocsp/" + quote(base64.b64encode(der).decode(), safe=""))
    assert ocsp.load_der_ocsp_response(reply.body).certificate_status == ocsp.OCSPCertStatus.GOOD
    # The server's own TLS certificate is on record like any other, so OCSP knows it.
    tls = x509.load_pem_x509_certificate((live_ca.home / "server/tls.crt").read_bytes())
    assert post_ocsp(client, ocsp_request(tls, live_ca.issuing_cert())).certificate_status == ocsp.OCSPCertStatus.GOOD
    issuer = live_ca.issuing_cert()
    name_hash = hashes.Hash(hashes.SHA1())
    name_hash.update(issuer.subject.public_bytes())
    key_hash = hashes.Hash(hashes.SHA1())
    key_hash.update(issuer.public_key().public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint))  # fmt: skip
    stranger = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash.finalize(), key_hash.finalize(),
                                                                  0x1234ABCD, hashes.SHA1())  # fmt: skip
    unknown = post_ocsp(client, stranger.build().public_bytes(serialization.Encoding.DER))
    assert unknown.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def test_ocsp_refusals_are_ocsp_errors(client, live_ca):
    assert post_ocsp(client, b"not der").response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    issuing = live_ca.issuing_cert()
    # A certificate of another issuer: the issuing CA itself, issued by the root.
    other = post_ocsp(client, ocsp_request(issuing, live_ca.root_cert()))
    assert other.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    # Over GET too, a malformed request is an OCSP answer, which is what OCSP clients parse.
    for path in ("/ocsp/%%%not-base64", "/ocsp/bm90IGRlcg==", "/ocsp/"):
        bad_get = client.plain("GET", path)
        assert bad_get.status == 200 and bad_get.headers["content-type"] == "application/ocsp-response", path
        assert bad_get.headers["cache-control"] == "no-store"
        assert ocsp.load_der_ocsp_response(bad_get.body).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    wrong = client.plain("POST", "/ca.crl", b"x")
    assert wrong.status == 405
    assert_plain_line(wrong)


def test_a_renewed_ocsp_signer_is_used_without_a_restart(client, live_ca):
    from tui_ca.engine.service_certs import setup_service_certs

    cert = issue(client, live_ca)
    before = post_ocsp(client, ocsp_request(cert, live_ca.issuing_cert())).certificates[0]
    setup_service_certs(live_ca, ocsp_only=True)
    after = post_ocsp(client, ocsp_request(cert, live_ca.issuing_cert()))
    assert after.certificates[0] != before
    assert after.certificates[0] == x509.load_pem_x509_certificate((live_ca.home / OCSP_CERT).read_bytes())
    after.certificates[0].public_key().verify(after.signature, after.tbs_response_bytes,
                                              ec.ECDSA(after.signature_hash_algorithm))  # fmt: skip
