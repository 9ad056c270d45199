"""Acting from the lists: a/r/v on the selected row, marks, and bulk actions reported per row."""

from __future__ import annotations

from textual.widgets import Label, Static
from tui_support import clock, demo_home, list_lines, make_app, pilot_test, settle, until  # noqa: F401

from tui_ca.engine import Actor, CertificateAuthority, RequestStatus, RevocationReason
from tui_ca.tui.screens.dialogs import ApproveDialog, RejectDialog, RevokeDialog
from tui_ca.tui.screens.main import MainScreen
from tui_ca.tui.screens.report import BulkReportScreen
from tui_ca.tui.widgets.record_list import RecordList

OTHER_ADMIN = Actor("bob", "198.51.100.7")


def rendered(widget) -> str:
    return str(widget.render())


def title(app, list_id: str) -> str:
    return rendered(app.screen.query_one(f"#{list_id}-title", Label))


@pilot_test
async def test_a_on_the_selected_queued_row_opens_the_approve_dialog(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "a")
        await until(pilot, lambda: isinstance(app.screen, ApproveDialog))
        await settle(pilot)
        assert "Approve request 7?" in rendered(app.screen.query_one(".dialog-title"))
        assert "micontact-center" in rendered(app.screen.query_one(".dialog-body"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and 7 in app.screen.query_one("#certs", RecordList).keys())  # fmt: skip
    assert CertificateAuthority(demo_home).request(7).status is RequestStatus.APPROVED


@pilot_test
async def test_r_and_v_from_the_lists_open_their_dialogs_and_keys_grey_out_elsewhere(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.check_action("revoke", ()) is False  # the queue has focus: not offered
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RejectDialog))
        await settle(pilot)
        await pilot.press(*"not ours", "enter")
        await until(pilot, lambda: CertificateAuthority(demo_home).request(6).status is RequestStatus.REJECTED)
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("tab")
        assert app.screen.check_action("approve", ()) is False
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, RevokeDialog))
        await settle(pilot)
        assert "Revoke certificate 1?" in rendered(app.screen.query_one(".dialog-title"))
        await pilot.press("y")
        await until(pilot, lambda: CertificateAuthority(demo_home).certificate(1).revoked_at is not None)


@pilot_test
async def test_space_marks_star_marks_all_and_u_clears(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        queued = app.screen.query_one("#queued", RecordList)
        await pilot.press("space")
        assert "1 marked" in title(app, "queued")
        assert list_lines(queued)[1].startswith("●") and not list_lines(queued)[2].startswith("●")
        assert queued.cursor_key == 7  # space moves on, so a run of rows is marked quickly
        await pilot.press("space", "up", "space")
        assert "1 marked" in title(app, "queued") and queued.marked_keys() == [6]
        await pilot.press("asterisk")
        assert "3 marked" in title(app, "queued")
        assert all(line.startswith("●") for line in list_lines(queued)[1:4])
        await pilot.press("u")
        assert "marked" not in title(app, "queued")
        # Marks are per list: the certificates list has its own.
        await pilot.press("tab", "space")
        assert "1 marked" in title(app, "certs") and "marked" not in title(app, "queued")


@pilot_test
async def test_bulk_approve_is_one_engine_call_and_reports_each_row(demo_home, clock):
    app = make_app(demo_home, clock)
    calls: list[list[int]] = []
    approve = app.ca.approve

    def counting(ids, **kwargs):
        calls.append(list(ids))
        return approve(ids, **kwargs)

    app.ca.approve = counting
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("asterisk", "a")
        await until(pilot, lambda: isinstance(app.screen, ApproveDialog))
        await settle(pilot)
        body = rendered(app.screen.query_one(".dialog-body"))
        assert "3 marked requests" in body and all(name in body for name in ("mbg-proxy", "micontact", "phone-1017"))
        # Another admin decides one while the dialog is open.
        CertificateAuthority(demo_home, clock=clock, actor=OTHER_ADMIN).reject(7, "duplicate")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BulkReportScreen), timeout=20)
        await settle(pilot)
        report = rendered(app.screen.query_one("#report-rows", Static))
        ca = CertificateAuthority(demo_home)
        for request_id in (6, 8):
            assert f"issued, serial {ca.certificate(request_id).serial_hex}" in report
        assert "request 7 is rejected, not queued" in report
        assert "2 of 3 done" in rendered(app.screen.query_one(".dialog-title"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and "marked" not in title(app, "queued"))
    assert calls == [[6, 7, 8]]


@pilot_test
async def test_bulk_revoke_and_bulk_reject_act_on_every_mark(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("space", "space", "r")
        await until(pilot, lambda: isinstance(app.screen, RejectDialog))
        await settle(pilot)
        await pilot.press(*"unknown devices", "enter")
        await until(pilot, lambda: isinstance(app.screen, BulkReportScreen), timeout=20)
        await settle(pilot)
        await pilot.press("escape")
        ca = CertificateAuthority(demo_home)
        assert [ca.request(i).reason for i in (6, 7)] == ["unknown devices"] * 2
        assert ca.request(8).status is RequestStatus.QUEUED
        await pilot.press("tab", "space", "space", "v")
        await until(pilot, lambda: isinstance(app.screen, RevokeDialog))
        await settle(pilot)
        assert "2 marked certificates" in rendered(app.screen.query_one(".dialog-body"))
        await pilot.press("j", "y")
        await until(pilot, lambda: isinstance(app.screen, BulkReportScreen), timeout=30)
        await settle(pilot)
        assert rendered(app.screen.query_one("#report-rows", Static)).count("revoked (keyCompromise)") == 2
    reasons = [CertificateAuthority(demo_home).certificate(i).revocation_reason for i in (1, 2)]
    assert reasons == [RevocationReason.KEY_COMPROMISE] * 2
