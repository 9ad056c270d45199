"""Plain HTTP for relying parties: the CRL, the CA certificates and OCSP.

Served at exactly the URLs that ``init --base-url`` wrote into certificates
(``profile.public_urls``), over HTTP because these objects are signed and
TLS would make revocation checking depend on itself (RFC 5280 §8, RFC 6960 A.1).
Everything here is cacheable the way HTTP caches understand: the CRL until
its nextUpdate, OCSP over GET as RFC 5019 §6.2 says; OCSP over POST is not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from tui_ca.engine.urls import public_paths
from tui_ca.server.context import CONTEXT, Context
from tui_ca.server.http import DEADLINE, NO_STORE, OUTCOME, HttpError, http_date, not_modified, read_body

if TYPE_CHECKING:
    from cryptography import x509

    from tui_ca.engine.models import CrlInfo
    from tui_ca.server.ocsp import Answer

# The CRL is served without cryptography or the OCSP code loaded: the CA
# certificates, the root CRL and OCSP load them on their first request.
OCSP_MODULE = "tui_ca.server.ocsp"

OCSP_RESPONSE = "application/ocsp-response"
_POST_HEADERS = {**NO_STORE, "Content-Type": OCSP_RESPONSE}
# CA certificates change only with a new CA; a day keeps a re-keyed CA from waiting long.
CA_CERT_MAX_AGE = 86400


def status_paths(base_url: str | None) -> dict[str, str]:
    """kind -> URL path, from the base URL in the CA's config (root paths without one)."""
    return public_paths(base_url)


def _until(moment: datetime | None, now: datetime) -> int:
    return max(0, int((moment - now).total_seconds())) if moment is not None else 0


def cacheable(request: web.Request, body: bytes, content_type: str, *, etag: str, last_modified: datetime | None,
              expires: datetime | None, max_age: int) -> web.Response:  # fmt: skip
    """A 200, or a 304 for a conditional GET that the client's copy satisfies."""
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}, no-transform"}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    if expires is not None:
        headers["Expires"] = http_date(expires)
    if not_modified(request, etag, last_modified):
        return web.Response(status=HTTPStatus.NOT_MODIFIED, headers=headers)
    return web.Response(body=body, headers={**headers, "Content-Type": content_type})


def _crl_read(ctx: Context, want_body: bool) -> tuple[CrlInfo, bytes | None]:
    """The CRL's state and (when needed) its DER, from one publication."""
    for _ in range(3):
        state = ctx.reader.crl_state()
        der = ctx.reader.published_crl(der=True) if want_body else None
        if not want_body or ctx.reader.crl_state() == state:
            return state, der
    return state, der


async def crl(request: web.Request) -> web.StreamResponse:
    # The stored CRL as published; the server cannot re-sign a stale one (no
    # CA key here), cron's `tui-ca crl --publish` does.
    ctx = request.app[CONTEXT]
    state = await ctx.run(ctx.reader.crl_state)
    der = b""
    if not not_modified(request, f'"crl-{state.number}"', state.this_update):
        state, body = await ctx.run(_crl_read, ctx, True)
        der = body or b""
    return cacheable(request, der, "application/pkix-crl", etag=f'"crl-{state.number}"',
                     last_modified=state.this_update, expires=state.next_update,
                     max_age=_until(state.next_update, ctx.reader.now()))  # fmt: skip


async def root_crl(request: web.Request) -> web.StreamResponse:
    # Signed by the root (a year's nextUpdate); re-signed by the admins' cron.
    ctx = request.app[CONTEXT]
    der = await ctx.run(ctx.reader.published_root_crl)
    if der is None:
        raise HttpError(HTTPStatus.NOT_FOUND, "this CA's root is external and publishes its own CRL")
    x509 = await ctx.module("cryptography.x509")
    parsed = x509.load_der_x509_crl(der)
    return cacheable(request, der, "application/pkix-crl", etag='"' + hashlib.sha256(der).hexdigest()[:32] + '"',
                     last_modified=parsed.last_update_utc, expires=parsed.next_update_utc,
                     max_age=_until(parsed.next_update_utc, ctx.reader.now()))  # fmt: skip


def _cert_entity(cert: x509.Certificate) -> tuple[bytes, str]:
    from cryptography.hazmat.primitives import serialization  # loaded with the certificate by the reader

    der = cert.public_bytes(serialization.Encoding.DER)
    return der, '"' + hashlib.sha256(der).hexdigest()[:32] + '"'


async def ca_cert(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    root = request.match_info.route.name == "root_cert"
    cert = await ctx.run(ctx.reader.root_cert if root else ctx.reader.issuing_cert)
    der, etag = _cert_entity(cert)
    return cacheable(request, der, "application/pkix-cert", etag=etag, last_modified=cert.not_valid_before_utc,
                     expires=None, max_age=CA_CERT_MAX_AGE)  # fmt: skip


def _ocsp_response(request: web.Request, answer: Answer, *, cache: bool) -> web.StreamResponse:
    request[OUTCOME] = answer.outcome
    if cache and answer.cacheable and answer.next_update is not None:
        # RFC 5019 §6.2: max-age no later than nextUpdate; Last-Modified the
        # answer's thisUpdate; ETag names this exact signed answer.
        now = request.app[CONTEXT].reader.now()
        return cacheable(request, answer.body, OCSP_RESPONSE, etag=answer.etag, last_modified=answer.this_update,
                         expires=answer.next_update, max_age=_until(answer.next_update, now))  # fmt: skip
    return web.Response(body=answer.body, headers=_POST_HEADERS)


async def _answer(ctx: Context, der: bytes) -> Answer:
    # Answered on the loop when no store read is needed: the executor hop cost more than the answer itself.
    responder = ctx.loaded_responder
    now = responder.answer_now(der) if responder is not None else None
    return now if now is not None else await ctx.run(ctx.respond, der)


async def ocsp_get(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    prefix = ctx.status_paths["ocsp"].rstrip("/") + "/"
    rest = request.raw_path.split("?", 1)[0][len(prefix) :]
    try:
        # RFC 6960 A.1: base64 of the DER, then URL-encoded; '+' is literal in a path.
        der = base64.b64decode(unquote(rest), validate=True)
    except (binascii.Error, ValueError):
        der = b""
    if not der:
        # An OCSP client parses an OCSP answer, not a text line.
        return await ocsp_bare_get(request)
    return _ocsp_response(request, await _answer(ctx, der), cache=True)


async def ocsp_post(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    body = await read_body(request, request[DEADLINE])
    # OCSP errors travel inside the OCSP response (malformedRequest,
    # unauthorized) with HTTP 200, which is what OCSP clients parse.
    return _ocsp_response(request, await _answer(ctx, body), cache=False)


async def ocsp_bare_get(request: web.Request) -> web.StreamResponse:
    ocsp = await request.app[CONTEXT].module(OCSP_MODULE)
    return _ocsp_response(request, ocsp.unsuccessful("malformed_request", "malformed"), cache=False)


def routes(paths: dict[str, str]) -> web.RouteTableDef:
    table = web.RouteTableDef()
    table.get(paths["crl"], name="crl")(crl)
    table.get(paths["root_crl"], name="root_crl")(root_crl)
    table.get(paths["ca_cert"], name="ca_cert")(ca_cert)
    table.get(paths["root_cert"], name="root_cert")(ca_cert)
    ocsp = paths["ocsp"].rstrip("/")
    table.post(ocsp or "/", name="ocsp")(ocsp_post)
    table.get(ocsp or "/", name="ocsp_bare")(ocsp_bare_get)
    if ocsp:
        table.get(ocsp + "/", name="ocsp_empty")(ocsp_bare_get)
    table.get(ocsp + "/{request:.+}", name="ocsp_get")(ocsp_get)
    return table
