"""``serve`` starts without what its first answers do not need: the CRL is served before cryptography,
the engine's writer, EST, OCSP or SCEP are loaded; each loads with the first request that needs it.

The modules the real process imported are read from its ``-X importtime``
output, as tests/cli/test_startup.py does for the other commands.
"""

from __future__ import annotations

import base64
import re
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from tests.server.live import Home, http_get, make_home
from tests.server.support import make_csr
from tui_ca.engine import CertificateAuthority, RequestStatus
from tui_ca.engine.home import SCEP_RA_CERT, SCEP_RA_KEY
from tui_ca.engine.reader import CAReader
from tui_ca.server.main import Options, start

SCEP_MODULES = ("tui_ca.server.scep.routes", "tui_ca.server.scep.service", "tui_ca.server.scep.messages")
NOT_AT_START = (*SCEP_MODULES, "tui_ca.server.metrics", "prometheus_client", "tui_ca.server.admin",
                "cryptography.x509", "asn1crypto", "tui_ca.engine.ca", "tui_ca.engine.keys", "tui_ca.server.est",
                "tui_ca.server.ocsp", "tui_ca.server.users")  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    return make_home(tmp_path_factory.mktemp("serve-startup"))


@contextmanager
def importing_serve(home: Home) -> Iterator[tuple[str, dict[str, object]]]:
    """A real ``serve`` under ``-X importtime``; yields its HTTP base URL, then fills in its modules and stderr."""
    process = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "tui_ca", "--home", str(home.path), "serve",
                                "--port", "0", "--http-port", str(home.http_port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen: dict[str, object] = {}
    try:
        lines = [process.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        found = re.search(r"https://127\.0\.0\.1:(\d+)/", lines[0])
        assert found, lines
        seen["https_port"] = int(found.group(1))
        yield f"http://127.0.0.1:{home.http_port}", seen
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    seen["modules"] = {line.split("|")[-1].strip() for line in err.splitlines() if line.startswith("import time:")}
    seen["stderr"] = "\n".join(line for line in err.splitlines() if not line.startswith("import time:"))
    assert "tui_ca.server.main" in seen["modules"]  # the probe saw the imports at all


def test_the_first_crl_answer_loads_no_cryptography_writer_est_ocsp_scep_or_metrics(home):
    with importing_serve(home) as (url, seen):
        status, body = http_get(f"{url}/ca.crl")
        assert status == 200 and body == CAReader(home.path).published_crl(der=True)
    assert sorted(seen["modules"] & set(NOT_AT_START)) == []  # type: ignore[operator]


def test_what_loads_later_answers_its_first_request(home):
    with importing_serve(home) as (url, seen):
        status, body = http_get(f"{url}/ca.crt")
        assert status == 200 and body == x509.load_pem_x509_certificate(home.cli("ca-cert").stdout).public_bytes(
            serialization.Encoding.DER
        )
        status, body = http_get(f"{url}/ocsp/")
        assert status == 200 and ocsp.load_der_ocsp_response(body).response_status.name == "MALFORMED_REQUEST"
        tls = ssl.create_default_context(cafile=str(home.chain))
        with urllib.request.urlopen(f"https://127.0.0.1:{seen_port(seen)}/.well-known/est/cacerts", context=tls,
                                    timeout=30) as answer:  # fmt: skip
            assert answer.status == 200 and base64.b64decode(answer.read())[:1] == b"\x30"
    assert {"cryptography.x509", "tui_ca.server.ocsp", "tui_ca.server.est", "tui_ca.engine.ca"} <= seen["modules"]  # type: ignore[operator]


def test_without_an_ra_scep_is_off_and_none_of_it_is_imported(tmp_path):
    home = make_home(tmp_path)
    (home.path / SCEP_RA_KEY).unlink()
    with importing_serve(home) as (url, seen):
        assert http_get(f"{url}/scep?operation=GetCACaps")[0] == 404
    assert sorted(seen["modules"] & set(SCEP_MODULES)) == []  # type: ignore[operator]
    assert f"SCEP off: {home.path / SCEP_RA_KEY} is missing" in seen["stderr"]  # type: ignore[operator]


def test_a_damaged_ra_is_named_by_the_scep_answer_and_a_repair_needs_no_restart(tmp_path):
    home = make_home(tmp_path)
    key = home.path / SCEP_RA_KEY
    good = key.read_bytes()
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with importing_serve(home) as (url, seen):
        assert http_get(f"{url}/ca.crl")[0] == 200
        status, body = http_get(f"{url}/scep?operation=GetCACaps")
        assert status == 503
        assert body.decode().count("\n") == 1 and str(home.path / SCEP_RA_CERT) in body.decode()
        key.write_bytes(good)
        status, caps = http_get(f"{url}/cgi-bin/pkiclient.exe?operation=GetCACaps")
        assert status == 200 and b"POSTPKIOperation" in caps
    assert "SCEP unavailable" in seen["stderr"]  # type: ignore[operator]


def seen_port(seen: dict[str, object]) -> int:
    port = seen["https_port"]
    assert isinstance(port, int)
    return port


def test_expiry_at_start_is_done_before_the_listeners_answer(live_ca):
    stale = live_ca.submit(make_csr("forgotten-phone")[0]).request
    later = CertificateAuthority(live_ca.home, clock=lambda: datetime.now(UTC) + timedelta(days=31))
    running = start(later, Options(host="127.0.0.1", port=0, http_port=0, quiet=True))
    try:
        # No waiting: start() returns once the listeners are up, and the expiry came first.
        assert live_ca.request(stale.id).status is RequestStatus.EXPIRED
    finally:
        running.stop()


def test_a_start_with_nothing_stale_makes_no_writer(live_ca):
    live_ca.submit(make_csr("waiting-phone")[0])
    running = start(CAReader(live_ca.home), Options(host="127.0.0.1", port=0, http_port=0, quiet=True))
    try:
        assert running.context._writer is None
        status, _ = http_get(f"http://127.0.0.1:{running.http_port}/ca.crl")
        assert status == 200 and running.context._writer is None
    finally:
        running.stop()
