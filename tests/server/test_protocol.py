"""HTTP details that the http.server plumbing got wrong: smuggling shapes, idle keep-alive, close_notify, access log."""

from __future__ import annotations

import http.client
import json
import logging
import select
import socket
import ssl
import time

import pytest

from tests.server.support import b64, enrolled, exchange, make_csr, serving
from tui_ca.server.http import json_line, plain_address
from tui_ca.server.listener import unbracketed

SMUGGLING = [
    (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n0000", "two Content-Lengths"),
    (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\n0000", "a Content-Length list"),
    (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "CL and TE"),
    (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "two Transfer-Encodings"),
    (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", "a TE list"),
    (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", "an odd TE"),
    (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "space before the colon"),
    (b"GET /ca.crt HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\n\r\nGET /ca.crl HTTP/1.1\r\nHost: x\r\n\r\n", "a GET with a body"),
    (b"GET /ca.crt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "a chunked GET"),
]  # fmt: skip


@pytest.mark.parametrize("data, shape", SMUGGLING, ids=[shape for _, shape in SMUGGLING])
def test_smuggling_shapes_get_one_400_and_the_connection_closes(client, live_ca, data, shape):
    for tls in (False, True):
        if tls:
            data = data.replace(b"/ocsp", b"/.well-known/est/simpleenroll").replace(
                b"/ca.crt", b"/.well-known/est/cacerts"
            )
        answer = exchange(client, data, tls=tls)
        assert answer.startswith(b"HTTP/1.1 400 "), (shape, tls, answer[:200])
        # Exactly one answer: nothing after the first request was read as a second one.
        assert answer.count(b"HTTP/1.1 ") == 1, (shape, tls, answer)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"content-type: text/plain" in head.lower() and body.endswith(b"\n") and body.count(b"\n") == 1
    assert enrolled(live_ca) == []


def test_an_answer_the_parser_refused_is_counted_and_logs_nothing_else(client, caplog):
    """The 400 for a request aiohttp could not parse reaches the response observers (the /metrics
    counters) like any other answer, and the access logger raises nothing for aiohttp to report."""
    seen: list[tuple[str, int]] = []
    client.running.context.response_observers.append(lambda path, status, _: seen.append((path, status)))
    for tls in (False, True):
        with caplog.at_level(logging.DEBUG, logger="aiohttp"):
            assert exchange(client, SMUGGLING[0][0], tls=tls).startswith(b"HTTP/1.1 400 ")
            # The observer runs after the answer is written: wait for it, not for a fixed time.
            deadline = time.monotonic() + 20
            while len(seen) < (2 if tls else 1) and time.monotonic() < deadline:
                time.sleep(0.01)
    assert seen == [("/", 400), ("/", 400)]
    assert [
        r.getMessage() for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.WARNING
    ] == []


def test_a_good_request_after_smuggling_still_works(client):
    exchange(client, SMUGGLING[0][0], tls=False)
    assert client.plain("GET", "/ca.crt").status == 200


def _wait_closed(sock: socket.socket, timeout: float = 20) -> bytes:
    """What the server sends on an idle connection until it closes it."""
    deadline = time.monotonic() + timeout
    received = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.5)
        if readable:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    raise AssertionError("the idle connection was not closed")


def test_idle_keep_alive_after_timeout_is_closed_without_a_stale_408(live_ca):
    with serving(live_ca, timeout=1.0) as client:
        conn = http.client.HTTPConnection("127.0.0.1", client.running.http_port, timeout=20)
        try:
            conn.request("GET", "/ca.crt")
            first = conn.getresponse()
            first.read()
            assert first.status == 200 and not first.will_close
            assert _wait_closed(conn.sock) == b""  # no unsolicited answer waits in the socket
            # A pooled client sees the closed connection and opens a new one; the
            # answer it then reads belongs to its own request.
            conn.close()
            conn.request("GET", "/ca.crl")
            second = conn.getresponse()
            assert second.status == 200 and second.getheader("content-type") == "application/pkix-crl"
            second.read()
        finally:
            conn.close()


def test_tls_closes_with_close_notify(live_ca):
    with serving(live_ca, timeout=1.0) as client:
        # After an answer with Connection: close.
        answer = exchange(client, b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          tls=True)  # fmt: skip
        assert answer.startswith(b"HTTP/1.1 200 ")
        # After a refusal that closes.
        assert exchange(client, b"GARBAGE\r\n\r\n", tls=True).startswith(b"HTTP/1.1 400 ")
        # An idle connection at --timeout: a clean TLS shutdown, then the socket can be unwrapped.
        raw = socket.create_connection(("127.0.0.1", client.running.https_port), timeout=20)
        sock = client.context.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False)
        try:
            assert sock.recv(1024) == b""
            sock.unwrap()
        except ssl.SSLEOFError as exc:
            raise AssertionError("closed without close_notify") from exc
        finally:
            sock.close()


def test_access_log_is_one_escaped_json_line_per_request(live_ca, capsys):
    with serving(live_ca, quiet=False) as client:
        exchange(client, b"GET /ca.crt?\x1b[31mred HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tls=False)
        exchange(client, b"GET /\x1b[2J\x07 HTTP/1.1\r\nHost: x\r\n\r\n", tls=False)
        odd, _ = make_csr('café "} {"status": 200')
        assert client.est("POST", "simpleenroll", b64(odd), {"Content-Type": "application/pkcs10"}).status == 202
        der, _ = make_csr("logged-phone")
        assert client.est("POST", "simpleenroll", b64(der), {"Content-Type": "application/pkcs10"}).status == 202
        assert client.est("POST", "simpleenroll", b"garbage").status == 400
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and err.isascii()
    entries = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    requests = [e for e in entries if "status" in e]
    assert len(requests) >= 4
    for entry in requests:
        assert {"time", "peer", "method", "path", "status", "bytes", "ms"} <= entry.keys()
    queued = next(e for e in requests if e["status"] == 202 and e["requester"] == "logged-phone")
    assert queued["peer"] == "127.0.0.1" and queued["request"] == enrolled(live_ca)[-1].id
    refused = next(e for e in requests if e["status"] == 400 and e["path"].startswith("/.well-known"))
    assert "base64" in refused["reason"]  # an EST refusal logs its reason
    assert any(e.get("requester") == 'café "} {"status": 200' for e in requests)  # escaped, intact once parsed
    assert sum(e["status"] == 400 and e["path"] == "/" for e in requests) == 2  # control characters: refused, logged


def test_a_failed_handshake_logs_why(live_ca, capsys):
    """Plain HTTP on the TLS port and a client that does not trust the chain each log OpenSSL's reason."""
    with serving(live_ca, quiet=False) as client:
        with socket.create_connection(("127.0.0.1", client.running.https_port), timeout=20) as sock:
            sock.sendall(b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(1024)  # the server closes; what it sends before (a TLS alert or nothing) does not matter
        untrusting = ssl.create_default_context()  # the system's roots, not this CA
        with pytest.raises(ssl.SSLCertVerificationError):
            with socket.create_connection(("127.0.0.1", client.running.https_port), timeout=20) as sock:
                untrusting.wrap_socket(sock, server_hostname="127.0.0.1")
        errors: list[str] = []
        deadline = time.monotonic() + 20
        while len(errors) < 2 and time.monotonic() < deadline:
            for line in capsys.readouterr().err.splitlines():
                entry = json.loads(line)
                if entry.get("event") == "TLS handshake failed":
                    errors.append(entry["error"])
            time.sleep(0.01)
    assert errors == ["SSLError: HTTP_REQUEST", "SSLError: TLSV1_ALERT_UNKNOWN_CA"]


@pytest.mark.parametrize(
    "value",
    ["plain", "\x1b[31m\x07\x00\n\u2028", 'café "} {"status": 200', "/\udcff\udc80", 1 << 80, 1.5, None],
    ids=["ascii", "controls", "non-ascii", "lone-surrogates", "big-int", "float", "null"],
)
def test_an_access_log_line_is_ascii_json_whatever_it_carries(value):
    line = json_line({"time": "2026-12-01T00:00:00.000Z", "path": value, "status": 200})
    assert line.isascii() and "\n" not in line and "\x1b" not in line
    assert json.loads(line) == {"time": "2026-12-01T00:00:00.000Z", "path": value, "status": 200}


def test_x_forwarded_for_counts_only_from_a_named_proxy(live_ca):
    headers = {"Content-Type": "application/pkcs10", "X-Forwarded-For": "198.51.100.1, 192.0.2.7"}
    with serving(live_ca) as client:
        assert client.est("POST", "simpleenroll", b64(make_csr("direct")[0]), headers).status == 202
    with serving(live_ca, trust_proxy=("127.0.0.1",)) as client:
        assert client.est("POST", "simpleenroll", b64(make_csr("proxied")[0]), headers).status == 202
    direct, proxied = enrolled(live_ca)
    assert direct.submitted_by.address == "127.0.0.1"  # a client cannot name its own address
    assert proxied.submitted_by.address == "192.0.2.7"  # the hop the trusted proxy added, not the client's claim


@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="this machine makes no dual-stack IPv6 sockets")
def test_listening_on_every_address_takes_ipv4_clients_under_their_ipv4_address(live_ca):
    """``--host ::`` answers IPv4 clients too, and knows them (limits, log, --trust-proxy) by their IPv4 address."""
    headers = {"Content-Type": "application/pkcs10"}
    with serving(live_ca, host="::", trust_proxy=("127.0.0.1",)) as client:
        forwarded = {**headers, "X-Forwarded-For": "192.0.2.9"}
        assert client.est("POST", "simpleenroll", b64(make_csr("dual-proxied")[0]), forwarded).status == 202
        assert client.est("POST", "simpleenroll", b64(make_csr("dual-direct")[0]), headers).status == 202
        assert client.plain("GET", "/ca.crt").status == 200
    proxied, direct = enrolled(live_ca)
    assert proxied.submitted_by.address == "192.0.2.9"  # the IPv4 proxy is named though it came in on IPv6
    assert direct.submitted_by.address == "127.0.0.1"  # not ::ffff:127.0.0.1


@pytest.mark.parametrize(
    "given, plain",
    [("::ffff:192.0.2.7", "192.0.2.7"), ("::ffff:c000:207", "192.0.2.7"), ("127.0.0.1", "127.0.0.1"),
     ("::1", "::1"), ("2001:db8::ffff:1", "2001:db8::ffff:1"), ("::ffff:nonsense", "::ffff:nonsense"), ("-", "-")],
)  # fmt: skip
def test_an_ipv4_mapped_peer_is_known_by_its_ipv4_address(given, plain):
    assert plain_address(given) == plain


@pytest.mark.parametrize("given, host", [("[::1]", "::1"), ("::", "::"), ("127.0.0.1", "127.0.0.1"), ("[", "[")])
def test_an_ipv6_listening_address_may_come_in_brackets(given, host):
    assert unbracketed(given) == host


def test_serve_refuses_bad_new_flags_with_one_line(live_ca):
    import subprocess
    import sys

    for flags, message in ((["--trust-proxy", "proxy.example"], "--trust-proxy takes IP addresses"),
                           (["--max-connections", "0"], "--max-connections and --workers must be at least 1")):  # fmt: skip
        result = subprocess.run([sys.executable, "-m", "tui_ca", "--home", str(live_ca.home), "serve", "--port", "0",
                                 "--http-port", "0", *flags],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
        assert result.returncode == 2 and result.stderr == f"tui-ca: {message}\n", result.stderr
