"""A live CA home with server certificates, and a running server on ephemeral ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.support import Client
from tui_ca.engine import Actor, CertificateAuthority, NameFields
from tui_ca.engine.service_certs import setup_service_certs
from tui_ca.server.main import Options, start


@pytest.fixture
def live_ca(tmp_path: Path) -> CertificateAuthority:
    """A CA on the real clock (TLS peers check validity against it)."""
    authority = CertificateAuthority(tmp_path / "home", actor=Actor("alice", "192.0.2.10"))
    authority.init(NameFields(common_name="Server Test CA", organization="Example"), base_url="http://127.0.0.1:1")
    setup_service_certs(authority)
    return authority


@pytest.fixture
def server(live_ca):
    running = start(live_ca, Options(host="127.0.0.1", port=0, http_port=0, quiet=True, retry_after=7, rate=0.0))
    yield running
    running.stop()


@pytest.fixture
def client(live_ca, server) -> Client:
    return Client(live_ca, server)
