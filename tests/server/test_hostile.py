"""Hostile clients: each gets a status and one line, nothing is stored, and the server keeps serving."""

from __future__ import annotations

import socket
import ssl
import threading
import time

from tests.server.support import Client, assert_plain_line, b64, enrolled, make_csr, serving
from tui_ca.server.http import MAX_BODY


def raw(client: Client, data: bytes, *, tls: bool = True, wait: float = 20) -> bytes:
    """Send bytes as they are and read until the server closes."""
    port = client.running.https_port if tls else client.running.http_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    if tls:
        sock = client.context.wrap_socket(sock, server_hostname="127.0.0.1")
    with sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def still_serving(client: Client) -> None:
    assert client.est("GET", "cacerts").status == 200
    assert client.plain("GET", "/ca.crt").status == 200


def test_oversized_body_is_refused_unread(client, live_ca):
    body = b"A" * (MAX_BODY + 1)
    reply = client.est("POST", "simpleenroll", body)
    assert reply.status == 413
    assert_plain_line(reply)
    assert enrolled(live_ca) == []
    still_serving(client)


def test_garbage_bodies_are_400(client, live_ca):
    for body in (b"", b"hello world", b64(b"\x30\x03\x02\x01\x00"), b"\x30\x82\xff\xff", "é".encode() * 10):
        reply = client.est("POST", "simpleenroll", body, {"Content-Type": "application/pkcs10"})
        assert reply.status == 400, body
        assert_plain_line(reply)
    assert enrolled(live_ca) == []
    still_serving(client)


def test_weak_key_csr_is_refused_with_the_policy_reason(client, live_ca):
    from cryptography.hazmat.primitives.asymmetric import rsa

    der, _ = make_csr("weak", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    reply = client.enroll(der)
    assert reply.status == 403 and "2048" in reply.text  # a policy refusal, not malformed input
    assert enrolled(live_ca) == []


def test_missing_length_chunked_and_bad_length(client, live_ca):
    base = b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\n"
    for extra, status in (
        (b"", b"411"),
        (b"Transfer-Encoding: chunked\r\n", b"411"),
        (b"Content-Length: -5\r\n", b"400"),
    ):
        answer = raw(client, base + extra + b"\r\n")
        assert answer.split(b" ", 2)[1] == status, answer
        assert b"text/plain" in answer
    assert raw(client, b"GARBAGE\r\n\r\n").split(b" ", 2)[1] == b"400"
    assert (
        raw(client, b"PUT /ca.crl HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", tls=False).split(b" ", 2)[1]
        == b"405"
    )
    # A method token the HTTP parser does not know is malformed, not merely unsupported.
    assert raw(client, b"BREW /ca.crl HTTP/1.1\r\nHost: x\r\n\r\n", tls=False).split(b" ", 2)[1] in (b"400", b"405")
    assert enrolled(live_ca) == []
    still_serving(client)


def test_unknown_paths_and_methods(client):
    # RFC 7030 §4.5.2: this CA wants no CSR attributes.
    attrs = client.est("GET", "csrattrs")
    assert attrs.status == 204 and attrs.body == b""
    for reply in (client.est("GET", "a/b/c/d"), client.plain("GET", "/secret")):
        assert reply.status == 404
        assert_plain_line(reply)
    assert client.est("GET", "simpleenroll").status == 405
    assert client.est("POST", "cacerts", b"x").status == 405


def test_slow_client_gets_408_and_does_not_block_others(live_ca):
    with serving(live_ca, timeout=1.5) as client:
        answers = {}

        def slow():
            start = time.monotonic()
            answers["slow"] = raw(client, b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\n"
                                          b"Content-Length: 500\r\n\r\nMIIB")  # fmt: skip
            answers["slow_seconds"] = time.monotonic() - start

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.2)
        start = time.monotonic()
        still_serving(client)  # while the slow one holds its connection
        assert time.monotonic() - start < 1.0
        thread.join(10)
        assert answers["slow"].startswith(b"HTTP/1.1 408 ")
        assert b"did not arrive in time" in answers["slow"]
        assert answers["slow_seconds"] < 5
        assert enrolled(live_ca) == []


def test_idle_connection_is_closed_without_an_unsolicited_answer(live_ca):
    # A pooled client would read an unsolicited 408 as the answer to its next request.
    with serving(live_ca, timeout=1.0) as client:
        assert raw(client, b"", tls=False) == b""
        assert raw(client, b"", tls=True) == b""
        # A head that never completes is closed at the deadline as well, silently.
        assert raw(client, b"GET /ca.crt HTTP/1.1\r\nHost", tls=False) == b""


def test_rate_limit_per_client_answers_429(live_ca):
    with serving(live_ca, rate=0.01) as client:
        csrs = [make_csr(f"dev-{i}")[0] for i in range(7)]
        statuses = [client.enroll(der) for der in csrs]
        assert [r.status for r in statuses] == [202] * 5 + [429] * 2
        assert int(statuses[-1].headers["retry-after"]) >= 1
        assert_plain_line(statuses[-1])
        assert len(enrolled(live_ca)) == 5
        # Polling an already-queued CSR is not a new request and is not limited.
        assert client.enroll(csrs[0]).status == 202


def test_queue_cap_answers_503(live_ca):
    with serving(live_ca, max_queued=2) as client:
        statuses = [client.enroll(make_csr(f"dev-{i}")[0]).status for i in range(3)]
        assert statuses == [202, 202, 503]
        assert len(enrolled(live_ca)) == 2


def _busy_holder(client: Client) -> socket.socket:
    """A connection in the middle of a request (its body still coming): not one to close for a newcomer."""
    sock = socket.create_connection(("127.0.0.1", client.running.http_port))
    sock.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n0")
    return sock


def test_connection_cap_answers_503_when_all_are_busy_and_recovers(live_ca):
    with serving(live_ca, max_connections=2, timeout=3) as client:
        holders = [_busy_holder(client) for _ in range(2)]
        time.sleep(0.2)
        try:
            answer = raw(client, b"GET /ca.crt HTTP/1.1\r\nHost: x\r\n\r\n", tls=False, wait=5)
            assert answer.startswith(b"HTTP/1.1 503 ") and b"busy" in answer
        finally:
            for sock in holders:
                sock.close()
        time.sleep(0.3)
        assert client.plain("GET", "/ca.crt").status == 200


def test_a_full_server_closes_the_longest_idle_connection_for_a_newcomer(live_ca):
    with serving(live_ca, max_connections=2, timeout=30) as client:
        idle = [socket.create_connection(("127.0.0.1", client.running.http_port)) for _ in range(2)]
        try:
            for sock in idle:  # both accepted and counted before the newcomer comes
                sock.sendall(b"GET /ca.crt HTTP/1.1\r\nHost: x\r\n\r\n")
                sock.settimeout(10)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            assert client.plain("GET", "/ca.crt").status == 200
            idle[0].settimeout(10)
            assert idle[0].recv(65536) == b""  # the oldest idle one was closed, without an answer
        finally:
            for sock in idle:
                sock.close()


def test_tls_garbage_does_not_hurt(client):
    sock = socket.create_connection(("127.0.0.1", client.running.https_port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"\x16\x03\x01" * 100)
    sock.close()
    bad = ssl.create_default_context()  # does not trust this CA
    try:
        client.est("GET", "cacerts", context=bad)
        raise AssertionError("the handshake should have failed")
    except ssl.SSLError:
        pass
    still_serving(client)
