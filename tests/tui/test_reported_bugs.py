"""The bugs a new user found, each pinned by a test that failed before its fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

from helpers import csr_pem, make_csr
from textual.widgets import Button, Input, Label, Static
from tui_support import DEMO_CA_NAMES, clock, demo_home, list_lines, make_app, pilot_test, settle, until  # noqa: F401

from tui_ca.engine import Actor, CertificateAuthority, RequestStatus, RevocationReason
from tui_ca.tui.screens.certificate import CertificateScreen
from tui_ca.tui.screens.dialogs import (
    ApproveDialog,
    ConfirmDialog,
    ExportDialog,
    PassphraseDialog,
    RejectDialog,
    RevokeDialog,
)
from tui_ca.tui.screens.main import MainScreen
from tui_ca.tui.screens.request import RequestScreen
from tui_ca.tui.widgets.record_list import RecordList

OTHER_ADMIN = Actor("bob", "198.51.100.7")


def rendered(widget) -> str:
    return str(widget.render())


@pilot_test
async def test_a_wrong_passphrase_from_the_start_up_prompt_is_checked_and_asked_again(tmp_path, clock):
    home = tmp_path / "locked"
    CertificateAuthority(home, clock=clock, passphrase=b"correct horse").init(DEMO_CA_NAMES)
    CertificateAuthority(home, clock=clock).submit(csr_pem(make_csr("ec-p256", cn="p1")))
    # As run_app hands over what the terminal prompt read, before the UI starts.
    app = make_app(home, clock, passphrase=b"wrong horse")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PassphraseDialog)
                    and "passphrase" in rendered(app.screen.query_one("#dialog-error")).lower(), timeout=20)  # fmt: skip
        app.screen.query_one("#passphrase", Input).value = "correct horse"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), timeout=20)
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and 1 in app.screen.query_one("#certs", RecordList).keys(), timeout=20)  # fmt: skip
    assert CertificateAuthority(home).request(1).status is RequestStatus.APPROVED


@pilot_test
async def test_the_revoke_dialog_buttons_are_on_screen_at_80x24(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, RevokeDialog)
        for button in app.screen.query(Button):
            assert app.screen.region.contains_region(button.region), f"{button.id} is off screen"
        await pilot.click("#confirm")
        await until(pilot, lambda: CertificateAuthority(demo_home).certificate(1).revoked_at is not None)


def _hint(label: str) -> str:
    found = re.search(r"\(([^)]+)\)$", label)
    assert found, f"no key hint on {label!r}"
    return {"Enter": "enter", "Esc": "escape"}.get(found.group(1), found.group(1))


@pilot_test
async def test_every_dialog_key_hint_does_what_it_says(demo_home, clock, tmp_path):
    dialogs = [
        (lambda: ApproveDialog("Approve?", "body", 365, 3650), None, 365),
        (lambda: RejectDialog("Reject?", "body"), "not ours", "not ours"),
        (lambda: RevokeDialog("Revoke?", "body"), None, RevocationReason.UNSPECIFIED),
        (lambda: ExportDialog("Export", "body", tmp_path / "x.pem"), None, tmp_path / "x.pem"),
        (lambda: PassphraseDialog("Unlock", "body"), "secret", b"secret"),
        (lambda: ConfirmDialog("Sure?", "body"), None, True),
    ]
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for make, typed, expected in dialogs:
            for which, want in (("confirm", expected), ("cancel", None)):
                results: list = []
                dialog = make()
                app.push_screen(dialog, results.append)
                await settle(pilot)
                if typed:
                    await pilot.press(*typed)
                key = _hint(str(dialog.query_one(f"#{which}", Button).label))
                await pilot.press(key)
                await until(pilot, lambda results=results: results)
                assert results == [want], f"{type(dialog).__name__}: {key} gave {results}"


@pilot_test
async def test_a_decided_request_is_not_offered_for_confirmation(demo_home, clock):
    app = make_app(demo_home, clock, poll_interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        title = app.screen.query_one(".screen-title", Label)
        assert "Confirm the requester" in rendered(title)
        CertificateAuthority(demo_home, clock=clock, actor=OTHER_ADMIN).approve([6])
        await until(pilot, lambda: "approved" in rendered(title), timeout=5)
        assert "Confirm the requester" not in rendered(title)
        assert "holds active certificate" not in rendered(app.screen.query_one("#warnings", Static))
        await pilot.press("escape", "h")
        await settle(pilot)
        closed = app.screen.query_one("#closed", RecordList)
        closed.move_to(5)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestScreen)
        assert "rejected" in rendered(app.screen.query_one(".screen-title", Label))
        assert "Confirm the requester" not in rendered(app.screen.query_one(".screen-title", Label))


@pilot_test
async def test_the_age_column_advances_while_idle(demo_home, clock):
    app = make_app(demo_home, clock, poll_interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        queued = app.screen.query_one("#queued", RecordList)
        assert list_lines(queued)[3].endswith(" 2h")
        clock.now += timedelta(hours=2)
        await until(pilot, lambda: list_lines(queued)[3].endswith(" 4h"), timeout=5)


@pilot_test
async def test_a_terminal_below_80x24_is_told_and_enter_does_nothing(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(70, 20)) as pilot:
        await settle(pilot)
        assert "80x24" in rendered(app.screen.query_one("#too-small", Static))
        await pilot.press("enter", "a", "tab", "enter")
        await settle(pilot)
        assert not any(isinstance(s, (RequestScreen, CertificateScreen)) for s in app.screen_stack)
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RequestScreen)


def _tui_ca(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_ca", *args], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=120, env={**os.environ, "TUI_CA_PASSPHRASE_FILE": "", **(env or {})})  # fmt: skip


def test_without_a_terminal_the_ui_refuses_in_one_line(demo_home):
    result = _tui_ca("--home", str(demo_home))
    assert result.returncode == 2
    assert result.stdout == b"", "escape codes written into the pipe"
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "terminal" in lines[0], lines


def test_demo_without_a_terminal_refuses_and_leaves_no_folder(tmp_path):
    result = _tui_ca("demo", env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    assert "terminal" in result.stderr.decode()
    assert list(tmp_path.iterdir()) == [], "the throwaway demo home was left behind"


@pilot_test
async def test_scrolling_lists_have_no_horizontal_scrollbar(demo_home, clock):
    ca = CertificateAuthority(demo_home, clock=clock)
    for n in range(12):
        ca.submit(csr_pem(make_csr("ec-p256", cn=f"extra-{n}.example.net")))
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        queued = app.screen.query_one("#queued", RecordList)
        assert queued.show_vertical_scrollbar
        assert not queued.show_horizontal_scrollbar
        # The last line of the list is a row, not a scrollbar.
        assert re.match(r"\s*\d+ ", list_lines(queued)[-1])


@pilot_test
async def test_j_and_k_move_in_the_reason_list(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("tab", "enter")
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        await pilot.press("j", "j", "k", "y")
        await until(pilot, lambda: CertificateAuthority(demo_home).certificate(1).revoked_at is not None)
    assert CertificateAuthority(demo_home).certificate(1).revocation_reason is RevocationReason.KEY_COMPROMISE
