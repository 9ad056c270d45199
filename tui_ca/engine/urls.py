"""Where the server publishes what certificates point to (DESIGN §6): the CRLs, the CA certificates, OCSP.

Apart from the certificate profiles that write these URLs into certificates,
so that ``serve`` can route them before it loads cryptography.
"""

from __future__ import annotations

from urllib.parse import urlsplit

# kind -> path under the CA's base URL
PUBLIC_PATHS = {"crl": "/ca.crl", "root_crl": "/crl/root.crl", "ca_cert": "/ca.crt", "root_cert": "/root.crt",
                "ocsp": "/ocsp"}  # fmt: skip


def public_urls(base_url: str) -> dict[str, str]:
    """kind -> the URL certificates name for it, under ``base_url``."""
    base = base_url.rstrip("/")
    return {kind: base + path for kind, path in PUBLIC_PATHS.items()}


def public_paths(base_url: str | None) -> dict[str, str]:
    """kind -> the URL path the server answers it on (root paths without a base URL)."""
    base = urlsplit((base_url or "http://localhost").rstrip("/")).path
    return {kind: base + path for kind, path in PUBLIC_PATHS.items()}
