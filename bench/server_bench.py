"""Server throughput: EST enrollments and OCSP answers per second, next to bare TLS handshakes.

Runs a real ``tui-ca serve`` process on a fresh CA home and drives it from
client threads over real sockets. Each operation opens its own connection
(as devices do), so the baseline is the same count of bare TLS handshakes
against the same server and concurrency: the ratio shows what the work
behind the handshake costs.

    python bench/server_bench.py
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

ENROLL_CLIENTS = (1, 8, 32)
ENROLLMENTS = 96
OCSP_CLIENTS = 8
OCSP_QUERIES = 400


def _csr(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))  # fmt: skip
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER))


def _cli(home: Path, *args: str) -> bytes:
    return subprocess.run(["tui-ca", "--home", str(home), *args], check=True, capture_output=True).stdout


def _run(count: int, clients: int, job) -> float:
    """Operations per second for ``count`` calls of ``job(i)`` over ``clients`` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for outcome in pool.map(job, range(count)):
            assert outcome, "an operation failed"
    return count / (time.perf_counter() - start)


def measure() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        _cli(home, "init", "--cn", "Bench CA", "--base-url", "http://127.0.0.1:1")
        _cli(home, "server-setup")
        context = ssl.create_default_context(cadata=_cli(home, "ca-cert", "--chain").decode())
        issuing = x509.load_pem_x509_certificate(_cli(home, "ca-cert"))
        server = subprocess.Popen(
            ["tui-ca", "--home", str(home), "serve", "--port", "0", "--http-port", "0", "--rate", "0",
             "--max-queued", "1000000", "--max-per-address", "64"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            https = int(re.search(rb":(\d+)/", server.stdout.readline()).group(1))
            plain = int(re.search(rb":(\d+)/", server.stdout.readline()).group(1))
            return _measure(home, context, issuing, https, plain)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(15)


def _measure(home: Path, context: ssl.SSLContext, issuing, https: int, plain: int) -> list[dict]:
    def handshake(_: int) -> bool:
        with socket.create_connection(("127.0.0.1", https)) as sock:
            with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                return True

    results = []
    for clients in ENROLL_CLIENTS:
        bodies = [_csr(f"bench-{clients}-{i}") for i in range(ENROLLMENTS)]

        def enroll(i: int, bodies: list[bytes] = bodies) -> bool:
            conn = http.client.HTTPSConnection("127.0.0.1", https, context=context, timeout=60)
            try:
                conn.request("POST", "/.well-known/est/simpleenroll", bodies[i], {"Content-Type": "application/pkcs10"})
                response = conn.getresponse()
                response.read()
                return response.status == 202
            finally:
                conn.close()

        rate = _run(ENROLLMENTS, clients, enroll)
        base = _run(ENROLLMENTS, clients, handshake)
        results.append({"what": "EST simpleenroll (queued, 202)", "clients": clients, "count": ENROLLMENTS,
                        "per_second": round(rate, 1), "tls_handshakes_per_second": round(base, 1),
                        "ratio": round(rate / base, 2)})  # fmt: skip

    # A real issued certificate to ask about.
    _cli(home, "approve", "1")
    cert = x509.load_pem_x509_certificate(_cli(home, "export", "1"))
    query = ocsp.OCSPRequestBuilder().add_certificate(cert, issuing, hashes.SHA1()).build()
    der = query.public_bytes(serialization.Encoding.DER)

    def ask(_: int) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=60)
        try:
            conn.request("POST", "/ocsp", der, {"Content-Type": "application/ocsp-request"})
            response = conn.getresponse()
            body = response.read()
            return (
                response.status == 200
                and ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
            )
        finally:
            conn.close()

    rate = _run(OCSP_QUERIES, OCSP_CLIENTS, ask)
    base = _run(OCSP_QUERIES, OCSP_CLIENTS, handshake)
    results.append({"what": "OCSP POST (good)", "clients": OCSP_CLIENTS, "count": OCSP_QUERIES,
                    "per_second": round(rate, 1), "tls_handshakes_per_second": round(base, 1),
                    "ratio": round(rate / base, 2)})  # fmt: skip
    return results


def main() -> int:
    rows = measure()
    print(f"{'operation':32} {'clients':>7} {'count':>6} {'per s':>8} {'TLS hs/s':>9} {'ratio':>6}")
    for row in rows:
        print(f"{row['what']:32} {row['clients']:>7} {row['count']:>6} {row['per_second']:>8} "
              f"{row['tls_handshakes_per_second']:>9} {row['ratio']:>6}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
