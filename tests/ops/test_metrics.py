"""/metrics: scraped through a real aiohttp listener on 127.0.0.1, parsed by
prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import csr_pem, make_csr
from tui_ca.engine import CertificateAuthority, RevocationReason
from tui_ca.engine.reader import CAReader
from tui_ca.engine.service_certs import setup_service_certs
from tui_ca.server.metrics import Metrics, metrics_routes


async def _scrape(metrics: Metrics, times: int = 1, accept: str | None = None) -> list[tuple[int, str, str]]:
    app = web.Application()
    executor = ThreadPoolExecutor(max_workers=2)
    app.add_routes(metrics_routes(metrics.registry, executor))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    answers = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(times):
                headers = {"Accept": accept} if accept else {}
                async with session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as response:
                    answers.append((response.status, response.headers["Content-Type"], await response.text()))
    finally:
        await runner.cleanup()
        executor.shutdown()
    return answers


def scrape(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    [(status, content_type, text)] = asyncio.run(_scrape(metrics))
    assert status == 200 and content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def issue(ca: CertificateAuthority, cn: str, days: int) -> int:
    request = ca.submit(csr_pem(make_csr(cn=cn))).request
    [outcome] = ca.approve([request.id], days=days)
    assert outcome.certificate is not None
    return request.id


@pytest.fixture
def busy_ca(ca: CertificateAuthority, clock) -> CertificateAuthority:
    issue(ca, "in-five", 5)
    issue(ca, "in-twenty", 20)
    issue(ca, "in-two-hundred", 200)
    ca.revoke(issue(ca, "revoked", 100), RevocationReason.KEY_COMPROMISE)
    issue(ca, "short", 1)
    setup_service_certs(ca)
    ca.submit(csr_pem(make_csr(cn="waiting-1")))
    clock.now += timedelta(minutes=30)
    ca.submit(csr_pem(make_csr(cn="waiting-2")))
    clock.now += timedelta(days=1, minutes=30)  # "short" has expired now
    return ca


def test_every_gauge_reflects_the_store(busy_ca, clock):
    values = scrape(Metrics(busy_ca))
    assert values[("tui_ca_store_up", ())] == 1
    assert values[("tui_ca_queue_length", ())] == 2
    assert values[("tui_ca_queue_oldest_age_seconds", ())] == (24 * 60 + 60) * 60
    assert values[("tui_ca_certificates", (("status", "valid"),))] == 3
    assert values[("tui_ca_certificates", (("status", "revoked"),))] == 1
    assert values[("tui_ca_certificates", (("status", "expired"),))] == 1
    assert values[("tui_ca_certificates_expiring", (("within_days", "7"),))] == 1
    assert values[("tui_ca_certificates_expiring", (("within_days", "30"),))] == 2
    info = busy_ca.crl_state()
    assert values[("tui_ca_crl_next_update_seconds", ())] == (info.next_update - clock.now).total_seconds()
    issuing_left = (busy_ca.issuing_cert().not_valid_after_utc - clock.now).total_seconds()
    assert values[("tui_ca_ca_not_after_seconds", (("ca", "issuing"),))] == issuing_left
    assert values[("tui_ca_ca_not_after_seconds", (("ca", "root"),))] > 0
    # The OCSP signer was made 7 days before "now" minus a day and an hour.
    assert 5 * 86400 < values[("tui_ca_ocsp_signer_not_after_seconds", ())] < 6 * 86400
    assert values[("tui_ca_audit_chain_intact", ())] == 1


def test_request_counters_and_latency_histograms(busy_ca):
    metrics = Metrics(busy_ca)
    metrics.observe_request("est", "queued", 0.004)
    metrics.observe_request("est", "queued", 0.2)
    metrics.observe_request("ocsp", "good", 0.03)
    values = scrape(metrics)
    assert values[("tui_ca_http_requests_total", (("protocol", "est"), ("result", "queued")))] == 2
    assert values[("tui_ca_http_requests_total", (("protocol", "ocsp"), ("result", "good")))] == 1
    est = (("protocol", "est"), ("result", "queued"))
    assert values[("tui_ca_http_request_duration_seconds_count", est)] == 2
    assert values[("tui_ca_http_request_duration_seconds_bucket", (("le", "0.005"), *est))] == 1
    assert values[("tui_ca_http_request_duration_seconds_bucket", (("le", "0.25"), *est))] == 2


@pytest.mark.parametrize(
    ("path", "protocol"),
    [("/.well-known/est/cacerts", "est"), ("/scep/pkiclient.exe?operation=GetCACaps", "scep"),
     ("/pki/ocsp/MEow", "ocsp"), ("/ocsp", "ocsp"), ("/pki/ca.crl", "crl"), ("/root.crt", "cacerts"),
     ("/metrics", "metrics"), ("/", "other"), ("/est", "other")],
)  # fmt: skip
def test_protocol_labels_from_paths(path, protocol):
    from tui_ca.server.metrics import protocol_for_path

    assert protocol_for_path(path) == protocol


def test_an_access_log_feeds_by_path(busy_ca):
    metrics = Metrics(busy_ca)
    metrics.observe_response("/.well-known/est/simpleenroll", 202, 0.01)
    metrics.observe_response("/ocsp/MEow", 200, 0.002)
    metrics.observe_response("/../../etc/passwd", 404, 0.001)
    values = scrape(metrics)
    assert values[("tui_ca_http_requests_total", (("protocol", "est"), ("result", "202")))] == 1
    assert values[("tui_ca_http_requests_total", (("protocol", "ocsp"), ("result", "200")))] == 1
    assert values[("tui_ca_http_requests_total", (("protocol", "other"), ("result", "404")))] == 1


def test_the_clock_moves_gauges_without_a_commit(busy_ca, clock):
    metrics = Metrics(busy_ca)
    before = scrape(metrics)
    clock.now += timedelta(days=10)
    after = scrape(metrics)
    assert after[("tui_ca_certificates", (("status", "expired"),))] == 2  # "in-five" too
    assert after[("tui_ca_queue_oldest_age_seconds", ())] == before[("tui_ca_queue_oldest_age_seconds", ())] + 864000
    assert after[("tui_ca_crl_next_update_seconds", ())] < 0


def test_audit_chain_gauge_follows_the_watch(busy_ca, monkeypatch):
    # The watch itself is tested in test_audit_watch.py; here: the gauge shows it.
    metrics = Metrics(busy_ca)
    [one, two, three] = asyncio.run(_scrape(metrics, times=3))
    assert all(status == 200 for status, _, _ in (one, two, three))
    assert scrape(metrics)[("tui_ca_audit_chain_intact", ())] == 1
    # An edited record, then any commit, and a watch whose whole-chain check is due.
    shard = next(Path(busy_ca.home).rglob("audit/00000.json"))
    data = json.loads(shard.read_text())
    data["audit"]["3"]["outcome"] = "nothing happened"
    shard.write_text(json.dumps(data))
    busy_ca.submit(csr_pem(make_csr(cn="after-tamper")))
    monkeypatch.setattr("tui_ca.engine.audit_watch.DEFAULT_FULL_EVERY", 0.0)
    assert scrape(Metrics(busy_ca))[("tui_ca_audit_chain_intact", ())] == 0


def test_openmetrics_when_asked(busy_ca):
    [(status, content_type, text)] = asyncio.run(
        _scrape(Metrics(busy_ca), accept="application/openmetrics-text; version=1.0.0")
    )
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


def test_a_home_without_a_ca_scrapes_as_down(tmp_path):
    values = scrape(Metrics(CAReader(tmp_path / "empty")))
    assert values[("tui_ca_store_up", ())] == 0
    assert ("tui_ca_queue_length", ()) not in values
