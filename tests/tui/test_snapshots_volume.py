"""Snapshots of the screens and states for volume and live work, at 80x24 and 120x36.

Same determinism as test_snapshots.py: fixed clock, serials and keys, no
cursor blink, every worker finished before the picture.
"""

from __future__ import annotations

import pytest
from tui_support import build_demo, clock, make_app, settle, until  # noqa: F401 (fixture)

from tui_ca.engine import CertificateAuthority

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 36), id="120x36")]


def _app(tmp_path, clock):
    return make_app(build_demo(tmp_path / "home", clock), clock)


def _keys(*keys: str, wait=None):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        if wait is not None:
            await until(pilot, lambda: wait(pilot.app), timeout=20)
            await settle(pilot)

    return run_before


def _screen(name: str):
    return lambda app: type(app.screen).__name__ == name


@pytest.mark.parametrize("size", SIZES)
def test_marked_rows(snap_compare, tmp_path, clock, size):
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=_keys("space", "space", "tab", "space"))


@pytest.mark.parametrize("size", SIZES)
def test_bulk_approve_dialog(snap_compare, tmp_path, clock, size):
    run = _keys("asterisk", "a", wait=_screen("ApproveDialog"))
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_bulk_report(snap_compare, tmp_path, clock, size):
    async def run_before(pilot) -> None:
        await _keys("asterisk", "a", wait=_screen("ApproveDialog"))(pilot)
        CertificateAuthority(pilot.app.home, clock=clock).reject(7, "duplicate")
        await pilot.press("enter")
        await until(pilot, lambda: _screen("BulkReportScreen")(pilot.app), timeout=30)
        # The toast's lifetime races the picture under load; the report is what is pictured.
        pilot.app.clear_notifications()
        await settle(pilot)

    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_search_with_matches(snap_compare, tmp_path, clock, size):
    run = _keys("tab", "slash", *"example.net", "enter", "n")
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_sorted_by_age(snap_compare, tmp_path, clock, size):
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=_keys("s", "s", "s", "s", "s", "S"))


@pytest.mark.parametrize("size", SIZES)
def test_expiring_filter(snap_compare, tmp_path, clock, size):
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=_keys("x"))


@pytest.mark.parametrize("size", SIZES)
def test_copy_dialog(snap_compare, tmp_path, clock, size):
    run = _keys("tab", "y", wait=_screen("CopyDialog"))
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=run)


def test_certificate_as_text(snap_compare, tmp_path, clock):
    # Only the top of the dump repeats from run to run: the demo CA's key is
    # made fresh, so the AKI and the ECDSA signature further down differ.
    run = _keys("tab", "p", wait=_screen("TextScreen"))
    assert snap_compare(_app(tmp_path, clock), terminal_size=(80, 24), run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_csr_as_text(snap_compare, tmp_path, clock, size):
    # The rejected request's CSR is the RSA one: PKCS#1 v1.5 signatures repeat, ECDSA ones do not.
    run = _keys("h", "down", "p", wait=_screen("TextScreen"))
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_audit_record_screen(snap_compare, tmp_path, clock, size):
    run = _keys("A", "down", "enter", wait=_screen("AuditRecordScreen"))
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_decided_request(snap_compare, tmp_path, clock, size):
    run = _keys("h", "down", "enter", wait=lambda app: _screen("RequestScreen")(app) and app.screen.view is not None)
    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=run)


def test_too_small_terminal(snap_compare, tmp_path, clock):
    assert snap_compare(_app(tmp_path, clock), terminal_size=(70, 20), run_before=_keys())


@pytest.mark.parametrize("size", SIZES)
def test_command_palette(snap_compare, tmp_path, clock, size):
    async def run_before(pilot) -> None:
        await _keys("ctrl+p", wait=_screen("CommandPalette"))(pilot)
        await pilot.press(*"mark")
        await pilot.pause(0.5)
        await settle(pilot)

    assert snap_compare(_app(tmp_path, clock), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_queue_under_two_person_approval(snap_compare, tmp_path, clock, size):
    from test_approvals_column import two_person

    app = _app(tmp_path, clock)
    two_person(app.home, clock)
    assert snap_compare(app, terminal_size=size, run_before=_keys())


@pytest.mark.parametrize("size", SIZES)
def test_confirm_screen_under_two_person_approval(snap_compare, tmp_path, clock, size):
    from test_approvals_column import two_person

    app = _app(tmp_path, clock)
    two_person(app.home, clock)
    run = _keys("down", "enter", wait=lambda app: _screen("RequestScreen")(app) and app.screen.view is not None)
    assert snap_compare(app, terminal_size=size, run_before=run)
