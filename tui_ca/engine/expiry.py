"""What ends soon: issued certificates, the CA certificates, the server's own
certificates and the published CRL, for cron and monitoring plugins.

An expired CRL or CA certificate takes every relying party down at once (a
lapsed CRL made clients refuse every certificate of a well-known Puppet
deployment), so anything of the CA's own that is already past its date is
critical whatever the thresholds; a leaf certificate already past its date is
simply expired and no longer reported.

The CRL (7 days) and the OCSP signer (7 days) are short-lived by design and
renewed from cron, so a 30-day window would flag them forever. The CRL and a
service certificate whose whole life is shorter than twice the window are
judged on their life instead: a warning once less than half of it is left, critical
(with ``critical_days``) once less than a seventh is left (a day for a weekly
CRL: the alert the README's Prometheus rules raise too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path

from cryptography import x509

from tui_ca.engine import records
from tui_ca.engine.errors import InputError
from tui_ca.engine.home import SERVER_DIR
from tui_ca.engine.models import Certificate
from tui_ca.engine.reader import CAReader

DEFAULT_WARNING_DAYS = 30
MAX_WINDOW_DAYS = 36500
# What each service certificate file under server/ is for; a file not listed
# here (a later service) is still reported, by its name.
SERVICE_LABELS = {"tls": "TLS server certificate", "ocsp": "OCSP signing certificate", "ra": "RA certificate"}


class State(IntEnum):
    """Monitoring-plugin states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class Kind(StrEnum):
    CERTIFICATE = "certificate"
    CA = "ca"
    SERVICE = "service"
    CRL = "crl"


@dataclass(frozen=True)
class ExpiringItem:
    """One thing that ends within the window."""

    kind: Kind
    """What it is."""
    name: str
    """Our own words for it ("certificate 12", "issuing CA", "CRL 7"); never requester text."""
    ends_at: datetime
    """notAfter, or the CRL's nextUpdate."""
    state: State
    """WARNING or CRITICAL."""
    cert_id: int | None = None
    """Certificate ID, for issued certificates."""
    serial: str | None = None
    """Serial in hex, for certificates."""
    requester: str | None = None
    """For issued certificates: who holds it (untrusted text)."""

    def seconds_left(self, now: datetime) -> float:
        return (self.ends_at - now).total_seconds()


@dataclass(frozen=True)
class ExpiryReport:
    """Everything ending within ``days`` of ``now``, soonest first."""

    now: datetime
    """The clock the report was made at."""
    days: int
    """The warning window."""
    critical_days: int | None
    """The critical window, if asked for."""
    items: tuple[ExpiringItem, ...]
    """Soonest first."""

    @property
    def state(self) -> State:
        return max((item.state for item in self.items), default=State.OK)

    def summary(self) -> str:
        """The plugin's first line: ``EXPIRING WARNING - 3 certificates within 30 days; soonest ...``."""
        head = f"EXPIRING {self.state.name} - "
        perf = f" | expiring={len(self.items)};;"
        if not self.items:
            return f"{head}nothing ends within {self.days} days{perf}"
        soonest = self.items[0]
        return f"{head}{_count_phrase(self.items)} within {self.days} days; soonest {soonest.name} " \
               f"{_when(soonest, self.now)}{perf}"  # fmt: skip


def _count_phrase(items: tuple[ExpiringItem, ...]) -> str:
    nouns = {Kind.CERTIFICATE: "certificate", Kind.CA: "CA certificate", Kind.SERVICE: "service certificate",
             Kind.CRL: "CRL"}  # fmt: skip
    parts = []
    for kind in Kind:
        n = sum(1 for item in items if item.kind is kind)
        if n:
            parts.append(f"{n} {nouns[kind]}{'s' if n != 1 else ''}")
    return ", ".join(parts)


def _when(item: ExpiringItem, now: datetime) -> str:
    left = item.ends_at - now
    date = f"{item.ends_at:%Y-%m-%d %H:%M} UTC"
    if left <= timedelta(0):
        return f"{'was due' if item.kind is Kind.CRL else 'expired'} {date}"
    if left < timedelta(days=1):
        return f"ends {date} (in {int(left.total_seconds() // 3600)} h)"
    return f"ends {date} (in {left.days} days)"


def _windows(days: int, critical_days: int | None, life: timedelta | None) -> tuple[timedelta, timedelta | None]:
    """(warning, critical) windows; short-lived artefacts get windows scaled to their life."""
    warning = timedelta(days=days)
    critical = None if critical_days is None else timedelta(days=critical_days)
    if life is not None and life < 2 * warning:
        warning = life / 2
        critical = None if critical is None else min(critical, life / 7)
    return warning, critical


def _own_item(kind: Kind, name: str, begins: datetime, ends: datetime, now: datetime, days: int,
              critical_days: int | None, serial: str | None = None) -> ExpiringItem | None:  # fmt: skip
    """A CA or service certificate or the CRL, when it falls in its window (always when lapsed)."""
    warning, critical = _windows(days, critical_days, None if kind is Kind.CA else ends - begins)
    left = ends - now
    if left > warning:
        return None
    state = State.CRITICAL if left <= timedelta(0) or (critical is not None and left <= critical) else State.WARNING
    return ExpiringItem(kind, name, ends, state, serial=serial)


def service_certificates(home: Path) -> list[tuple[str, x509.Certificate]]:
    """(label, certificate) for each certificate file the server uses (``server/*.crt``; leaf first)."""
    folder = home / SERVER_DIR
    found: list[tuple[str, x509.Certificate]] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.crt")):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError:
            raise InputError(f"{path} is not a PEM certificate; run server-setup again to replace it") from None
        found.append((SERVICE_LABELS.get(path.stem, f"service certificate {path.name}"), cert))
    return found


def _valid_ending_by(reader: CAReader, now: datetime, horizon: datetime) -> Iterator[Certificate]:
    """Valid certificates ending by ``horizon``, by ID: the stored dates are compared before any model is built
    (models of 100,000 certificates were most of the report's time; bench/ops_bench.py)."""
    for doc in reader.store.view().iter_certificates():
        if doc.get("service"):
            continue  # the server's own, reported from server/ below
        if doc.get("revoked_at") is None and now < datetime.fromisoformat(doc["na"]) <= horizon:
            yield records.certificate_model(doc)


def certificate_dates(reader: CAReader) -> tuple[list[datetime], int]:
    """The notAfter of every client certificate not revoked (sorted), and how many are revoked: one pass, no models.

    The server's own certificates (server-setup) are left out: they have gauges of their own.
    """
    ends: list[datetime] = []
    revoked = 0
    for doc in reader.store.view().iter_certificates():
        if doc.get("service"):
            continue
        if doc.get("revoked_at") is not None:
            revoked += 1
        else:
            ends.append(datetime.fromisoformat(doc["na"]))
    ends.sort()
    return ends, revoked


def queued_since(reader: CAReader) -> list[datetime]:
    """When each queued request was submitted, oldest first (no models)."""
    return sorted(datetime.fromisoformat(doc["at"]) for doc in reader.store.view().iter_requests(status="queued"))


def check_window(days: int, critical_days: int | None) -> None:
    """Refuse thresholds that make no sense (InputError)."""
    if not 0 <= days <= MAX_WINDOW_DAYS:
        raise InputError(f"--days must be between 0 and {MAX_WINDOW_DAYS}, not {days}")
    if critical_days is not None and not 0 <= critical_days <= days:
        raise InputError(f"--critical-days must be between 0 and --days ({days}), not {critical_days}")


def expiry_report(reader: CAReader, days: int = DEFAULT_WARNING_DAYS, critical_days: int | None = None) -> ExpiryReport:
    """What ends within ``days`` (the CA's own items as the module docstring says)."""
    check_window(days, critical_days)
    reader.require_ca()
    now = reader.now()
    horizon = now + timedelta(days=days)
    items: list[ExpiringItem] = []
    critical = None if critical_days is None else now + timedelta(days=critical_days)
    for cert in _valid_ending_by(reader, now, horizon):
        if cert.not_after <= horizon:
            state = State.CRITICAL if critical is not None and cert.not_after <= critical else State.WARNING
            items.append(ExpiringItem(Kind.CERTIFICATE, f"certificate {cert.id}", cert.not_after, state,
                                      cert_id=cert.id, serial=cert.serial_hex, requester=cert.requester))  # fmt: skip
    own = [("issuing CA", Kind.CA, reader.issuing_cert()), ("root CA", Kind.CA, reader.root_cert())]
    own += [(label, Kind.SERVICE, cert) for label, cert in service_certificates(reader.home)]
    found = [_own_item(kind, name, cert.not_valid_before_utc, cert.not_valid_after_utc, now, days, critical_days,
                       format(cert.serial_number, "x")) for name, kind, cert in own]  # fmt: skip
    crl = reader.crl_state()
    found.append(_own_item(Kind.CRL, f"CRL {crl.number}", crl.this_update, crl.next_update, now, days, critical_days))
    items.extend(item for item in found if item is not None)
    items.sort(key=lambda item: (item.ends_at, item.kind.value, item.cert_id or 0))
    return ExpiryReport(now=now, days=days, critical_days=critical_days, items=tuple(items))


def report_json(report: ExpiryReport) -> dict:
    """The report as JSON-able data (``expiring --json``, the daily notification)."""
    return {
        "status": report.state.name, "exit_code": int(report.state), "now": report.now.isoformat(),
        "days": report.days, "critical_days": report.critical_days, "summary": report.summary(),
        "items": [
            {"kind": item.kind.value, "name": item.name, "ends_at": item.ends_at.isoformat(),
             "seconds_left": int(item.seconds_left(report.now)), "state": item.state.name, "id": item.cert_id,
             "serial": item.serial, "requester": item.requester}
            for item in report.items
        ],
    }  # fmt: skip
