"""Pilot tests: every flow of the UI and every refusal, on real CA homes."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, OptionList
from tui_support import clock, demo_home, list_lines, make_app, pilot_test, settle, until  # noqa: F401 (fixtures)

from tui_ca.engine import Actor, CertificateAuthority, RequestStatus, RevocationReason
from tui_ca.tui.screens.certificate import CertificateScreen
from tui_ca.tui.screens.dialogs import ApproveDialog, ConfirmDialog, ExportDialog, RejectDialog, RevokeDialog
from tui_ca.tui.screens.help import HelpScreen
from tui_ca.tui.screens.main import MainScreen
from tui_ca.tui.screens.request import RequestScreen
from tui_ca.tui.widgets.record_list import RecordList

OTHER_ADMIN = Actor("bob", "198.51.100.7")


def lists(app):
    """The main screen's lists; the history list only once it has been opened (``h``)."""
    screen = app.screen_stack[1] if len(app.screen_stack) > 1 else app.screen
    closed = list(screen.query("#closed").results(RecordList))
    return (screen.query_one("#queued", RecordList), screen.query_one("#certs", RecordList),
            closed[0] if closed else None)  # fmt: skip


def notices(app) -> list[str]:
    return [n.message for n in app._notifications]


@pilot_test
async def test_main_screen_shows_the_ca_the_queue_and_the_certificates(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        queued, certs, closed = lists(app)
        assert queued.keys() == [6, 7, 8]
        assert certs.keys() == [1, 2, 4]
        assert closed is None  # mounted on first use
        await pilot.press("h")
        await pilot.pause()
        assert lists(app)[2].keys() == [3, 5]
        await pilot.press("h")
        await pilot.pause()
        # The certificate ending within 30 days says so.
        assert certs.row(1).cells[5] == "expiring"
        assert "(25d)" in certs.row(1).cells[4]
        header = str(app.screen.query_one("#ca-header").render())
        assert "pki@example.net" in header or app.screen.query_one("#ca-header").visual is not None
        assert queued.has_focus


@pilot_test
async def test_tab_moves_between_lists_and_arrows_move_the_cursor(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        queued, certs, _ = lists(app)
        await pilot.press("j", "down")
        assert queued.cursor_key == 8
        await pilot.press("k")
        assert queued.cursor_key == 7
        await pilot.press("tab")
        assert certs.has_focus
        await pilot.press("shift+tab")
        assert queued.has_focus


@pilot_test
async def test_approve_issues_a_certificate_and_the_lists_update(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestScreen) and app.screen.request_id == 6
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ApproveDialog)
        assert app.screen.query_one("#days", Input).value == "365"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and 6 in lists(app)[1].keys())
        assert 6 not in lists(app)[0].keys()
        cert = CertificateAuthority(demo_home).certificate(6)
        assert (cert.not_after - cert.not_before).days == 365
        assert any("Request 6 approved" in n for n in notices(app))


@pilot_test
async def test_approve_with_typed_days_and_y(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#days", Input).value = ""
        await pilot.press("3", "0", "y")
        await until(pilot, lambda: 7 in lists(app)[1].keys())
        cert = CertificateAuthority(demo_home).certificate(7)
        assert (cert.not_after - clock.now).days in (29, 30)


@pilot_test
async def test_approve_refuses_bad_days_and_n_cancels(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#days", Input).value = "0"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ApproveDialog)
        assert "between 1 and 3650" in str(app.screen.query_one("#dialog-error").render())
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, RequestScreen)
        assert CertificateAuthority(demo_home).request(6).status is RequestStatus.QUEUED


@pilot_test
async def test_approve_refused_when_another_admin_decided_first(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        CertificateAuthority(demo_home, clock=clock, actor=OTHER_ADMIN).reject(6, "duplicate")
        await pilot.press("enter")
        await until(pilot, lambda: any("request 6 is rejected, not queued" in n for n in notices(app)))
        assert CertificateAuthority(demo_home).lookup(6)[1] is None


@pilot_test
async def test_reject_needs_a_reason_then_rejects(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("end", "enter")
        await settle(pilot)
        assert app.screen.request_id == 8
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RejectDialog)
        await pilot.press("enter")
        await pilot.pause()
        assert "needs a reason" in str(app.screen.query_one("#dialog-error").render())
        # y and n are letters in a free-text reason, not answers.
        await pilot.press(*"not ours yes no")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and 8 not in lists(app)[0].keys())
        request = CertificateAuthority(demo_home).request(8)
        assert request.status is RequestStatus.REJECTED and request.reason == "not ours yes no"
        assert request.decided_by == Actor("alice", "192.0.2.10")


@pilot_test
async def test_revoke_asks_reason_warns_and_publishes_a_crl(demo_home, clock):
    app = make_app(demo_home, clock)
    crl_before = CertificateAuthority(demo_home).info().crl_number
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("tab", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, CertificateScreen) and app.screen.cert_id == 2
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, RevokeDialog)
        assert "Do not revoke to disable" in str(app.screen.query_one(".dialog-body").render())
        await pilot.press("down")  # keyCompromise
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, CertificateScreen) and app.screen.cert
                    and app.screen.cert.revoked_at is not None)  # fmt: skip
        ca = CertificateAuthority(demo_home)
        assert ca.certificate(2).revocation_reason is RevocationReason.KEY_COMPROMISE
        assert ca.info().crl_number == crl_before + 1
        assert any(f"CRL {crl_before + 1} published" in n for n in notices(app))
        # Revoking again does not apply: the key is greyed out.
        assert app.screen.check_action("revoke", ()) is None
        await pilot.press("escape")
        await until(pilot, lambda: 2 not in lists(app)[1].keys())
        await pilot.press("h")
        await until(pilot, lambda: lists(app)[2] is not None and 2 in lists(app)[2].keys())


@pilot_test
async def test_revoke_default_reason_is_unspecified_and_escape_cancels(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert app.screen.query_one("#reasons", OptionList).highlighted == 0
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CertificateScreen)
        assert CertificateAuthority(demo_home).certificate(1).revoked_at is None
        await pilot.press("v")
        await settle(pilot)
        await pilot.press("y")
        await until(pilot, lambda: CertificateAuthority(demo_home).certificate(1).revoked_at is not None)
        assert CertificateAuthority(demo_home).certificate(1).revocation_reason is RevocationReason.UNSPECIFIED


async def _open_export(pilot, app, path: Path) -> None:
    await pilot.press("tab", "enter")
    await settle(pilot)
    await pilot.press("e")
    await settle(pilot)
    assert isinstance(app.screen, ExportDialog)
    app.screen.query_one("#path", Input).value = str(path)
    await pilot.press("enter")


@pilot_test
async def test_export_writes_the_pem_with_its_chain(demo_home, clock, tmp_path):
    app = make_app(demo_home, clock)
    target = tmp_path / "out" / "reception.pem"
    target.parent.mkdir()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await _open_export(pilot, app, target)
        await until(pilot, lambda: target.exists() and any("written to" in n for n in notices(app)))
    pem = target.read_bytes()
    assert pem.count(b"BEGIN CERTIFICATE") == 3
    assert pem == CertificateAuthority(demo_home).certificate_pem(1, chain=True)


@pilot_test
async def test_export_refuses_a_missing_folder(demo_home, clock, tmp_path):
    app = make_app(demo_home, clock)
    target = tmp_path / "nowhere" / "x.pem"
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await _open_export(pilot, app, target)
        await until(pilot, lambda: any("does not exist" in n for n in notices(app)))
    assert not target.parent.exists()


@pilot_test
async def test_export_asks_before_replacing_a_file(demo_home, clock, tmp_path):
    app = make_app(demo_home, clock)
    target = tmp_path / "keep.pem"
    target.write_bytes(b"precious")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await _open_export(pilot, app, target)
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await until(pilot, lambda: any("Nothing written" in n for n in notices(app)))
        assert target.read_bytes() == b"precious"
        await pilot.press("e")
        await settle(pilot)
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, lambda: target.read_bytes().startswith(b"-----BEGIN CERTIFICATE"))


@pilot_test
async def test_search_finds_every_field_and_f_narrows_the_focused_list(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        queued, certs, _ = lists(app)
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.focused, Input))
        await pilot.press(*"1017")
        await until(pilot, lambda: not queued.busy)  # a search reads the store in a worker
        assert queued.cursor_key == 8 and queued.match_count == 1
        assert certs.keys() == [1, 2, 4] and certs.search_text == ""  # only the focused list
        await pilot.press("enter")
        assert queued.has_focus and queued.cursor_key == 8
        assert "1 match for '1017'" in str(app.screen.query_one("#queued-title").render())
        await pilot.press("f")
        await until(pilot, lambda: not queued.busy)
        assert queued.keys() == [8]
        assert "1 of 3" in str(app.screen.query_one("#queued-title").render())
        await pilot.press("escape")
        assert queued.keys() == [6, 7, 8] and queued.cursor_key == 8
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.focused, Input))
        await pilot.press(*"zzz", "enter", "f")
        await until(pilot, lambda: not queued.busy)
        assert queued.row_count == 0
        assert "No match" in list_lines(queued)[1]


@pilot_test
async def test_history_shows_revoked_and_rejected_with_who_when_why(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert lists(app)[2] is None
        await pilot.press("h")
        await until(pilot, lambda: lists(app)[2] is not None and lists(app)[2].row_count == 2)
        closed = lists(app)[2]
        assert closed.parent.has_class("shown") and closed.has_focus
        revoked, rejected = closed.row(3).cells, closed.row(5).cells
        assert revoked[3:5] == ("revoked", "2026-03-02") and revoked[6] == "keyCompromise" and "bob" in revoked[5]
        assert rejected[3] == "rejected" and "nobody asked" in rejected[6] and "alice" in rejected[5]
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestScreen) and app.screen.check_action("approve", ()) is None


@pilot_test
async def test_help_lists_every_key(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value is None or app.return_value == 0


@pilot_test
async def test_mouse_click_selects_and_second_click_opens(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        certs = lists(app)[1]
        await pilot.click(certs, offset=(10, 2))  # header line, then rows 1, 2 …
        assert certs.has_focus and certs.cursor_key == 2
        await pilot.click(certs, offset=(10, 2))
        await settle(pilot)
        assert isinstance(app.screen, CertificateScreen) and app.screen.cert_id == 2


@pilot_test
async def test_a_certificate_screen_shows_spki_and_greys_nothing_that_applies(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        screen = app.screen
        spki = CertificateAuthority(demo_home).certificate(1).spki_sha256.upper()
        rendered = app.export_screenshot()
        assert spki[:4] in rendered and spki[-4:] in rendered
        assert screen.check_action("revoke", ()) is True and screen.check_action("export", ()) is True
