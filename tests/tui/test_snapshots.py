"""Snapshots of every screen and dialog, on the demo data with a fixed clock.

Deterministic by construction: the clock is FIXED_NOW, serials count up from a
fixed value, requester keys are checked in (so SPKI fingerprints repeat), the
header shows no wall clock, the input cursor does not blink and every worker
has finished before the picture is taken.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.text import Text
from tui_support import build_demo, clock, make_app, settle  # noqa: F401 (fixture)

from tui_ca.tui.screens.dialogs import ConfirmDialog


def _app(tmp_path: Path, clock):
    return make_app(build_demo(tmp_path / "home", clock), clock)


def _keys(*keys: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def test_main_screen_80x24(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys())


def test_main_screen_120x36(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(120, 36), run_before=_keys())


def test_main_screen_with_history_120x36(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(120, 36), run_before=_keys("h"))


def test_confirm_requester_screen(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("down", "enter"))


def test_approve_dialog(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("enter", "a"))


def test_reject_dialog(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("enter", "r"))


def test_certificate_screen(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("tab", "enter"))


def test_revoke_dialog(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("tab", "enter", "v"))


def test_export_dialog(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("tab", "enter", "e"))


def test_help_screen(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("question_mark"))


def test_confirm_dialog(snap_compare, tmp_path, clock):
    async def run_before(pilot) -> None:
        await settle(pilot)
        text = Text("/srv/exports/certificate-1.pem exists. Replace it?")
        pilot.app.push_screen(ConfirmDialog("Replace the file?", text, confirm_label="Replace"))
        await settle(pilot)

    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=run_before)


def test_passphrase_dialog(snap_compare, tmp_path, clock):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.ask_passphrase()
        await settle(pilot)

    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=run_before)


def test_first_run_screen(snap_compare, clock):
    # The screen names the home, so the snapshot needs the same path every run.
    home = Path("/tmp/tui-ca-snapshot-first-run")
    shutil.rmtree(home, ignore_errors=True)
    assert snap_compare(make_app(home, clock), terminal_size=(80, 24), run_before=_keys())


def test_audit_screen_80x24(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("A"))
