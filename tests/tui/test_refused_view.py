"""The refused-submissions view (issue 13): reachable by a key and the palette, live, client text literal."""

from __future__ import annotations

from datetime import timedelta

from tui_support import clock, demo_home, list_lines, make_app, pilot_test, settle, until  # noqa: F401

from tui_ca.engine import Actor, CertificateAuthority
from tui_ca.tui.screens.main import MainScreen
from tui_ca.tui.screens.refused import RefusalScreen, RefusedScreen
from tui_ca.tui.widgets.record_list import RecordList

HOSTILE = "[bold red]boom[/] \x1b[2J\u202e"


def seed_refusals(home, clock) -> CertificateAuthority:
    """Three refusals a minute apart, as the CLI, EST and SCEP would leave them."""
    ca = CertificateAuthority(home, clock=clock)
    start = clock.now
    ca.record_refusal("the CSR's RSA key of 1024 bits is below the 2048-bit minimum", source="cli",
                      actor=Actor("bob", None), requester="lab printer", subject="CN=printer.lab")  # fmt: skip
    clock.now = start + timedelta(minutes=1)
    ca.record_refusal("too many new requests from this address; slow down", source="est",
                      actor=Actor("anonymous", "198.51.100.7"), subject="CN=cam-14")  # fmt: skip
    clock.now = start + timedelta(minutes=2)
    ca.record_refusal(f"requester {HOSTILE!r} already has request 3 in the queue", source="scep",
                      actor=Actor("scep", "203.0.113.50"), subject=f"CN={HOSTILE}")  # fmt: skip
    clock.now = start
    return ca


def _rows(app) -> list[str]:
    return list_lines(app.screen.query_one("#refused", RecordList))


@pilot_test
async def test_refused_view_lists_newest_first_literally_and_opens_one(demo_home, clock):
    ca = seed_refusals(demo_home, clock)
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RefusedScreen)
                    and app.screen.query_one("#refused", RecordList).row_count == 3)  # fmt: skip
        rows = _rows(app)
        assert "Via" in rows[0] and "Reason" in rows[0]
        assert "scep" in rows[1] and "scep from 203.0.113.50" in rows[1]
        # Markup stays text, and the escape and the bidi override are shown as escapes.
        assert "CN=[bold red]boom[/] \\x1b[2J\\u2" in rows[1] and "\x1b" not in rows[1]
        assert "anonymous from 198.51.100.7" in rows[2] and "too many new requests" in rows[2]
        assert "lab printer" in rows[3] and "1024 bits" in rows[3]
        assert "Refused (3, newest first)" in str(app.screen.query_one("#refused-title").render())
        await pilot.press("end", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RefusalScreen)
        shown = app.export_screenshot().replace("&#160;", " ")
        assert "CN=printer.lab" in shown and "lab printer" in shown and "this machine" in shown
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, RefusedScreen)

        # A refusal made elsewhere while the view is open appears without a key press.
        ca.record_refusal("the body is empty; send a base64-encoded PKCS#10 CSR", source="est",
                          actor=Actor("anonymous", "192.0.2.99"))  # fmt: skip
        await until(pilot, lambda: app.screen.query_one("#refused", RecordList).row_count == 4)
        assert "192.0.2.99" in _rows(app)[1]

        # Search works in it as in the other lists.
        await pilot.press("slash", *"printer", "enter")
        await settle(pilot)
        assert app.screen.query_one("#refused", RecordList).search_text == "printer"
        await pilot.press("escape", "escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)


@pilot_test
async def test_refused_view_is_in_the_palette_and_says_when_empty(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        from tui_ca.tui.palette import ActionsProvider

        provider = ActionsProvider(app.screen)
        names = [name for name, *_ in provider._commands()]
        assert "Refused" in names
        await app.run_action("refused", app.screen)
        await until(pilot, lambda: isinstance(app.screen, RefusedScreen)
                    and "No submission has been refused" in "\n".join(_rows(app)))  # fmt: skip
        assert app.screen.query_one("#refused", RecordList).row_count == 0
