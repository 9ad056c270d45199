"""Lock-free reads never see half of a commit.

A writer process approves requests back to back (each approval renames a
dozen files); a reader in this process keeps asking for the newest requests.
Whenever it sees a request approved, the certificate and its PEM must be there
too, and the request it sees approved must be the certificate's.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import CertificateAuthority, NotFoundError

ROUNDS = 60

# Several processes share one home: the TinyDB files are what is tested.
pytestmark = pytest.mark.tinydb_only


def _csr(key, cn: str) -> bytes:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def _writer(home: str, rounds: int, started) -> None:
    ca = CertificateAuthority(home)
    key = ec.generate_private_key(ec.SECP256R1())
    started.set()
    for i in range(rounds):
        request = ca.submit(_csr(key, f"writer-{i}")).request
        ca.approve([request.id])


def test_reader_never_sees_an_approval_without_its_certificate(ca, home):
    context = multiprocessing.get_context("spawn")
    started = context.Event()
    writer = context.Process(target=_writer, args=(str(home), ROUNDS, started))
    writer.start()
    assert started.wait(30)
    reader = CertificateAuthority(home)
    approved_seen = 0
    deadline = time.monotonic() + 120
    while writer.is_alive() and time.monotonic() < deadline:
        newest = reader.overview().queued.ids[-1:] or []
        candidates = set(newest) | {len(reader.requests())}
        for request_id in candidates:
            try:
                request, cert = reader.lookup(request_id)
            except NotFoundError:
                continue
            if request is not None and request.status == "approved":
                approved_seen += 1
                assert cert is not None, f"request {request_id} approved but its certificate is missing"
                assert cert.id == request.id
                pem = reader.certificate_pem(request_id)
                assert x509.load_pem_x509_certificate(pem).serial_number == cert.serial
    writer.join(30)
    assert writer.exitcode == 0
    assert approved_seen > 0, "the reader never overlapped the writer; the test proved nothing"
