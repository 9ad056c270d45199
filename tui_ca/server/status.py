"""Plain HTTP for relying parties: the CRL, the CA certificates and OCSP.

Served at exactly the URLs that ``init --base-url`` wrote into certificates
(``profile.public_urls``), over HTTP because these objects are signed and
TLS would make revocation checking depend on itself (RFC 5280 §8, RFC 6960 A.1).
"""

from __future__ import annotations

import base64
import binascii
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from cryptography.hazmat.primitives import serialization

from tui_ca.engine.chain import root_crl_der
from tui_ca.engine.profile import public_urls
from tui_ca.server.http import Handler, HttpError

OCSP_RESPONSE = "application/ocsp-response"


def status_paths(base_url: str | None) -> dict[str, str]:
    """kind -> URL path, from the base URL in the CA's config (root paths without one)."""
    urls = public_urls(base_url or "http://localhost")
    return {kind: urlsplit(url).path for kind, url in urls.items()}


class StatusHandler(Handler):
    """The HTTP listener: GET the CRL and CA certificates; GET or POST OCSP."""

    def _route(self) -> tuple[str, str]:
        path = self.path.split("?", 1)[0]
        paths = self.server.app.status_paths
        for kind, wanted in paths.items():
            if path == wanted:
                return kind, ""
        ocsp = paths["ocsp"].rstrip("/") + "/"
        if path.startswith(ocsp):
            return "ocsp", path[len(ocsp) :]
        return "", ""

    def do_GET(self) -> None:
        kind, rest = self._route()
        app = self.server.app
        if kind == "crl":
            # The stored CRL as published; the server cannot re-sign a stale
            # one (no CA key here), cron's `tui-ca crl --publish` does.
            self.reply(HTTPStatus.OK, app.reader.published_crl(), "application/pkix-crl")
        elif kind == "root_crl":
            root_crl = root_crl_der(app.reader)
            if root_crl is None:
                raise HttpError(HTTPStatus.NOT_FOUND, "this CA's root is external and publishes its own CRL")
            self.reply(HTTPStatus.OK, root_crl, "application/pkix-crl")
        elif kind in ("ca_cert", "root_cert"):
            cert = app.reader.issuing_cert() if kind == "ca_cert" else app.reader.root_cert()
            self.reply(HTTPStatus.OK, cert.public_bytes(serialization.Encoding.DER), "application/pkix-cert")
        elif kind == "ocsp":
            if not rest:
                raise HttpError(HTTPStatus.BAD_REQUEST, "OCSP over GET needs the base64 request after /ocsp/")
            try:
                der = base64.b64decode(unquote(rest), validate=True)
            except (binascii.Error, ValueError):
                raise HttpError(HTTPStatus.BAD_REQUEST, "the OCSP request in the URL is not base64") from None
            self._ocsp(der)
        else:
            raise HttpError(HTTPStatus.NOT_FOUND, "nothing here; see " + ", ".join(sorted(app.status_paths.values())))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        kind, rest = self._route()
        if kind != "ocsp" or rest:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "only OCSP takes a POST here", {"Allow": "GET"}, close=True)
        self._ocsp(self.read_body())

    def _ocsp(self, der: bytes) -> None:
        # OCSP errors travel inside the OCSP response (malformedRequest,
        # unauthorized) with HTTP 200, which is what OCSP clients parse.
        answer, outcome = self.server.app.responder.respond(der)
        self.log_message("OCSP %s", outcome)
        self.reply(HTTPStatus.OK, answer, OCSP_RESPONSE)
