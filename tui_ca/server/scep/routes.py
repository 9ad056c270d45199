"""SCEP's HTTP binding (RFC 8894 §4.1) as aiohttp routes, for the server's extra route tables.

``GET /scep?operation=OP[&message=BASE64]`` and ``POST /scep?operation=PKIOperation``
with the DER pkiMessage as body; ``/cgi-bin/pkiclient.exe`` is the same for
clients that still hard-code it. The service's blocking work runs in the
executor the server gives, never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from concurrent.futures import Executor

from aiohttp import web

from tui_ca.server.paths import SCEP_PATHS
from tui_ca.server.scep.service import ScepReply, ScepService

# A pkiMessage holds a CSR (at most 64 KiB by intake policy) plus a signer
# certificate, an envelope and base64 growth; anything larger is not SCEP.
MAX_MESSAGE = 128 * 1024
# GET carries the message base64-encoded in the query (4/3 of MAX_MESSAGE).
MAX_QUERY = MAX_MESSAGE * 4 // 3 + 1024
# aiohttp refuses request lines over 8190 bytes by default; a GET PKIOperation
# with an RSA-4096 request needs more, so the server passes this as its
# ``max_line_size`` (POST, which every client here prefers, needs nothing).
MAX_REQUEST_LINE = MAX_QUERY + 256


def _line(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=" ".join(text.split())[:300] + "\n", content_type="text/plain",
                        charset="utf-8", headers=headers)  # fmt: skip


def _decode_message(text: str) -> bytes | None:
    # Clients that do not percent-encode "+" have it turned into a space by query parsing.
    cleaned = "".join(text.replace(" ", "+").split())
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None


async def _read_body(request: web.Request) -> bytes | None:
    """The body, or None when it is larger than a SCEP message can be."""
    if request.content_length is not None and request.content_length > MAX_MESSAGE:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_MESSAGE:
            return None
        chunks.append(chunk)


def scep_routes(service: ScepService, executor: Executor | None) -> list[web.RouteDef]:
    """Routes for ``/scep`` and ``/cgi-bin/pkiclient.exe``, GET and POST."""

    async def run(operation: str, message: bytes | None, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        call = functools.partial(service.handle, operation, message, peer=request.remote)
        reply: ScepReply = await loop.run_in_executor(executor, call)
        headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after else None
        return web.Response(status=reply.status, body=reply.body, headers={**(headers or {}),
                            "Content-Type": reply.content_type, "Cache-Control": "no-store"})  # fmt: skip

    async def get(request: web.Request) -> web.StreamResponse:
        if len(request.query_string) > MAX_QUERY:
            return _line(414, f"the query is longer than a SCEP message can be ({MAX_QUERY} bytes)")
        operation = request.query.get("operation", "")
        message = None
        if operation == "PKIOperation":
            message = _decode_message(request.query.get("message", ""))
            if not message:
                return _line(400, "PKIOperation over GET needs message=<base64 DER pkiMessage>")
            if len(message) > MAX_MESSAGE:
                return _line(414, f"the message is larger than {MAX_MESSAGE} bytes")
        return await run(operation, message, request)

    async def post(request: web.Request) -> web.StreamResponse:
        operation = request.query.get("operation", "")
        if operation != "PKIOperation":
            return _line(405, "only PKIOperation is sent with POST", {"Allow": "GET"})
        body = await _read_body(request)
        if body is None:
            return _line(413, f"the message is larger than {MAX_MESSAGE} bytes")
        if body[:1] != b"\x30":
            # Some clients base64 the POST body as they would the GET parameter.
            body = _decode_message(body.decode("ascii", "replace")) or body
        return await run(operation, body, request)

    routes: list[web.RouteDef] = []
    for path in SCEP_PATHS:
        routes += [web.get(path, get, allow_head=False), web.post(path, post)]
    return routes
