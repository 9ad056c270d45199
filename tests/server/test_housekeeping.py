"""The running server expires requests that waited past the CA's queue age."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.server.support import make_csr
from tui_ca.engine import CertificateAuthority, RequestStatus
from tui_ca.server.main import Options, start


def test_server_expires_stale_queued_requests_at_start_with_an_audit_record(live_ca):
    stale = live_ca.submit(make_csr("forgotten-phone")[0]).request
    # The server process lives 31 days later than the submission.
    later = CertificateAuthority(live_ca.home, clock=lambda: datetime.now(UTC) + timedelta(days=31))
    fresh = later.submit(make_csr("new-phone")[0]).request
    running = start(later, Options(host="127.0.0.1", port=0, http_port=0, quiet=True, housekeeping_every=0.2))
    try:
        deadline = time.monotonic() + 60
        while live_ca.request(stale.id).status is RequestStatus.QUEUED and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        running.stop()
    assert live_ca.request(stale.id).status is RequestStatus.EXPIRED
    assert live_ca.request(fresh.id).status is RequestStatus.QUEUED
    expiries = [r for r in live_ca.audit_records() if r.action == "expire"]
    assert [r.target for r in expiries] == [f"request {stale.id}"]


def test_queue_age_comes_from_init(tmp_path):
    from tui_ca.engine import NameFields

    ca = CertificateAuthority(tmp_path / "home")
    ca.init(NameFields(common_name="Short Queue CA"), queue_days=2)
    assert ca.config()["queue_days"] == 2


def test_serve_refuses_a_per_address_cap_below_one(live_ca):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "tui_ca", "--home", str(live_ca.home), "serve", "--port", "0",
                             "--http-port", "0", "--max-per-address", "0"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "tui-ca: --max-per-address must be at least 1\n"
