"""Under a K-of-N approval policy the queue and the confirm screen say how far each request got."""

from __future__ import annotations

from tui_support import (  # noqa: F401
    ADMIN,
    clock,
    demo_home,
    list_lines,
    make_app,
    pilot_test,
    recorded_notices,
    screen_lines,
    settle,
    until,
)

from tui_ca.engine import Actor, CertificateAuthority
from tui_ca.engine.approval_policy import ApprovalPolicy
from tui_ca.tui.screens.dialogs import ApproveDialog
from tui_ca.tui.screens.request import RequestScreen
from tui_ca.tui.widgets.record_list import RecordList

BOB = Actor("bob", "192.0.2.11")


def two_person(home, clock) -> None:
    """Two approvals per request; bob has given the first one to request 7."""
    CertificateAuthority(home, clock=clock, actor=ADMIN).set_policy(ApprovalPolicy(approvals=2))
    [outcome] = CertificateAuthority(home, clock=clock, actor=BOB).approve([7])
    assert outcome.certificate is None and outcome.approvals == ("bob",) and outcome.needed == 2


@pilot_test
async def test_queue_shows_approvals_given_of_needed_with_names(demo_home, clock):
    two_person(demo_home, clock)
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        queued = app.screen.query_one("#queued", RecordList)
        lines = list_lines(queued)
        assert "Approvals" in lines[0]
        assert [line for line in lines if line.lstrip(" ●").startswith("7 ")][0].count("1 of 2 bob") == 1
        assert "0 of 2" in [line for line in lines if line.lstrip(" ●").startswith("6 ")][0]
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.view is not None)
        await settle(pilot)
        await until(pilot, lambda: "Approvals" in "\n".join(screen_lines(app)))
        assert "1 of 2 (bob from 192.0.2.11)" in "\n".join(screen_lines(app))


@pilot_test
async def test_no_approvals_column_without_a_policy(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "Approvals" not in list_lines(app.screen.query_one("#queued", RecordList))[0]


@pilot_test
async def test_an_approval_short_of_k_is_reported_as_recorded_not_refused(demo_home, clock):
    two_person(demo_home, clock)
    app = make_app(demo_home, clock)
    said = recorded_notices(app)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.push_screen(RequestScreen(6))
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.view is not None)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApproveDialog))
        await pilot.press("enter")
        await until(pilot, lambda: any("recorded" in line for line in said))
        assert "Request 6: your approval is recorded, 1 of 2" in " ".join(said)
        assert not any("None" in line or "refused" in line.lower() for line in said)
    ca = CertificateAuthority(demo_home, clock=clock)
    assert ca.request(6).approvals and ca.request(6).status.value == "queued"
