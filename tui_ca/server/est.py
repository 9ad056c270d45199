"""EST (RFC 7030, with RFC 8951's base64 rules) over HTTPS.

Enrollment is an intake: a new CSR is queued and answered 202; the client
re-sends the identical CSR to poll, and once an admin has decided it gets the
certificate (200) or the reason (4xx). Nothing here signs anything.
"""

from __future__ import annotations

import base64
import binascii
from http import HTTPStatus

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from tui_ca.engine.csr_policy import load_csr
from tui_ca.engine.errors import InputError, NotFoundError, RuleError
from tui_ca.engine.models import Actor, Request, RequestStatus
from tui_ca.server.http import Handler, HttpError, one_line
from tui_ca.server.limits import retry_after

PREFIX = "/.well-known/est/"
PKCS7_TYPE = "application/pkcs7-mime; smime-type=certs-only"
ANONYMOUS = "anonymous"
_REALM = {"WWW-Authenticate": 'Basic realm="tui-ca EST", charset="UTF-8"'}


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


class EstHandler(Handler):
    """The HTTPS listener: the three EST operations this CA offers."""

    def do_GET(self) -> None:
        op = self._operation()
        if op == "cacerts":
            app = self.server.app
            self.reply(HTTPStatus.OK, certs_only([app.reader.issuing_cert(), app.reader.root_cert()]), PKCS7_TYPE)
        elif op in ("simpleenroll", "simplereenroll"):
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{op} takes a POST with a CSR", {"Allow": "POST"})
        else:
            self._unknown(op)

    def do_POST(self) -> None:
        op = self._operation()
        if op not in ("simpleenroll", "simplereenroll"):
            if op == "cacerts":
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "cacerts takes a GET", {"Allow": "GET"}, close=True)
            self._unknown(op)
        user, actor_user = self._authenticate(op)
        body = self.read_body()
        try:
            self._enroll(op, user, actor_user, decode_csr_body(body))
        except RuleError as exc:
            if str(exc).startswith("the queue is full"):
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), {"Retry-After": "60"}) from None
            raise HttpError(HTTPStatus.FORBIDDEN, str(exc)) from None
        except InputError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None

    do_HEAD = do_GET

    # ---------------------------------------------------------------- routing

    def _operation(self) -> str:
        path = self.path.split("?", 1)[0]
        if not path.startswith(PREFIX):
            return ""
        parts = path[len(PREFIX) :].strip("/").split("/")
        # /.well-known/est/<label>/<op>: one CA here, so any label means the same CA.
        return parts[-1] if 1 <= len(parts) <= 2 else ""

    def _unknown(self, op: str) -> None:
        raise HttpError(
            HTTPStatus.NOT_FOUND, "not an EST operation offered here (cacerts, simpleenroll, simplereenroll)"
        )

    def _authenticate(self, op: str) -> tuple[str | None, str]:
        """(requester named by the credentials or None, who the audit records); refuses bad or missing credentials."""
        app = self.server.app
        header = self.headers.get("Authorization")
        if header is None:
            holder = self._certificate_holder(active_only=op == "simpleenroll")
            if holder is not None:
                # The certificate names who asks; the CSR still names the requester.
                return None, f"cert:{holder}"
            if app.options.anonymous:
                return None, ANONYMOUS
            if self._client_cert_der() is not None:
                raise HttpError(HTTPStatus.UNAUTHORIZED, "the client certificate is revoked, expired or not one this "
                                "CA issued to a requester; use an EST user name and password", _REALM)  # fmt: skip
            raise HttpError(HTTPStatus.UNAUTHORIZED, "this server needs an EST user name and password", _REALM)
        scheme, _, token = header.partition(" ")
        try:
            name, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, ValueError):
            sep = ""
        if scheme.lower() != "basic" or not sep:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "only HTTP Basic credentials are accepted", _REALM)
        if app.users is None or not app.users.check(name, password):
            raise HttpError(HTTPStatus.UNAUTHORIZED, "wrong EST user name or password", _REALM)
        return name, name

    def _certificate_holder(self, *, active_only: bool) -> str | None:
        """The requester of the stored certificate presented as TLS client certificate, if any.

        Re-enrollment may present a certificate its own renewal has just
        superseded (polling), so only ``simpleenroll`` insists on an active one.
        """
        der = self._client_cert_der()
        if der is None:
            return None
        app = self.server.app
        cert = x509.load_der_x509_certificate(der)
        try:
            stored = app.reader.certificate(f"0x{cert.serial_number:x}")
        except NotFoundError:
            return None
        if stored.sha256 != cert.fingerprint(hashes.SHA256()).hex():
            return None
        if active_only and not stored.is_active(app.reader.now()):
            return None
        return stored.requester

    def _client_cert_der(self) -> bytes | None:
        getpeercert = getattr(self.connection, "getpeercert", None)
        return getpeercert(binary_form=True) if getpeercert else None

    # ------------------------------------------------------------- enrollment

    def _enroll(self, op: str, user: str | None, actor_user: str, csr_data: bytes) -> None:
        app = self.server.app
        renewal = self._renewed_certificate() if op == "simplereenroll" else None
        if renewal is not None:
            csr = load_csr(csr_data)
            if csr.subject.rfc4514_string() != renewal.subject:
                raise InputError("a re-enrollment must keep the subject of the certificate being renewed "
                                 f"({one_line(renewal.subject, 200)})")  # fmt: skip
        known = app.reader.find_by_csr(csr_data)
        if known is not None:
            # Polling: once the renewal is approved the old certificate is
            # revoked (superseded), yet it is still what the client presents.
            self._answer(known)
            return
        if renewal is not None and not renewal.is_active(app.reader.now()):
            raise HttpError(
                HTTPStatus.FORBIDDEN, f"certificate {renewal.id} is revoked or expired; enroll anew instead"
            )
        wait = app.limiter.take(self.peer)
        if wait:
            raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, "too many new requests from this address; slow down",
                            {"Retry-After": retry_after(wait)})  # fmt: skip
        queued = app.reader.queued_count()
        if queued >= app.options.max_queued:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE,
                            f"the queue is full ({queued} requests wait for a decision); try again later",
                            {"Retry-After": "60"})  # fmt: skip
        actor = Actor(user=actor_user, address=self.peer)
        requester = renewal.requester if renewal is not None else user
        result = app.ca.submit(csr_data, requester=requester, source="est", actor=actor,
                               renewal_of=renewal.id if renewal else None,
                               max_queued=app.options.max_queued)  # fmt: skip
        self.log_message("queued request %d for %s", result.request.id, one_line(result.request.requester, 80))
        self._answer(result.request)

    def _renewed_certificate(self):
        der = self._client_cert_der()
        if der is None:
            raise HttpError(
                HTTPStatus.FORBIDDEN, "simplereenroll needs the certificate being renewed as the TLS client certificate"
            )
        app = self.server.app
        cert = x509.load_der_x509_certificate(der)
        try:
            stored = app.reader.certificate(f"0x{cert.serial_number:x}")
        except NotFoundError:
            stored = None
        if stored is None or stored.sha256 != cert.fingerprint(hashes.SHA256()).hex():
            raise HttpError(HTTPStatus.FORBIDDEN, "the client certificate was not issued to a requester of this CA")
        return stored

    def _answer(self, request: Request) -> None:
        app = self.server.app
        if request.status == RequestStatus.QUEUED:
            self.reply(HTTPStatus.ACCEPTED,
                       f"request {request.id} waits for an admin's approval; re-send the same CSR to collect it",
                       headers={"Retry-After": str(app.options.retry_after)})  # fmt: skip
            return
        if request.status == RequestStatus.APPROVED:
            # Read as one committed state: the certificate and its PEM together.
            issued = app.reader.issued_certificate(request.id)
            if issued is None:
                raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the certificate is being stored; try again",
                                {"Retry-After": "1"})  # fmt: skip
            cert, pem = issued
            if cert.revoked_at is not None:
                raise HttpError(HTTPStatus.FORBIDDEN, f"certificate {cert.id} issued for this CSR has been revoked")
            der = x509.load_pem_x509_certificate(pem)
            self.reply(HTTPStatus.OK, certs_only([der]), PKCS7_TYPE)
            return
        reason = one_line(request.reason or "no reason given", 300)
        raise HttpError(HTTPStatus.FORBIDDEN, f"request {request.id} was {request.status.value}: {reason}")
