"""EST fuzzed with hypothesis against one real ``tui-ca serve`` process.

Inputs, sent as raw bytes over TLS so that nothing in a client library
cleans them up: garbage bodies, valid CSRs mutated (bit flips, truncation,
insertion, broken DER lengths, deep nesting), odd Unicode in names, bodies
around the 64 KiB limit, odd Content-Type / Content-Transfer-Encoding /
Content-Length / Transfer-Encoding headers, wrong methods and paths.

Invariants, per case:
* the answer is a well-formed HTTP/1.x response (status line, Content-Length
  matching the body) with a 2xx/4xx/5xx status, never 500;
* a refusal is one line of text/plain;
* a refused input leaves every file of the home byte-identical; an accepted
  one (202) is queued and is then rejected by the test, as an admin would;
* the connection is answered, not dropped, unless the request's framing is
  deliberately broken (a body without or with a wrong Content-Length);
and at the end the server still serves, its stderr holds no traceback or
internal error, ``tui-ca list --json`` shows exactly the accepted requests and
the audit count grew by exactly two per accepted request.

Also here: the per-address connection cap and the client-certificate identity
of ``serve --no-anonymous`` (both on a real ``tui-ca serve``).

Fast profile by default (a few hundred cases); ``TUI_CA_LONG=1`` runs over
10,000 cases.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hardening_support import LONG, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_intake import (
    _SEEDS,
    _nested,
    garbage,
    mutated_csr,
    odd_text,
    unicode_csr,
)

from tests.server.live import make_home, run, serve, wait_for
from tests.server.support import make_csr
from tui_ca.engine import CertificateAuthority, RequestStatus
from tui_ca.server.http import DEFAULT_MAX_PER_ADDRESS, MAX_BODY
from tui_ca.server.users import set_user

BODY_EXAMPLES = 5000 if LONG else 150
HEADER_EXAMPLES = 3500 if LONG else 100
ROUTE_EXAMPLES = 2000 if LONG else 60
_SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": not LONG,  # CI runs the same cases every time; the long profile explores
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
}
# Lines in the server's stderr that mean a request escaped the one-line refusals.
_SERVER_FAILURES = ("Traceback", "internal error", "unexpected error")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3}) [^\r\n]*\r\n")  # an HTTP/1.0 request may get a 1.0 answer


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str]
    body: bytes
    dropped: bool
    raw: bytes


def exchange(port: int, data: bytes, context: ssl.SSLContext | None, *, head: bool = False,
             timeout: float = 20, source: str = "127.0.0.1") -> Answer:  # fmt: skip
    """Send ``data`` as is; read one response by its Content-Length (not to EOF: keep-alive)."""
    raw = b""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    try:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(data)
        while True:
            end = raw.find(b"\r\n\r\n")
            if end >= 0:
                headers = _headers(raw[:end])
                wanted = 0 if head else int(headers.get("content-length", "0"))
                if len(raw) - end - 4 >= wanted:
                    found = _STATUS_LINE.match(raw)
                    return Answer(int(found.group(1)) if found else None, headers, raw[end + 4 :], False, raw)
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        sock.close()
    return Answer(None, {}, b"", True, raw)


def _headers(block: bytes) -> dict[str, str]:
    parsed = {}
    for line in block.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        parsed[name.strip().lower()] = value.strip()
    return parsed


@dataclass
class Live:
    """The module's home, server, an admin CA object and the tally of outcomes."""

    home: Path
    serving: object
    errors: Path
    context: ssl.SSLContext
    admin: CertificateAuthority
    baseline: dict = field(default_factory=dict)
    audit_start: int = 0
    accepted: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    cases: int = 0

    def __repr__(self) -> str:  # hypothesis prints it with every failing case
        return f"Live({self.home})"

    def cli(self, *args: str):
        return run(["tui-ca", "--home", str(self.home), *args])


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzzest")
    home = make_home(work)
    errors = work / "serve.err"
    # The server's stderr goes to a file: a pipe nobody reads would fill up
    # with access-log lines and stall the server mid-fuzz.
    redirect = ("sh", "-c", 'exec "$@" 2>>"$0"', str(errors))
    started = time.monotonic()
    with serve(home, "--rate", "0", "--timeout", "3", prefix=redirect) as serving:
        context = ssl.create_default_context(cafile=str(home.chain))
        state = Live(home.path, serving, errors, context, CertificateAuthority(home.path))
        state.baseline = snapshot(home.path)
        state.audit_start = len(state.admin.audit_records())
        yield state
        _still_serving(state)
    text = errors.read_text(errors="replace")
    failures = [line[:300] for line in text.splitlines() if any(bad in line for bad in _SERVER_FAILURES)]
    assert not failures, failures[:20]
    # server-setup's own certificates are on record too; the fuzz is about what clients sent.
    listed = [r for r in json.loads(state.cli("list", "requests", "--json").stdout) if r["source"] != "server-setup"]
    assert sorted(r["id"] for r in listed) == sorted(state.accepted)
    assert all(r["status"] == "rejected" for r in listed)
    records = json.loads(state.cli("audit", "--json").stdout)
    assert len(records) == state.audit_start + 2 * len(state.accepted)
    assert state.cli("audit", "--verify").returncode == 0
    print(f"\nEST fuzz: {state.cases} cases in {time.monotonic() - started:.1f} s; statuses {dict(sorted(state.statuses.items()))}; "
          f"{len(state.accepted)} accepted then rejected; {state.dropped} dropped (broken framing only)")  # fmt: skip


def _still_serving(state: Live) -> None:
    answer = exchange(
        state.serving.https_port, b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\n\r\n", state.context
    )
    assert answer.status == 200, answer.raw[:300]
    plain = exchange(state.serving.http_port, b"GET /ca.crt HTTP/1.1\r\nHost: x\r\n\r\n", None)
    assert plain.status == 200, plain.raw[:300]


def check(state: Live, request: bytes, *, may_drop: bool = False, head: bool = False) -> Answer:
    """One case: send, judge the answer, compare the home with the last known state."""
    state.cases += 1
    answer = exchange(state.serving.https_port, request, state.context, head=head)
    if answer.dropped:
        assert may_drop, f"connection dropped without an answer: {request[:300]!r} got {answer.raw[:300]!r}"
        state.dropped += 1
    else:
        assert answer.status is not None, answer.raw[:300]
        state.statuses[answer.status] = state.statuses.get(answer.status, 0) + 1
        assert answer.status // 100 in (2, 4, 5) and answer.status != 500, answer.raw[:600]
        if not head:
            assert int(answer.headers["content-length"]) == len(answer.body), answer.raw[:600]
        if answer.status >= 400:
            assert answer.headers.get("content-type", "").startswith("text/plain"), answer.raw[:600]
            if not head:
                assert answer.body.endswith(b"\n") and answer.body.count(b"\n") == 1, answer.raw[:600]
                assert b"Traceback" not in answer.body
    if answer.status == 202:
        _accepted(state, answer)
    else:
        after = snapshot(state.home)
        assert after == state.baseline, f"a refused input changed the home: {sorted(set(after) ^ set(state.baseline))} " \
                                        f"{[k for k in after if after.get(k) != state.baseline.get(k)]}"  # fmt: skip
    if state.cases % 50 == 0:
        _still_serving(state)
    return answer


def _accepted(state: Live, answer: Answer) -> None:
    # Nothing is ever approved here, so a 202 is a new request: queued, then rejected.
    # (A 200 is cacerts, or a bug; either way the home must be unchanged.)
    found = re.search(rb"request (\d+) waits", answer.body)
    assert found, answer.body
    request_id = int(found.group(1))
    assert state.admin.request(request_id).status == RequestStatus.QUEUED
    state.admin.reject(request_id, "fuzz")
    state.accepted.append(request_id)
    state.baseline = snapshot(state.home)


# ------------------------------------------------------------------ strategies


def _encodings(der: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from([
        der,
        base64.b64encode(der),
        base64.encodebytes(der),
        base64.encodebytes(der).replace(b"\n", b"\r\n"),
        b"  " + base64.b64encode(der) + b"\n\n",
        base64.b64encode(der)[:-2],  # padding cut
        base64.b64encode(der).replace(b"A", b"-", 1),  # one character outside the alphabet
    ])  # fmt: skip


def _pem_of(der: bytes) -> bytes:
    try:
        return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
    except ValueError:
        return der


bodies = st.one_of(
    garbage,
    mutated_csr().flatmap(_encodings),
    unicode_csr().flatmap(_encodings),
    st.sampled_from(_SEEDS).map(_pem_of).flatmap(_encodings),
    st.sampled_from([_nested(2000), _nested(12000), b"\x30\x80" * 3000]).flatmap(_encodings),
    st.integers(MAX_BODY - 64, MAX_BODY + 512).map(lambda n: b"A" * n),
    odd_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
)

_CONTENT_TYPES = ["application/pkcs10", "application/pkcs10; charset=utf-8", "text/plain", "", "application/json",
                  "multipart/form-data; boundary=x", "application/pkcs10\x0b", "appl\u00efcation/pkcs10",
                  "application/pkcs7-mime; smime-type=certs-only", "*/*" * 200]  # fmt: skip
_ENCODINGS = ["base64", "BASE64", "binary", "8bit", "quoted-printable", "gzip", "", "base64, base64", "\u00e9"]
# Content-Length values that are not a plain count: each must be refused, not crash.
_BAD_LENGTHS = ["-5", "-0", "abc", " ", "+12", "0x10", "1e3", "1_000", "12 34", "\u00b2", "\u00b9\u00b2",
                "\u0663\u0662", "99999999999999999999999", "\u00bd", "NaN", "0" * 300]  # fmt: skip


@st.composite
def enroll_request(draw, body: bytes | None = None) -> tuple[bytes, bool]:
    """A POST to simple(re)enroll with fuzzed headers; returns (bytes, framing_broken)."""
    op = draw(st.sampled_from(["simpleenroll", "simpleenroll", "simplereenroll"]))
    body = draw(bodies) if body is None else body
    lines = [f"POST /.well-known/est/{op} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    if draw(st.booleans()):
        lines.append(b"Content-Type: " + draw(st.sampled_from(_CONTENT_TYPES)).encode("latin-1", "replace"))
    if draw(st.booleans()):
        lines.append(b"Content-Transfer-Encoding: " + draw(st.sampled_from(_ENCODINGS)).encode("latin-1", "replace"))
    mode = draw(st.sampled_from(["exact"] * 4 + ["duplicate", "missing", "bad", "huge", "smaller", "chunked"]))
    broken = mode not in ("exact", "duplicate") and bool(body)
    if mode == "exact":
        lines.append(b"Content-Length: %d" % len(body))
    elif mode == "duplicate":
        lines += [b"Content-Length: %d" % len(body), b"content-length: %d" % len(body)]
    elif mode == "bad":
        value = draw(st.one_of(st.sampled_from(_BAD_LENGTHS), odd_text))
        lines.append(b"Content-Length: " + value.encode("latin-1", "replace").replace(b"\r", b"").replace(b"\n", b""))
        broken = True
    elif mode == "huge":
        lines.append(b"Content-Length: %d" % draw(st.integers(2 * 1024 * 1024, 2**64)))
        broken = True
    elif mode == "smaller":
        lines.append(b"Content-Length: %d" % draw(st.integers(0, max(0, len(body) - 1))))
    elif mode == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        broken = True
    if draw(st.booleans()):
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body, broken


_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH", "post", "Get", "PRI"]
_PATHS = ["/.well-known/est/simpleenroll", "/.well-known/est/simplereenroll", "/.well-known/est/cacerts",
          "/.well-known/est/lbl/simpleenroll", "/.well-known/est/a/b/simpleenroll", "/.well-known/est/",
          "/.well-known/est", "/", "*", "//.well-known/est/simpleenroll", "/.well-known/est/simpleenroll/",
          "/.well-known/est/simpleenroll?x=\u00fc", "/.well-known/est/%73impleenroll", "/.well-known/est/csrattrs",
          "/.well-known/est/serverkeygen", "/../../etc/passwd", "http://127.0.0.1/.well-known/est/cacerts"]  # fmt: skip


@st.composite
def routed_request(draw) -> tuple[bytes, bool, bool]:
    """Any method on any path with a well-framed small body; returns (bytes, is_head, framing_broken)."""
    method = draw(st.one_of(st.sampled_from(_METHODS), st.from_regex(r"[A-Za-z_]{1,12}", fullmatch=True)))
    path = draw(st.one_of(st.sampled_from(_PATHS), odd_text.map(lambda t: "/.well-known/est/" + t)))
    path_bytes = path.encode("utf-8", "surrogatepass").replace(b" ", b"%20")
    path_bytes = re.sub(rb"[\x00-\x1f\x7f]", b"_", path_bytes)
    body = draw(st.one_of(st.just(b""), st.sampled_from(_SEEDS).map(base64.b64encode), st.binary(max_size=64)))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    request = b"%s %s %s\r\nHost: x\r\nContent-Length: %d\r\n" % (method.encode(), path_bytes, version, len(body))
    return request + b"Connection: close\r\n\r\n" + body, method == "HEAD", False


# ----------------------------------------------------------------------- tests


@settings(max_examples=BODY_EXAMPLES, **_SETTINGS)
@given(case=enroll_request())
def test_enroll_bodies_and_headers(live, case):
    request, broken = case
    check(live, request, may_drop=broken)


@settings(max_examples=HEADER_EXAMPLES, **_SETTINGS)
@given(case=st.sampled_from(_SEEDS).flatmap(lambda der: enroll_request(body=base64.b64encode(der))))
def test_valid_csr_with_odd_headers(live, case):
    # A valid CSR behind odd headers: accepted when the framing is sound, else refused whole.
    request, broken = case
    check(live, request, may_drop=broken)


@settings(max_examples=ROUTE_EXAMPLES, **_SETTINGS)
@given(case=routed_request())
def test_methods_and_paths(live, case):
    request, head, broken = case
    check(live, request, may_drop=broken, head=head)


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\nMIIB",
                 id="superscript-two-length"),
    pytest.param(b"PUT /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n" + b"A" * 4000,
                 id="unknown-method-with-body"),
    pytest.param(b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                 % (MAX_BODY + 1, b"A" * (MAX_BODY + 1)), id="one-over-the-limit"),
])  # fmt: skip
def test_fixed_regressions(live, request_bytes):
    check(live, request_bytes)


# ------------------------------------------------------- per-address connection cap


def test_one_address_cannot_take_every_connection_slot(live):
    port = live.serving.http_port
    get = b"GET /ca.crt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    holders = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(DEFAULT_MAX_PER_ADDRESS)]
    try:
        # Until the server has accepted every holder a probe may still get a slot.
        refused = wait_for(lambda: (a := exchange(port, get, None)).status == 503 and a, timeout=60)
        assert b"too many connections from this address" in refused.body and refused.body.count(b"\n") == 1
        assert refused.headers["content-type"].startswith("text/plain")
        # Other addresses, and the EST listener (its own slots), are still served.
        assert exchange(port, get, None, source="127.0.0.2").status == 200
        assert exchange(live.serving.https_port, b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n", live.context).status == 200  # fmt: skip
    finally:
        for sock in holders:
            sock.close()
    # Once the holders are gone the address gets its slots back.
    wait_for(lambda: exchange(port, get, None).status == 200, timeout=60)


def test_the_tls_listener_caps_per_address_too(live):
    port = live.serving.https_port
    holders = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(DEFAULT_MAX_PER_ADDRESS)]
    try:
        refused = wait_for(lambda: (a := exchange(port, b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\n\r\n",
                                                  live.context)).status == 503 and a, timeout=60)  # fmt: skip
        assert b"too many connections from this address" in refused.body, refused.raw
    finally:
        for sock in holders:
            sock.close()
    wait_for(lambda: exchange(port, b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                              live.context).status == 200, timeout=60)  # fmt: skip


# ------------------------------------------------- client-certificate identity


def _post(port: int, context: ssl.SSLContext, der: bytes, extra: bytes = b"", op: bytes = b"simpleenroll") -> Answer:
    body = base64.b64encode(der)
    return exchange(port, b"POST /.well-known/est/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s"
                          b"Connection: close\r\n\r\n%s" % (op, len(body), extra, body), context)  # fmt: skip


def test_no_anonymous_records_the_client_certificates_requester(tmp_path):
    home = make_home(tmp_path)
    users = tmp_path / "users"
    set_user(users, "phone-9", "correct horse")
    basic = b"Authorization: Basic " + base64.b64encode(b"phone-9:correct horse") + b"\r\n"
    with serve(home, "--rate", "0", "--no-anonymous", "--users", str(users)) as serving:
        port = serving.https_port
        anonymous = ssl.create_default_context(cafile=str(home.chain))
        der, key = make_csr("phone-9-first")
        assert _post(port, anonymous, der, basic).status == 202
        first = home.request_id(1)
        home.cli("approve", first)
        collected = _post(port, anonymous, der, basic)
        assert collected.status == 200
        (tmp_path / "leaf.pem").write_bytes(home.cli("export", first).stdout)
        (tmp_path / "leaf.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))  # fmt: skip
        with_cert = ssl.create_default_context(cafile=str(home.chain))
        with_cert.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")

        # The certificate is phone-9's: a CSR naming another requester does not borrow that name.
        before = snapshot(home.path)
        borrowed = _post(port, with_cert, make_csr("phone-9-second")[0])
        assert borrowed.status == 403 and b"only as requester 'phone-9'" in borrowed.body, borrowed.raw
        assert snapshot(home.path) == before
        renewal = _post(port, with_cert, make_csr("phone-9-first")[0], op=b"simplereenroll")
        assert renewal.status == 202, renewal.raw
        second = home.request_id(2)
        request = json.loads(home.cli("show", second, "--json").stdout)
        ca = CertificateAuthority(home.path)
        stored = ca.request(int(second))
        assert (stored.submitted_by.user, stored.submitted_by.address) == ("cert:phone-9", "127.0.0.1"), request
        assert (stored.requester, stored.via) == ("phone-9", "certificate")
        [record] = [r for r in ca.audit_records() if r.action == "submit" and r.target == f"request {second}"]
        assert (record.user, record.address) == ("cert:phone-9", "127.0.0.1")

        # A revoked certificate identifies nobody, and nothing is stored.
        home.cli("revoke", first)
        before = snapshot(home.path)
        refused = _post(port, with_cert, make_csr("phone-9-third")[0])
        assert refused.status == 401 and b"revoked" in refused.body, refused.raw
        assert refused.body.count(b"\n") == 1
        assert snapshot(home.path) == before
        assert _post(port, anonymous, make_csr("phone-9-fourth")[0]).status == 401
