"""Notifications end to end: engine operations write events to the outbox in
their own transaction, the worker delivers them to real receivers, and an
operation succeeds whatever the receivers do. Runs on every store backend."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import CA_NAMES, assert_refused, csr_pem, make_csr, run_cli, snapshot_home
from tests.ops.receivers import HttpReceiver, SmtpServer, events_in, server_tls_files, stdin_to_file_argv, wait_for
from tui_ca.engine import Actor, CertificateAuthority, InputError, RevocationReason, RuleError
from tui_ca.engine.notify.config import add_channel, config_path, make_channel
from tui_ca.engine.notify.outbox import backoff
from tui_ca.engine.notify.store_outbox import StoreOutbox, notify_pass
from tui_ca.engine.notify.worker import run_forever


@pytest.fixture(autouse=True)
def _every_backend(backend):
    return backend


def outbox_events(ca: CertificateAuthority) -> list[dict]:
    return [entry["event"] for entry in StoreOutbox(ca).pending()]


def notify_audit(ca: CertificateAuthority) -> list[tuple[str, str]]:
    return [(r.target, r.outcome) for r in ca.audit_records() if r.action == "notify"]


@pytest.fixture
def script_ca(ca: CertificateAuthority, tmp_path: Path) -> tuple[CertificateAuthority, Path]:
    out = tmp_path / "events.jsonl"
    add_channel(ca.home, make_channel("command", "script", argv=stdin_to_file_argv(out)))
    return ca, out


def test_each_change_writes_its_event_in_the_same_transaction(script_ca):
    ca, out = script_ca
    first = ca.submit(csr_pem(make_csr(cn="phone-1"))).request.id
    assert [e["kind"] for e in outbox_events(ca)] == ["queued"]
    second = ca.submit(csr_pem(make_csr(cn="phone-2"))).request.id
    ca.approve([first])
    ca.reject(second, "not ours")
    ca.revoke(first, RevocationReason.KEY_COMPROMISE)
    assert [e["kind"] for e in outbox_events(ca)] == ["queued", "queued", "approved", "rejected", "revoked"]
    assert events_in(out) == []  # nothing delivered by the operations themselves
    summary = notify_pass(ca)
    assert summary.delivered == 5 and outbox_events(ca) == []
    got = events_in(out)
    assert [e["kind"] for e in got] == ["queued", "queued", "approved", "rejected", "revoked"]
    assert got[0]["id"] == first and got[0]["requester"] == "phone-1" and got[0]["actor"]["user"] == "alice"
    assert got[2]["serial"] == ca.certificate(first).serial_hex
    assert got[3]["reason"] == "not ours" and got[4]["reason"] == "keyCompromise"
    assert len(notify_audit(ca)) == 5 and all(outcome == "delivered" for _, outcome in notify_audit(ca))
    assert ca.verify_audit() == []


def test_a_failed_operation_writes_no_event(script_ca):
    ca, _ = script_ca
    request = ca.submit(csr_pem(make_csr(cn="phone-1"))).request.id
    ca.reject(request, "no")
    before = outbox_events(ca)
    with pytest.raises(RuleError):
        ca.reject(request, "again")
    assert outbox_events(ca) == before


def test_a_refused_submission_is_news_but_stores_nothing_else(script_ca):
    ca, out = script_ca
    with pytest.raises(InputError):
        ca.submit(b"this is not a CSR", source="est")
    assert ca.requests() == []
    [event] = outbox_events(ca)
    assert event["kind"] == "refused" and event["source"] == "est" and "certificate signing request" in event["reason"]
    notify_pass(ca)
    assert [e["kind"] for e in events_in(out)] == ["refused"]


def test_a_record_the_models_cannot_read_still_gives_an_event(script_ca, monkeypatch):
    ca, _ = script_ca

    def unreadable(doc: dict):
        raise KeyError("subject")

    monkeypatch.setattr("tui_ca.engine.notify.events.queued_event", unreadable)
    request = ca.submit(csr_pem(make_csr(cn="phone-1"))).request.id  # the operation itself succeeds
    [event] = outbox_events(ca)
    assert event["kind"] == "queued" and event["target"] == f"request {request}" and event["requester"] == "phone-1"


def test_without_channels_nothing_is_written(ca):
    ca.submit(csr_pem(make_csr(cn="phone-1")))
    assert outbox_events(ca) == []


def test_channels_receive_only_their_kinds(ca, tmp_path):
    out = tmp_path / "revocations.jsonl"
    add_channel(ca.home, make_channel("command", "rev", argv=stdin_to_file_argv(out), events="revoked"))
    request = ca.submit(csr_pem(make_csr(cn="phone-1"))).request.id
    ca.approve([request])
    ca.revoke(request)
    notify_pass(ca)
    assert [e["kind"] for e in events_in(out)] == ["revoked"]


def test_daily_expiry_notice(ca, clock, tmp_path):
    out = tmp_path / "expiry.jsonl"
    add_channel(ca.home, make_channel("command", "exp", argv=stdin_to_file_argv(out), events="expiry"))
    request = ca.submit(csr_pem(make_csr(cn="short-lived"))).request.id
    ca.approve([request], days=10)
    assert notify_pass(ca).expiry_notice
    assert not notify_pass(ca).expiry_notice  # once a day
    [event] = events_in(out)
    assert [i["id"] for i in event["report"]["items"] if i["kind"] == "certificate"] == [request]
    clock.now += timedelta(days=1)
    assert notify_pass(ca).expiry_notice


def test_operations_succeed_while_smtp_is_down_and_mail_follows(home, tmp_path):
    # A real-clock CA: the SMTP client verifies the server's certificate now.
    ca = CertificateAuthority(home, actor=Actor("alice"))
    ca.init(CA_NAMES)
    chain, key, root = server_tls_files(ca, tmp_path / "tls")
    smtp = SmtpServer(chain, key)  # not started: the mail server is down
    cred = tmp_path / "cred"
    cred.write_text(f"{smtp.user}\n{smtp.password}\n")
    cred.chmod(0o600)
    add_channel(ca.home, make_channel("smtp", "mail", host="127.0.0.1", port=smtp.port, sender="ca@example.net",
                                      to=["pki@example.net"], credentials_file=str(cred), cafile=str(root),
                                      events="queued,approved", timeout=5))  # fmt: skip
    request = ca.submit(csr_pem(make_csr(cn="phone-1"))).request.id
    [outcome] = ca.approve([request])
    assert outcome.certificate is not None
    summary = notify_pass(ca)
    assert summary.retried == 2 and summary.delivered == 0
    failures = notify_audit(ca)
    assert [o for _, o in failures] == ["failed (attempt 1)", "failed (attempt 1)"]
    assert all("cannot reach 127.0.0.1" in r.extra["error"] for r in ca.audit_records() if r.action == "notify")
    smtp.start()
    try:
        # Not due yet (backing off) on this clock; a worker with a later clock delivers.
        later = CertificateAuthority(home, actor=Actor("cron"), clock=lambda: ca.now() + backoff(1))
        assert notify_pass(later).delivered == 2
        assert len(smtp.messages) == 2
        subjects = sorted(m[2].split(b"Subject: ", 1)[1].split(b"\n", 1)[0].strip() for m in smtp.messages)
        assert subjects == [f"[tui-ca] request {request} approved".encode(),
                            f"[tui-ca] request {request} waits for approval".encode()]  # fmt: skip
    finally:
        smtp.stop()
    assert ca.verify_audit() == []


def test_a_damaged_settings_file_fails_no_operation_and_loses_no_event(script_ca):
    ca, out = script_ca
    path = config_path(ca.home)
    good = path.read_bytes()
    path.write_text("{ not json")
    request = ca.submit(csr_pem(make_csr(cn="phone-1"))).request.id
    assert [e["kind"] for e in outbox_events(ca)] == ["queued"]
    with pytest.raises(RuleError, match="notify.json is damaged"):
        notify_pass(ca)
    path.write_bytes(good)
    notify_pass(ca)
    assert [e["id"] for e in events_in(out)] == [request]


def test_webhook_receiver_gets_events_from_serves_task(ca, clock):
    receiver = HttpReceiver().start()
    try:
        add_channel(ca.home, make_channel("webhook", "hook", url=receiver.url))
        ca.submit(csr_pem(make_csr(cn="phone-1")))
        errors: list[Exception] = []

        async def main() -> None:
            stop = asyncio.Event()
            with ThreadPoolExecutor(max_workers=1) as executor:
                task = asyncio.create_task(run_forever(lambda: notify_pass(ca), executor, interval=0.05, stop=stop,
                                                       on_error=errors.append))  # fmt: skip
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, wait_for, lambda: receiver.bodies, "the webhook delivery")
                stop.set()
                await task

        asyncio.run(main())
        assert [b["kind"] for b in receiver.bodies] == ["queued"] and errors == []
    finally:
        receiver.stop()


def test_two_workers_never_deliver_twice(script_ca):
    ca, out = script_ca
    for n in range(6):
        ca.submit(csr_pem(make_csr(cn=f"phone-{n}")))
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        notify_pass(CertificateAuthority(ca.home, clock=ca.now, actor=Actor("cron")))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e["requester"] for e in events_in(out)) == [f"phone-{n}" for n in range(6)]


# ----------------------------------------------------------------- the command


@pytest.mark.tinydb_only
def test_notify_commands(tmp_path):
    ca = CertificateAuthority(tmp_path / "home", actor=Actor("alice"))
    ca.init(CA_NAMES)
    home, out = ca.home, tmp_path / "events.jsonl"
    added = run_cli(home, "notify", "add", "command", "script", "--", *stdin_to_file_argv(out), check=True)
    assert b"channel script added" in added.stdout
    assert (config_path(home).stat().st_mode & 0o777) == 0o600
    listed = run_cli(home, "notify", "list", check=True).stdout.decode()
    assert "script  command" in listed and "0 event(s) waiting" in listed
    tested = run_cli(home, "notify", "test", check=True)
    assert tested.stdout == b"script: delivered\n" and events_in(out)[0]["kind"] == "test"
    ca.submit(csr_pem(make_csr(cn="phone-1")))
    ran = run_cli(home, "notify", "run", check=True)
    assert ran.stdout.startswith(b"1 delivered")
    assert [e["kind"] for e in events_in(out)] == ["test", "queued"]
    audit = json.loads(run_cli(home, "audit", "--json", check=True).stdout)
    assert [(r["action"], r["outcome"]) for r in audit if r["action"].startswith("notify")] == [
        ("notify-config", "added"), ("notify-config", "test delivered"), ("notify", "delivered")]  # fmt: skip
    run_cli(home, "notify", "remove", "script", check=True)
    assert b"no channels" in run_cli(home, "notify", "list", check=True).stdout


@pytest.mark.tinydb_only
@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("notify", "add", "webhook", "hook", "--url", "ftp://x"), 2, "http:// or https://"),
        (("notify", "add", "command", "bad name!", "--", "/bin/true"), 2, "channel name"),
        (("notify", "add", "smtp", "m", "--host", "127.0.0.1", "--from", "nobody", "--to", "a@example.net"), 2,
         "e-mail address"),
        (("notify", "add", "command", "c", "--events", "everything", "--", "/bin/true"), 2, "unknown event kind"),
        (("notify", "remove", "ghost"), 2, "no notification channel named 'ghost'"),
        (("notify", "test"), 1, "no channels to test"),
    ],
)  # fmt: skip
def test_notify_refusals_store_nothing(tmp_path, args, code, fragment):
    ca = CertificateAuthority(tmp_path / "home", actor=Actor("alice"))
    ca.init(CA_NAMES)
    before = snapshot_home(ca.home)
    assert_refused(run_cli(ca.home, *args), code, fragment)
    assert snapshot_home(ca.home) == before


@pytest.mark.tinydb_only
def test_notify_refuses_a_damaged_or_unsafe_settings_file(tmp_path):
    ca = CertificateAuthority(tmp_path / "home", actor=Actor("alice"))
    ca.init(CA_NAMES)
    path = config_path(ca.home)
    path.write_text("[]")
    path.chmod(0o600)
    assert_refused(run_cli(ca.home, "notify", "list"), 1, f"{path} is damaged")
    assert path.read_text() == "[]"  # never overwritten
    path.write_text('{"version": 1, "channels": []}')
    path.chmod(0o644)
    assert_refused(run_cli(ca.home, "notify", "list"), 1, "chmod 600")
