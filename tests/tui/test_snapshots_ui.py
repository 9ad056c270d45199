"""Snapshots of the refused-submissions view, the hold release and how a request arrived (issues 11, 12, 13, 15).

Deterministic like tests/tui/test_snapshots.py: the demo on a fixed clock,
checked-in keys, fixed serials, every worker finished before the picture.
"""

from __future__ import annotations

from pathlib import Path

from test_hold_roles_arrival import hold, queue_scep_request
from test_refused_view import seed_refusals
from tui_support import build_demo, clock, make_app, settle, until  # noqa: F401 (fixture)

from tui_ca.engine import CertificateAuthority
from tui_ca.engine.approval_policy import ApprovalPolicy
from tui_ca.engine.roles import Identity, RoleGroups
from tui_ca.tui.screens.certificate import CertificateScreen
from tui_ca.tui.screens.request import RequestScreen


def _keys(*keys: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def _refused_app(tmp_path: Path, clock):
    home = build_demo(tmp_path / "home", clock)
    seed_refusals(home, clock)
    return make_app(home, clock)


def test_refused_view_80x24(snap_compare, tmp_path, clock):
    assert snap_compare(_refused_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("R"))


def test_refused_view_120x36(snap_compare, tmp_path, clock):
    assert snap_compare(_refused_app(tmp_path, clock), terminal_size=(120, 36), run_before=_keys("R"))


def test_refusal_record_80x24(snap_compare, tmp_path, clock):
    assert snap_compare(_refused_app(tmp_path, clock), terminal_size=(80, 24), run_before=_keys("R", "enter"))


def _pushed(screen_factory, *keys: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.push_screen(screen_factory())
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def _held_app(tmp_path: Path, clock):
    home = build_demo(tmp_path / "home", clock)
    hold(home, clock, cert_id=1)
    return make_app(home, clock)


def test_certificate_on_hold_80x24(snap_compare, tmp_path, clock):
    assert snap_compare(_held_app(tmp_path, clock), terminal_size=(80, 24),
                        run_before=_pushed(lambda: CertificateScreen(1)))  # fmt: skip


def test_unhold_dialog_80x24(snap_compare, tmp_path, clock):
    assert snap_compare(_held_app(tmp_path, clock), terminal_size=(80, 24),
                        run_before=_pushed(lambda: CertificateScreen(1), "u"))  # fmt: skip


def _scep_app(tmp_path: Path, clock):
    home = build_demo(tmp_path / "home", clock)
    request_id = queue_scep_request(home, clock)
    return make_app(home, clock), request_id


def test_confirm_scep_request_80x24(snap_compare, tmp_path, clock):
    app, request_id = _scep_app(tmp_path, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_pushed(lambda: RequestScreen(request_id)))


def test_confirm_scep_request_120x36(snap_compare, tmp_path, clock):
    app, request_id = _scep_app(tmp_path, clock)
    assert snap_compare(app, terminal_size=(120, 36), run_before=_pushed(lambda: RequestScreen(request_id)))


def _roles_app(tmp_path: Path, clock):
    # Groups every Debian system has, and a fixed identity, so the picture does not depend on who runs it.
    home = build_demo(tmp_path / "home", clock)
    CertificateAuthority(home, clock=clock).set_policy(ApprovalPolicy(), RoleGroups(approver="adm", revoker="daemon"))
    app = make_app(home, clock)
    app.ca.identity = Identity("alice", 1001, frozenset({"adm"}))
    return app


def _roles_keys(*keys: str):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await until(pilot, lambda: pilot.app.denied)
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def test_roles_main_screen_80x24(snap_compare, tmp_path, clock):
    # The certificates list focused: Revoke greyed, and the line saying why.
    assert snap_compare(_roles_app(tmp_path, clock), terminal_size=(80, 24), run_before=_roles_keys("tab"))


def test_roles_main_screen_120x36(snap_compare, tmp_path, clock):
    assert snap_compare(_roles_app(tmp_path, clock), terminal_size=(120, 36), run_before=_roles_keys("tab"))
