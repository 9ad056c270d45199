"""`expiring`: what ends soon, with monitoring-plugin exit codes.

The report is tested on a fixed clock moved by hand; the command through the
real ``tui-ca`` on a CA made on the real clock (a child process has no other).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import CA_NAMES, assert_refused, csr_pem, make_csr, run_cli
from tui_ca.engine import Actor, CertificateAuthority, InputError, RevocationReason
from tui_ca.engine.expiry import Kind, State, expiry_report, report_json
from tui_ca.engine.service_certs import setup_service_certs


def issue(ca: CertificateAuthority, cn: str, days: int) -> int:
    request = ca.submit(csr_pem(make_csr(cn=cn))).request  # requester: the CN, taken literally
    [outcome] = ca.approve([request.id], days=days)
    assert outcome.certificate is not None
    return request.id


def test_nothing_in_the_window_is_ok(ca):
    issue(ca, "far", 365)
    report = expiry_report(ca, days=3)
    assert report.items == ()
    assert report.state is State.OK
    assert report.summary().startswith("EXPIRING OK - nothing ends within 3 days")


def test_certificates_in_the_window_soonest_first_and_revoked_left_out(ca, clock):
    late, soon, far = issue(ca, "late", 20), issue(ca, "soon", 5), issue(ca, "far", 200)
    gone = issue(ca, "gone", 4)
    ca.revoke(gone, RevocationReason.CESSATION_OF_OPERATION)
    report = expiry_report(ca, days=30)
    certs = [item for item in report.items if item.kind is Kind.CERTIFICATE]
    assert [item.cert_id for item in certs] == [soon, late]
    assert far not in [item.cert_id for item in certs]
    assert report.state is State.WARNING
    assert report.summary().startswith(f"EXPIRING WARNING - 2 certificates within 30 days; soonest certificate {soon}")


def test_critical_days_raise_the_state(ca):
    soon = issue(ca, "soon", 5)
    issue(ca, "later", 20)
    report = expiry_report(ca, days=30, critical_days=7)
    states = {item.cert_id: item.state for item in report.items if item.kind is Kind.CERTIFICATE}
    assert states[soon] is State.CRITICAL
    assert sorted(states.values()) == [State.WARNING, State.CRITICAL]
    assert report.state is State.CRITICAL
    assert report.summary().startswith("EXPIRING CRITICAL - ")


def test_an_expired_leaf_is_no_longer_reported(ca, clock):
    gone = issue(ca, "short", 2)
    clock.now += timedelta(days=3)
    ca.publish_crl()
    assert gone not in [item.cert_id for item in expiry_report(ca, days=30).items]


def test_a_weekly_crl_is_judged_on_its_life(ca, clock):
    # Just published: 7 days left, a 30-day window must not flag it forever.
    assert [item for item in expiry_report(ca, days=30).items if item.kind is Kind.CRL] == []
    clock.now += timedelta(days=4)  # under half its life left
    [crl] = [item for item in expiry_report(ca, days=30, critical_days=7).items if item.kind is Kind.CRL]
    assert crl.state is State.WARNING
    clock.now += timedelta(days=2, hours=1)  # under a day left
    [crl] = [item for item in expiry_report(ca, days=30, critical_days=7).items if item.kind is Kind.CRL]
    assert crl.state is State.CRITICAL


def test_a_lapsed_crl_is_critical_without_critical_days(ca, clock):
    clock.now += timedelta(days=8)
    report = expiry_report(ca, days=30)
    [crl] = [item for item in report.items if item.kind is Kind.CRL]
    assert crl.state is State.CRITICAL
    assert report.state is State.CRITICAL
    assert "was due" in report.summary()


def test_ca_and_service_certificates_in_the_window(home, clock):
    ca = CertificateAuthority(home, clock=clock, actor=Actor("alice"))
    ca.init(CA_NAMES, days=20)
    setup_service_certs(ca, tls_days=200, ocsp_days=7)
    names = {item.name: item for item in expiry_report(ca, days=30).items}
    assert {"issuing CA", "root CA"} == set(names)
    assert names["issuing CA"].kind is Kind.CA and names["issuing CA"].state is State.WARNING
    # The TLS certificate was clipped to the CA's 20 days; a fresh 7-day OCSP
    # signer has more than half its life left: both judged on their life.
    clock.now += timedelta(days=4)
    names = {item.name: item for item in expiry_report(ca, days=30).items}
    assert "OCSP signing certificate" in names and "TLS server certificate" not in names
    clock.now += timedelta(days=7)
    names = {item.name: item for item in expiry_report(ca, days=30).items}
    assert names["TLS server certificate"].kind is Kind.SERVICE
    assert names["OCSP signing certificate"].state is State.CRITICAL  # lapsed


def test_an_ra_certificate_is_reported_too(ca, clock):
    setup_service_certs(ca)
    # The RA certificate of SCEP lives beside the others; reuse the TLS one's bytes.
    tls = (ca.home / "server" / "tls.crt").read_bytes()
    (ca.home / "server" / "ra.crt").write_bytes(tls)
    clock.now += timedelta(days=340)
    names = {item.name for item in expiry_report(ca, days=30).items}
    assert {"TLS server certificate", "RA certificate"} <= names


def test_a_damaged_service_certificate_is_named(ca):
    setup_service_certs(ca)
    (ca.home / "server" / "tls.crt").write_bytes(b"not a certificate")
    with pytest.raises(InputError, match="tls.crt"):
        expiry_report(ca)


@pytest.mark.parametrize(("days", "critical"), [(-1, None), (30, 31), (30, -2), (99999, None)])
def test_bad_windows_are_refused(ca, days, critical):
    with pytest.raises(InputError):
        expiry_report(ca, days=days, critical_days=critical)


def test_json_carries_every_item(ca):
    soon = issue(ca, "json-[red]x[/]", 5)
    data = report_json(expiry_report(ca, days=30, critical_days=7))
    assert data["status"] == "CRITICAL" and data["exit_code"] == 2
    [item] = [i for i in data["items"] if i["kind"] == "certificate"]
    assert item["id"] == soon and item["requester"] == "json-[red]x[/]" and item["state"] == "CRITICAL"
    assert item["seconds_left"] > 4 * 86400


# ----------------------------------------------------------- the command


@pytest.fixture
def live_home(tmp_path: Path) -> Path:
    ca = CertificateAuthority(tmp_path / "home", actor=Actor("alice"))
    ca.init(CA_NAMES)
    issue(ca, "phone-[bold]x[/]", 5)  # markup-like text stays text
    issue(ca, "desk", 20)
    issue(ca, "server", 300)
    return ca.home


def test_command_warning_then_critical(live_home):
    warn = run_cli(live_home, "expiring")
    out = warn.stdout.decode()
    assert warn.returncode == 1, warn.stderr
    assert out.splitlines()[0].startswith("EXPIRING WARNING - 2 certificates within 30 days; soonest certificate 1 ")
    assert "\x1b" not in out and "phone-[bold]x[/]" in out
    crit = run_cli(live_home, "expiring", "--critical-days", "7")
    assert crit.returncode == 2
    assert crit.stdout.decode().startswith("EXPIRING CRITICAL - ")
    ok = run_cli(live_home, "expiring", "--days", "3")
    assert ok.returncode == 0 and ok.stdout.decode().startswith("EXPIRING OK - ")


def test_command_json(live_home):
    result = run_cli(live_home, "expiring", "--json", "--days", "10")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert [i["id"] for i in data["items"] if i["kind"] == "certificate"] == [1]


def test_command_unknown_when_there_is_no_ca(tmp_path):
    result = run_cli(tmp_path / "nowhere", "expiring")
    assert result.stdout.decode().startswith("EXPIRING UNKNOWN - no CA in ")
    assert_refused(result, 3, "no CA in")


def test_command_unknown_for_bad_thresholds(live_home):
    result = run_cli(live_home, "expiring", "--days", "5", "--critical-days", "9")
    assert result.stdout.decode().startswith("EXPIRING UNKNOWN - --critical-days")
    assert_refused(result, 3, "--critical-days")


def test_command_usage_errors_are_unknown(live_home):
    result = run_cli(live_home, "expiring", "--days", "soon")
    assert result.stdout.decode().startswith("EXPIRING UNKNOWN - argument --days")
    assert_refused(result, 3, "--days")
