"""EST (RFC 7030, with RFC 8951's base64 rules) over HTTPS.

Enrollment is an intake: a new CSR is queued and answered 202; the client
re-sends the identical CSR to poll, and once an admin has decided it gets the
certificate (200) or the reason (4xx). Nothing here signs anything. Each CSR
is parsed and checked once, in the executor, and handed to the group commit.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from http import HTTPStatus

from aiohttp import hdrs, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from tui_ca.engine.applicant import Applicant, may_follow_request
from tui_ca.engine.ca import Submission
from tui_ca.engine.csr_policy import check_and_describe, load_csr
from tui_ca.engine.errors import InputError, NotFoundError, RuleError
from tui_ca.engine.models import Actor, Certificate, CsrDetails, Request, RequestStatus
from tui_ca.engine.names import check_renewal
from tui_ca.engine.store.protocol import StoreUnavailableError
from tui_ca.server.context import CONTEXT, Context
from tui_ca.server.http import DEADLINE, PEER, REQUEST_ID, REQUESTER, HttpError, one_line, plain, read_body
from tui_ca.server.limits import retry_after
from tui_ca.server.paths import EST_PREFIX
from tui_ca.server.status import cacheable

PKCS7_TYPE = "application/pkcs7-mime; smime-type=certs-only"
ANONYMOUS = "anonymous"
_REALM = {"WWW-Authenticate": 'Basic realm="tui-ca EST", charset="UTF-8"'}
_ENROLL = ("simpleenroll", "simplereenroll")


def certs_only(certs: list[x509.Certificate]) -> bytes:
    """A certs-only PKCS#7 as RFC 8951 base64 (RFC 4648 §4, no line breaks)."""
    return base64.b64encode(pkcs7.serialize_certificates(certs, serialization.Encoding.DER))


def decode_csr_body(body: bytes) -> bytes:
    """The CSR (DER or PEM) inside an EST body: base64 with or without line
    breaks, whatever Content-Transfer-Encoding says (RFC 8951 §3), PEM, or raw DER."""
    text = body.strip()
    if not text:
        raise InputError("the body is empty; send a base64-encoded PKCS#10 CSR")
    if text.startswith(b"-----BEGIN"):
        return text
    try:
        decoded = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = None
    if decoded:
        return decoded.strip() if decoded.lstrip().startswith(b"-----BEGIN") else decoded
    if text[:1] == b"\x30":
        return body
    raise InputError("the body is neither base64 nor a PKCS#10 CSR")


def operation(path: str) -> str:
    if not path.startswith(EST_PREFIX):
        return ""
    parts = path[len(EST_PREFIX) :].strip("/").split("/")
    # /.well-known/est/<label>/<op>: one CA here, so any label means the same CA.
    return parts[-1] if 1 <= len(parts) <= 2 else ""


def _unknown() -> HttpError:
    return HttpError(HTTPStatus.NOT_FOUND,
                     "not an EST operation offered here (cacerts, csrattrs, simpleenroll, simplereenroll)")  # fmt: skip


async def handle(request: web.Request) -> web.StreamResponse:
    """Every path under /.well-known/est/."""
    op = operation(request.path)
    if request.method in (hdrs.METH_GET, hdrs.METH_HEAD):
        if op == "cacerts":
            return await cacerts(request)
        if op == "csrattrs":
            # RFC 7030 §4.5.2: no attributes wanted, so 204.
            return web.Response(status=HTTPStatus.NO_CONTENT, headers={"Cache-Control": "no-store"})
        if op in _ENROLL:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{op} takes a POST with a CSR", {"Allow": "POST"})
        raise _unknown()
    if request.method == hdrs.METH_POST:
        if op in _ENROLL:
            return await enroll(request, op)
        if op in ("cacerts", "csrattrs"):
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{op} takes a GET", {"Allow": "GET"}, close=True)
        raise _unknown()
    raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"method {one_line(request.method, 20)} is not supported",
                    {"Allow": "GET, POST"}, close=True)  # fmt: skip


async def cacerts(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    issuing, root = await ctx.run(lambda: (ctx.reader.issuing_cert(), ctx.reader.root_cert()))
    body = certs_only([issuing, root])
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return cacheable(request, body, PKCS7_TYPE, etag=etag, last_modified=issuing.not_valid_before_utc, expires=None,
                     max_age=86400)  # fmt: skip


# ----------------------------------------------------------------- identity


def _client_cert_der(request: web.Request) -> bytes | None:
    tls = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
    return tls.getpeercert(binary_form=True) if tls is not None else None


def _stored_for(ctx: Context, der: bytes) -> Certificate | None:
    """The stored certificate that is exactly this client certificate, if any."""
    cert = x509.load_der_x509_certificate(der)
    try:
        stored = ctx.reader.certificate(f"0x{cert.serial_number:x}")
    except NotFoundError:
        return None
    return stored if stored.sha256 == cert.fingerprint(hashes.SHA256()).hex() else None


async def authenticate(request: web.Request, ctx: Context, op: str) -> tuple[Applicant, str, Certificate | None]:
    """(who authenticated, the name the audit records, the stored client certificate).

    The server only reports who it is talking to; which requester names that
    identity may take is the engine's decision (applicant.py).
    """
    given = request.headers.getall(hdrs.AUTHORIZATION, [])
    if len(given) > 1:
        # A proxy in front may have checked one and we would check the other: refused, like smuggling.
        raise HttpError(HTTPStatus.BAD_REQUEST, "more than one Authorization header", close=True)
    header = given[0] if given else None
    der = _client_cert_der(request)
    stored = await ctx.run(_stored_for, ctx, der) if der is not None else None
    if header is None:
        # Re-enrollment may present a certificate its own renewal has just
        # superseded (polling), so only simpleenroll insists on an active one.
        if stored is not None and (op == "simplereenroll" or stored.is_active(ctx.reader.now())):
            return Applicant.certificate(stored), f"cert:{stored.requester}", stored
        if ctx.options.anonymous:
            reserved = ctx.users.reserved if ctx.users is not None else None
            return Applicant.anonymous(reserved), ANONYMOUS, stored
        if der is not None:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "the client certificate is revoked, expired or not one this "
                            "CA issued to a requester; use an EST user name and password", _REALM)  # fmt: skip
        raise HttpError(HTTPStatus.UNAUTHORIZED, "this server needs an EST user name and password", _REALM)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        raise HttpError(HTTPStatus.UNAUTHORIZED, "only HTTP Basic credentials are accepted", _REALM)
    name, password = _basic_credentials(token)
    peer = request[PEER]
    wait = ctx.logins.wait(peer, name)
    if wait:
        raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, "too many failed logins from this address or for this user; "
                        "wait", {"Retry-After": retry_after(wait)})  # fmt: skip
    if not await ctx.logins.check(ctx, peer, name, password) or ctx.users is None:
        raise HttpError(HTTPStatus.UNAUTHORIZED, "wrong EST user name or password", _REALM)
    request[REQUESTER] = name
    return ctx.users.applicant(name), name, stored


def _basic_credentials(token: str) -> tuple[str, str]:
    """(name, password) of an HTTP Basic token; a 401 that says what is wrong with a malformed one."""
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    name, sep, password = decoded.partition(b":")
    if not sep:
        raise HttpError(HTTPStatus.UNAUTHORIZED, "the Basic credentials are not base64 of name:password", _REALM)
    try:
        return name.decode(), password.decode()
    except UnicodeDecodeError:
        # The realm says charset="UTF-8" (RFC 7617 §2.1): another charset would check a different password.
        raise HttpError(HTTPStatus.UNAUTHORIZED, "the Basic credentials are not UTF-8", _REALM) from None


# --------------------------------------------------------------- enrollment


def _parse(csr_data: bytes) -> tuple[x509.CertificateSigningRequest, CsrDetails]:
    csr = load_csr(csr_data)
    return csr, check_and_describe(csr)


def _look_up(ctx: Context, csr_data: bytes) -> tuple[x509.CertificateSigningRequest, CsrDetails, Request | None, int]:
    """Parse and check once; the request already made from this CSR, if any (polling); the queue's length."""
    csr, details = _parse(csr_data)
    return csr, details, ctx.reader.find_by_csr_digest(details.csr_sha256), ctx.reader.queued_count()


async def enroll(request: web.Request, op: str) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    applicant, actor_user, stored = await authenticate(request, ctx, op)
    body = await read_body(request, request[DEADLINE])
    try:
        return await _enroll(request, ctx, op, applicant, actor_user, stored, body)
    except StoreUnavailableError:
        raise  # not the client's fault: a 503 to come back, from the middleware
    except RuleError as exc:
        if str(exc).startswith("the queue is full"):
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), {"Retry-After": "60"}) from None
        # The client hears what it may know; the log keeps the IDs and serials (errors.CAError.public).
        raise HttpError(HTTPStatus.FORBIDDEN, exc.public, detail=str(exc)) from None
    except InputError as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, exc.public, detail=str(exc)) from None


async def _enroll(request: web.Request, ctx: Context, op: str, applicant: Applicant, actor_user: str,
                  stored: Certificate | None, body: bytes) -> web.StreamResponse:  # fmt: skip
    actor = Actor(user=actor_user, address=request[PEER])
    seen: dict[str, str] = {}
    try:
        admitted = await _admit(request, ctx, op, applicant, actor, stored, body, seen)
    except StoreUnavailableError:
        raise  # the store is down, not a refusal to record
    except (HttpError, InputError, RuleError) as exc:
        # Refused before the engine's intake (which records its own refusals):
        # kept so that an admin can tell the client why nothing was queued.
        reason = exc.reason if isinstance(exc, HttpError) else str(exc)
        if not ctx.refusal_records.take(request[PEER]):
            await ctx.run(functools.partial(ctx.ca.record_refusal, reason, source="est", actor=actor,
                                            requester=seen.get("requester", applicant.name), subject=seen.get("subject")))  # fmt: skip
        raise
    if isinstance(admitted, Request):
        return await _answer(request, ctx, admitted)
    result = await ctx.intake.submit(admitted)
    request[REQUEST_ID] = result.request.id
    return await _answer(request, ctx, result.request)


async def _admit(request: web.Request, ctx: Context, op: str, applicant: Applicant, actor: Actor,
                 stored: Certificate | None, body: bytes, seen: dict[str, str]) -> Request | Submission:  # fmt: skip
    """The request this CSR already made (polling), or the submission to queue; the refusals before intake."""
    renewal = None
    if op == "simplereenroll":
        if _client_cert_der(request) is None:
            raise HttpError(HTTPStatus.FORBIDDEN,
                            "simplereenroll needs the certificate being renewed as the TLS client certificate")  # fmt: skip
        if stored is None:
            raise HttpError(HTTPStatus.FORBIDDEN, "the client certificate was not issued to a requester of this CA")
        renewal = stored
        seen["requester"] = renewal.requester
        # What renews a certificate is the certificate itself, whatever else was sent.
        applicant = Applicant.certificate(stored)
    csr_data = decode_csr_body(body)
    csr, details, known, queued = await ctx.run(_look_up, ctx, csr_data)
    seen["subject"] = details.subject
    if renewal is not None:
        # RFC 7030 §4.2.2: the same subject and the same SANs.
        check_renewal(csr, renewal.subject, renewal.sans)
    if known is not None:
        if not may_follow_request(applicant, known):
            raise HttpError(HTTPStatus.FORBIDDEN, "this CSR belongs to a request of another requester",
                            detail=f"the CSR of request {known.id} (requester {known.requester!r}, sent as "
                            f"{known.via}) was re-sent by {actor.user}")  # fmt: skip
        # Polling: once the renewal is approved the old certificate is
        # revoked (superseded), yet it is still what the client presents.
        return known
    if renewal is not None and not renewal.is_active(ctx.reader.now()):
        raise HttpError(HTTPStatus.FORBIDDEN, f"certificate {renewal.id} is revoked or expired; enroll anew instead")
    wait = ctx.limiter.take(request[PEER])
    if wait:
        raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, "too many new requests from this address; slow down",
                        {"Retry-After": retry_after(wait)})  # fmt: skip
    if queued >= ctx.options.max_queued:
        raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE,
                        f"the queue is full ({queued} requests wait for a decision); try again later",
                        {"Retry-After": "60"})  # fmt: skip
    return Submission(csr, details, actor=actor, renewal_of=renewal.id if renewal else None,
                      applicant=applicant)  # fmt: skip


async def _answer(request: web.Request, ctx: Context, item: Request) -> web.StreamResponse:
    request[REQUESTER] = item.requester
    request[REQUEST_ID] = item.id
    if item.status == RequestStatus.QUEUED:
        return plain(HTTPStatus.ACCEPTED,
                     f"request {item.id} waits for an admin's approval; re-send the same CSR to collect it",
                     {"Retry-After": str(ctx.options.retry_after)})  # fmt: skip
    if item.status == RequestStatus.APPROVED:
        issued = await ctx.run(ctx.reader.issued_certificate, item.id)
        if issued is None:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, f"certificate {item.id} is being stored; try again",
                            {"Retry-After": "1"})  # fmt: skip
        cert, pem = issued
        if cert.revoked_at is not None:
            raise HttpError(HTTPStatus.FORBIDDEN, f"certificate {cert.id} issued for this CSR has been revoked")
        body = certs_only([x509.load_pem_x509_certificate(pem)])
        return web.Response(body=body, headers={"Content-Type": PKCS7_TYPE, "Cache-Control": "no-store"})
    reason = one_line(item.reason or "no reason given", 300)
    raise HttpError(HTTPStatus.FORBIDDEN, f"request {item.id} was {item.status.value}: {reason}")
