"""Channels and the worker: real SMTP (STARTTLS, AUTH) and HTTP receivers on
127.0.0.1, a real command; failures retried with backoff and audited."""

from __future__ import annotations

import email
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import CA_NAMES
from tests.ops.memory_outbox import MemoryOutbox
from tests.ops.receivers import HttpReceiver, SmtpServer, events_in, server_tls_files, stdin_to_file_argv
from tui_ca.engine import Actor, CertificateAuthority, InputError
from tui_ca.engine.notify.channels import DeliveryError, deliver
from tui_ca.engine.notify.config import NotifyConfig, NotifyConfigError, make_channel
from tui_ca.engine.notify.events import make_event
from tui_ca.engine.notify.outbox import MAX_ATTEMPTS, MAX_PENDING_REFUSALS, backoff, enqueue
from tui_ca.engine.notify.worker import run_once

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def event(kind: str = "queued", **fields) -> dict:
    fields = {"id": 7, "requester": "ph\x1bone", **fields}
    return make_event(kind, NOW, Actor("alice", "192.0.2.1"), f"{kind} happened", **fields)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path, Path]:
    # A real-clock CA: the SMTP client checks the server's certificate now.
    folder = tmp_path_factory.mktemp("smtp-tls")
    ca = CertificateAuthority(folder / "home", actor=Actor("alice"))
    ca.init(CA_NAMES)
    return server_tls_files(ca, folder)


@pytest.fixture
def smtp(tls_files):
    chain, key, _ = tls_files
    server = SmtpServer(chain, key).start()
    yield server
    server.stop()


@pytest.fixture
def credentials(tmp_path, smtp) -> Path:
    path = tmp_path / "smtp.cred"
    path.write_text(f"{smtp.user}\n{smtp.password}\n")
    path.chmod(0o600)
    return path


def smtp_channel(smtp, tls_files, credentials, **extra):
    return make_channel("smtp", "mail", host="127.0.0.1", port=smtp.port, sender="ca@example.net",
                        to=["pki-team@example.net"], credentials_file=str(credentials), cafile=str(tls_files[2]),
                        **extra)  # fmt: skip


# ------------------------------------------------------------------ channels


def test_smtp_with_starttls_and_login(smtp, tls_files, credentials):
    deliver(smtp_channel(smtp, tls_files, credentials), event())
    [(sender, rcpts, raw)] = smtp.messages
    assert sender == "ca@example.net" and rcpts == ["pki-team@example.net"]
    message = email.message_from_bytes(raw)
    assert message["Subject"] == "[tui-ca] queued happened"
    body = message.get_payload(decode=True).decode()
    assert '"requester": "ph\\u001bone"' in body and "\x1b" not in body
    assert smtp.logins == ["notifier"]


def test_smtp_server_certificate_must_verify(smtp, tls_files, credentials, tmp_path):
    other = tmp_path / "other-root.pem"
    other_ca = CertificateAuthority(tmp_path / "other", actor=Actor("alice"))
    other_ca.init(CA_NAMES)
    other.write_bytes(other_ca.ca_cert_pem(chain=True))
    channel = make_channel("smtp", "mail", host="127.0.0.1", port=smtp.port, sender="ca@example.net",
                           to=["a@example.net"], credentials_file=str(credentials), cafile=str(other))  # fmt: skip
    with pytest.raises(DeliveryError, match="TLS with 127.0.0.1"):
        deliver(channel, event())
    assert smtp.messages == []


def test_smtp_wrong_password_is_a_failed_delivery(smtp, tls_files, credentials):
    credentials.write_text(f"{smtp.user}\nwrong\n")
    with pytest.raises(DeliveryError, match="refused the login"):
        deliver(smtp_channel(smtp, tls_files, credentials), event())


def test_smtp_credentials_file_must_be_private(smtp, tls_files, credentials):
    channel = smtp_channel(smtp, tls_files, credentials)
    credentials.chmod(0o644)
    with pytest.raises(DeliveryError, match="chmod 600"):
        deliver(channel, event())
    with pytest.raises(NotifyConfigError, match="chmod 600"):
        smtp_channel(smtp, tls_files, credentials)


def test_smtp_credentials_never_in_clear(tmp_path, credentials):
    with pytest.raises(InputError, match="without STARTTLS"):
        make_channel("smtp", "mail", host="127.0.0.1", port=25, sender="ca@example.net", to=["a@example.net"],
                     credentials_file=str(credentials), starttls=False)  # fmt: skip


def test_smtp_down_is_a_failed_delivery(tls_files, credentials, smtp):
    channel = smtp_channel(smtp, tls_files, credentials)
    smtp.stop()
    with pytest.raises(DeliveryError, match="cannot reach 127.0.0.1"):
        deliver(channel, event())
    smtp.start()  # the fixture stops it again


def test_webhook_posts_the_event_as_json():
    receiver = HttpReceiver().start()
    try:
        deliver(make_channel("webhook", "hook", url=receiver.url), event())
        [body] = receiver.bodies
        assert body["kind"] == "queued" and body["requester"] == "ph\x1bone"
        assert receiver.headers[0]["Content-Type"] == "application/json"
        receiver.status = 500
        with pytest.raises(DeliveryError, match="answered 500"):
            deliver(make_channel("webhook", "hook", url=receiver.url), event())
        receiver.status = 302
        with pytest.raises(DeliveryError, match="answered 302"):
            deliver(make_channel("webhook", "hook", url=receiver.url), event())
        assert receiver.gets == []  # the redirect was not followed
    finally:
        receiver.stop()


def test_command_gets_the_event_on_stdin(tmp_path):
    out = tmp_path / "events.jsonl"
    deliver(make_channel("command", "script", argv=stdin_to_file_argv(out)), event())
    [got] = events_in(out)
    assert got["kind"] == "queued" and got["requester"] == "ph\x1bone"


def test_command_failure_and_timeout(tmp_path):
    import sys

    failing = make_channel("command", "bad", argv=[sys.executable, "-c", "import sys; sys.exit('disk full\\nmore')"])
    with pytest.raises(DeliveryError, match="exited with status 1: disk full more"):
        deliver(failing, event())
    slow = make_channel("command", "slow", argv=[sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)
    with pytest.raises(DeliveryError, match="did not finish within 0.5 s"):
        deliver(slow, event())


def test_command_runs_without_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    out = tmp_path / "events.jsonl"
    channel = make_channel("command", "script", argv=[*stdin_to_file_argv(out), f"; touch {marker}"])
    deliver(channel, event(requester=f"$(touch {marker})"))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("kind", "options", "fragment"),
    [
        ("command", {"argv": ["no-such-program-here"]}, "no program"),
        ("webhook", {"url": "ftp://example.net/x"}, "http:// or https://"),
        ("smtp", {"host": "127.0.0.1", "sender": "nobody", "to": ["a@example.net"]}, "one e-mail address"),
        ("smtp", {"host": "127.0.0.1", "sender": "a@example.net", "to": ["a@b", "bad address"]}, "e-mail addresses"),
        ("pigeon", {}, "unknown channel type"),
    ],
)
def test_unusable_channels_are_refused(kind, options, fragment):
    with pytest.raises(InputError, match=fragment):
        make_channel(kind, "x", **options)


# -------------------------------------------------------------------- worker


def test_worker_delivers_each_channel_and_audits(tmp_path):
    out = tmp_path / "events.jsonl"
    receiver = HttpReceiver().start()
    try:
        config = NotifyConfig(channels=(make_channel("command", "script", argv=stdin_to_file_argv(out)),
                                        make_channel("webhook", "hook", url=receiver.url)))  # fmt: skip
        outbox, clock = MemoryOutbox(), Clock()
        with outbox.outbox_transaction() as records:
            enqueue(records, event(), ["script", "hook"], clock())
        summary = run_once(outbox, config, clock)
        assert summary.delivered == 2 and summary.retried == 0
        assert len(events_in(out)) == 1 and len(receiver.bodies) == 1
        assert outbox.docs == {}
        assert sorted(a["target"] for a in outbox.audit) == ["event 1 (queued) to hook", "event 1 (queued) to script"]
        assert {a["outcome"] for a in outbox.audit} == {"delivered"}
        assert run_once(outbox, config, clock).delivered == 0  # nothing delivered twice
    finally:
        receiver.stop()


def test_failures_back_off_then_deliver(tmp_path, smtp, tls_files, credentials):
    config = NotifyConfig(channels=(smtp_channel(smtp, tls_files, credentials),))
    outbox, clock = MemoryOutbox(), Clock()
    with outbox.outbox_transaction() as records:
        enqueue(records, event(), ["mail"], clock())
    smtp.stop()
    assert run_once(outbox, config, clock).retried == 1
    assert run_once(outbox, config, clock).retried == 0  # not due yet: backing off
    clock.now += backoff(1)
    assert run_once(outbox, config, clock).retried == 1
    smtp.start()
    clock.now += backoff(2) - timedelta(seconds=1)
    assert run_once(outbox, config, clock).delivered == 0
    clock.now += timedelta(seconds=1)
    assert run_once(outbox, config, clock).delivered == 1
    assert len(smtp.messages) == 1
    outcomes = [a["outcome"] for a in outbox.audit]
    assert outcomes == ["failed (attempt 1)", "failed (attempt 2)", "delivered"]
    assert "cannot reach 127.0.0.1" in outbox.audit[0]["extra"]["error"]


def test_given_up_after_the_last_attempt(tmp_path):
    receiver = HttpReceiver().start()
    receiver.status = 503
    try:
        config = NotifyConfig(channels=(make_channel("webhook", "hook", url=receiver.url),))
        outbox, clock = MemoryOutbox(), Clock()
        with outbox.outbox_transaction() as records:
            enqueue(records, event(), ["hook"], clock())
        for attempt in range(1, MAX_ATTEMPTS + 1):
            summary = run_once(outbox, config, clock)
            clock.now += backoff(attempt)
        assert summary.given_up == 1
        assert outbox.docs == {}
        assert outbox.audit[-1]["outcome"] == f"given up after {MAX_ATTEMPTS} attempts"
        assert len(outbox.audit) == MAX_ATTEMPTS
    finally:
        receiver.stop()


def test_a_claimed_delivery_is_not_taken_by_a_second_worker(tmp_path):
    from tui_ca.engine.notify.outbox import claim

    outbox, clock = MemoryOutbox(), Clock()
    with outbox.outbox_transaction() as records:
        enqueue(records, event(), ["a"], clock())
    assert len(claim(outbox, clock())) == 1
    assert claim(outbox, clock()) == []
    clock.now += timedelta(minutes=6)  # the first worker died: its (default) lease runs out
    assert len(claim(outbox, clock())) == 1


def test_a_late_outcome_of_a_settled_delivery_changes_nothing():
    from tui_ca.engine.notify.outbox import claim, record

    outbox, clock = MemoryOutbox(), Clock()
    with outbox.outbox_transaction() as records:
        enqueue(records, event(), ["a"], clock())
    [first] = claim(outbox, clock())
    clock.now += timedelta(minutes=6)
    [second] = claim(outbox, clock())
    assert record(outbox, second, clock(), None) == "delivered"
    assert record(outbox, first, clock(), "too late") == "gone"
    assert [a["outcome"] for a in outbox.audit] == ["delivered"]


def test_a_removed_channel_is_dropped_and_audited(tmp_path):
    outbox, clock = MemoryOutbox(), Clock()
    with outbox.outbox_transaction() as records:
        enqueue(records, event(), ["gone"], clock())
    assert run_once(outbox, NotifyConfig(), clock).dropped == 1
    assert outbox.docs == {} and outbox.audit[-1]["outcome"] == "dropped: the channel was removed"


def test_nobody_subscribed_means_nothing_stored():
    outbox = MemoryOutbox()
    with outbox.outbox_transaction() as records:
        assert enqueue(records, event(), [], NOW) is None
    assert outbox.docs == {}


def test_refusal_floods_are_capped():
    outbox = MemoryOutbox()
    with outbox.outbox_transaction() as records:
        for _ in range(MAX_PENDING_REFUSALS + 5):
            enqueue(records, event("refused"), ["a"], NOW)
        assert records.state("refusals_dropped") == 5
    assert len(outbox.docs) == MAX_PENDING_REFUSALS


def test_daily_expiry_notice_once_a_day(tmp_path):
    out = tmp_path / "events.jsonl"
    config = NotifyConfig(channels=(make_channel("command", "script", argv=stdin_to_file_argv(out),
                                                 events="expiry"),), window_days=14)  # fmt: skip
    outbox, clock = MemoryOutbox(), Clock()
    windows = []

    def report(days: int) -> dict:
        windows.append(days)
        return {"days": days, "items": [{"kind": "certificate", "id": 3}], "status": "WARNING"}

    assert run_once(outbox, config, clock, report=report).expiry_notice
    assert not run_once(outbox, config, clock, report=report).expiry_notice
    clock.now += timedelta(days=1)
    assert run_once(outbox, config, clock, report=report).expiry_notice
    assert windows == [14, 14]
    assert [e["kind"] for e in events_in(out)] == ["expiry", "expiry"]
    assert events_in(out)[0]["report"]["items"] == [{"kind": "certificate", "id": 3}]


def test_credentials_file_mode_is_checked_at_add(tmp_path):
    cred = tmp_path / "cred"
    cred.write_text("u\np\n")
    os.chmod(cred, 0o640)
    with pytest.raises(NotifyConfigError, match="mode 0640"):
        make_channel("smtp", "m", host="127.0.0.1", sender="a@example.net", to=["b@example.net"],
                     credentials_file=str(cred))  # fmt: skip
