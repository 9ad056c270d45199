"""Prometheus metrics at ``/metrics`` (opt-in: ``serve --metrics``).

The CA's state is read from the engine at scrape time by a custom collector,
so a metric can never drift from the store. What costs more than a few stat
calls (a pass over every certificate's dates) is computed once per store
change token and kept: between commits a scrape only redoes the arithmetic
against the clock. The audit chain is verified whole now and then and, after
a commit, only from the head verified before (engine/audit_watch.py). Request counters and latency histograms are ordinary
client-library metrics that the HTTP layer feeds through
:meth:`Metrics.observe_request`.

Exposition, content negotiation and parsing are prometheus-client's; the
handler runs the (blocking) collection in the server's bounded executor.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from tui_ca.engine.audit_watch import AuditWatch
from tui_ca.engine.errors import CAError
from tui_ca.engine.expiry import certificate_dates, queued_since
from tui_ca.engine.home import OCSP_CERT
from tui_ca.engine.models import CertStatus
from tui_ca.engine.reader import CAReader

# Enrollment is a person's decision away, so most EST/SCEP answers are fast
# (queued, polled); OCSP signs per request. Buckets from 5 ms to 10 s (the
# server's whole-request deadline).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EXPIRY_WINDOWS_DAYS = (7, 30)


def protocol_for_path(path: str) -> str:
    """``est``, ``scep``, ``ocsp``, ``crl``, ``cacerts``, ``metrics`` or ``other``: a bounded label set.

    The status paths may sit under the base URL's path (``/pki/ca.crl``), so
    they are recognised by their last segments, not by a prefix.
    """
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    if segments[:2] == [".well-known", "est"]:
        return "est"
    if "pkiclient.exe" in segments or "scep" in segments:
        return "scep"
    if "ocsp" in segments:
        return "ocsp"
    last = segments[-1] if segments else ""
    if last.endswith(".crl"):
        return "crl"
    if last.endswith(".crt"):
        return "cacerts"
    return "metrics" if segments == ["metrics"] else "other"


@dataclass(frozen=True)
class _Snapshot:
    """What one committed state says, independent of the clock."""

    queued_submitted: tuple[datetime, ...]
    """Submission times of the queued requests (oldest first)."""
    unrevoked_not_after: tuple[datetime, ...]
    """notAfter of every certificate not revoked, sorted."""
    revoked: int
    """Revoked certificates."""
    audit_intact: bool
    """Whether the audit chain verifies."""
    crl_next_update: datetime
    """The published CRL's nextUpdate."""


class CACollector(Collector):
    """The CA's state as gauges, read from the engine at scrape time."""

    def __init__(self, reader: CAReader) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._cached: tuple[object, _Snapshot] | None = None
        self._ocsp: tuple[object, datetime | None] | None = None
        self._audit = AuditWatch(reader)

    def _snapshot(self) -> _Snapshot:
        token = self._reader.change_token()
        with self._lock:
            if self._cached is not None and self._cached[0] == token:
                return self._cached[1]
            reader = self._reader
            ends, revoked = certificate_dates(reader)
            snapshot = _Snapshot(
                queued_submitted=tuple(queued_since(reader)), unrevoked_not_after=tuple(ends), revoked=revoked,
                audit_intact=self._audit.intact(), crl_next_update=reader.crl_state().next_update,
            )  # fmt: skip
            self._cached = (token, snapshot)
            return snapshot

    def _ocsp_not_after(self) -> datetime | None:
        """The OCSP signer's notAfter (re-read when server-setup --ocsp-only replaces it)."""
        path: Path = self._reader.home / OCSP_CERT
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._ocsp is None or self._ocsp[0] != key:
            self._ocsp = (key, x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc)
        return self._ocsp[1]

    def describe(self) -> list[Metric]:
        # No store reads at registration time: the home may not hold a CA yet.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tui_ca_store_up", "1 when the CA's store could be read at this scrape")
        try:
            families = list(self._families())
        except (CAError, OSError, ValueError):
            # A damaged or missing store must show as a metric, not as a
            # failed scrape that hides every other series.
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        reader = self._reader
        snap = self._snapshot()
        now = reader.now()

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, value=value)

        yield gauge("tui_ca_queue_length", "Requests waiting for an admin's decision", len(snap.queued_submitted))
        oldest = (now - snap.queued_submitted[0]).total_seconds() if snap.queued_submitted else 0.0
        yield gauge("tui_ca_queue_oldest_age_seconds", "Age of the oldest queued request (0: queue empty)", oldest)
        ends = snap.unrevoked_not_after
        valid_from = bisect.bisect_right(ends, now)
        by_status = GaugeMetricFamily("tui_ca_certificates", "Issued certificates by status", labels=["status"])
        by_status.add_metric([CertStatus.VALID.value], len(ends) - valid_from)
        by_status.add_metric([CertStatus.REVOKED.value], snap.revoked)
        by_status.add_metric([CertStatus.EXPIRED.value], valid_from)
        yield by_status
        expiring = GaugeMetricFamily(
            "tui_ca_certificates_expiring", "Valid certificates whose notAfter is within the window",
            labels=["within_days"],
        )  # fmt: skip
        for days in EXPIRY_WINDOWS_DAYS:
            expiring.add_metric([str(days)], bisect.bisect_right(ends, now + timedelta(days=days)) - valid_from)
        yield expiring
        yield gauge("tui_ca_crl_next_update_seconds", "Seconds until the published CRL's nextUpdate (negative: lapsed)",
                    (snap.crl_next_update - now).total_seconds())  # fmt: skip
        not_after = GaugeMetricFamily("tui_ca_ca_not_after_seconds", "Seconds until a CA certificate's notAfter",
                                      labels=["ca"])  # fmt: skip
        not_after.add_metric(["issuing"], (reader.issuing_cert().not_valid_after_utc - now).total_seconds())
        not_after.add_metric(["root"], (reader.root_cert().not_valid_after_utc - now).total_seconds())
        yield not_after
        ocsp = self._ocsp_not_after()
        if ocsp is not None:
            yield gauge("tui_ca_ocsp_signer_not_after_seconds", "Seconds until the OCSP signing certificate's notAfter",
                        (ocsp - now).total_seconds())  # fmt: skip
        yield gauge("tui_ca_audit_chain_intact", "1 when the audit log's hash chain verifies", int(snap.audit_intact))


class Metrics:
    """The registry the server exposes, with the request metrics its handlers feed."""

    def __init__(self, reader: CAReader, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.registry.register(CACollector(reader))
        self._requests = Counter("tui_ca_http_requests", "Protocol requests answered, by result",
                                 ["protocol", "result"], registry=self.registry)  # fmt: skip
        self._latency = Histogram("tui_ca_http_request_duration_seconds", "Time to answer a protocol request",
                                  ["protocol", "result"], buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip

    def observe_request(self, protocol: str, result: str, seconds: float) -> None:
        """Count one answered request (``protocol``: est, scep, ocsp…; ``result``: the HTTP status, or a word of ours
        such as ``queued``; keep both to small fixed sets, each value is a time series)."""
        self._requests.labels(protocol, result).inc()
        self._latency.labels(protocol, result).observe(seconds)

    def observe_response(self, path: str, status: int, seconds: float) -> None:
        """What an access log calls for every answer: the protocol from the path, the status as the result."""
        self.observe_request(protocol_for_path(path), str(status), seconds)


def metrics_routes(registry: CollectorRegistry, executor: Executor) -> list[web.RouteDef]:
    """The ``/metrics`` route for the HTTP listener; collection runs in ``executor``."""

    async def scrape(request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.get_running_loop().run_in_executor(executor, _render(encode, registry))
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return [web.get("/metrics", scrape, allow_head=False)]


def _render(encode: Callable[[CollectorRegistry], bytes], registry: CollectorRegistry) -> Callable[[], bytes]:
    return lambda: encode(registry)
