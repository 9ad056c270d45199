"""Search over every field, n/N between matches, sort keys, and audit records in their own screen."""

from __future__ import annotations

from textual.widgets import Input, Label
from tui_support import clock, demo_home, list_lines, make_app, pilot_test, settle, until  # noqa: F401

from tui_ca.tui.screens.audit import AuditRecordScreen, AuditScreen
from tui_ca.tui.widgets.details import Details
from tui_ca.tui.widgets.record_list import RecordList


def rendered(widget) -> str:
    return str(widget.render())


async def search(pilot, text: str) -> None:
    await pilot.press("slash")
    # The field is mounted on first use; keys typed before it has focus would go to the list.
    await until(pilot, lambda: isinstance(pilot.app.focused, Input))
    await pilot.press(*text, "enter")
    # The search reads every stored field in a worker; wait for it, not for a fixed time.
    await until(pilot, lambda: not any(r.busy for r in pilot.app.screen.query(RecordList)))


@pilot_test
async def test_search_matches_stored_fields_and_n_cycles_the_matches(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        queued = app.screen.query_one("#queued", RecordList)
        await search(pilot, "10.20.0.15")  # a SAN, not shown in the list
        assert queued.cursor_key == 7 and queued.match_count == 1
        await pilot.press("escape")
        await search(pilot, "203.0.113.41")  # the sender's address
        assert queued.cursor_key == 8 and queued.match_count == 1
        await pilot.press("escape")
        await search(pilot, "example.net")
        assert queued.match_count == 3
        await pilot.press("n")
        assert queued.cursor_key == 6  # wrapped from 8
        await pilot.press("n", "n")
        assert queued.cursor_key == 8
        await pilot.press("N")
        assert queued.cursor_key == 7
        assert "3 matches for 'example.net'" in rendered(app.screen.query_one("#queued-title", Label))
        await pilot.press("escape", "tab")
        certs = app.screen.query_one("#certs", RecordList)
        await search(pilot, "expiring")
        assert certs.match_count == 1 and certs.cursor_key == 1
        await pilot.press("escape")
        await search(pilot, "2026-03-14")  # a date: today's... none issued today
        assert certs.match_count == 0
        await pilot.press("escape")
        await search(pilot, "vm.example.net")  # a SAN of the voicemail certificate
        assert certs.cursor_key == 2


@pilot_test
async def test_search_in_the_history_finds_status_words_reasons_and_key_types(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        closed = app.screen.query_one("#closed", RecordList)
        for text, key in (("revoked", 3), ("keycompromise", 3), ("rsa", 5), ("nobody asked", 5)):
            await search(pilot, text)
            assert closed.match_count == 1 and closed.cursor_key == key, text
            await pilot.press("escape")


@pilot_test
async def test_sort_cycles_columns_and_order_and_says_so(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        queued = app.screen.query_one("#queued", RecordList)
        title = app.screen.query_one("#queued-title", Label)
        await pilot.press("s")
        await until(pilot, lambda: not queued.busy)  # sorted in a worker
        assert "sorted by ID ▲" in rendered(title) and queued.keys() == [6, 7, 8]
        await pilot.press("S")
        await until(pilot, lambda: not queued.busy)
        assert "sorted by ID ▼" in rendered(title) and queued.keys() == [8, 7, 6]
        assert "ID▼" in list_lines(queued)[0]
        await pilot.press("s", "s", "s", "s")  # Requester, Subject CN, Key, Age
        await until(pilot, lambda: not queued.busy)
        assert "sorted by Age ▲" in rendered(title)
        assert queued.keys() == [8, 7, 6]  # 2h, 1d, 3d: as times, not as text
        await pilot.press("s")
        assert "sorted" not in rendered(title) and queued.keys() == [6, 7, 8]


@pilot_test
async def test_audit_log_search_and_a_record_in_its_own_screen(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("A")
        await settle(pilot)
        assert isinstance(app.screen, AuditScreen)
        records = app.screen.query_one("#audit", RecordList)
        await until(pilot, lambda: records.total_count > 0)
        await search(pilot, "laptop")  # only in the record's extra fields
        assert records.match_count >= 1
        first = records.cursor_key
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, AuditRecordScreen)
        assert app.screen.query_one("#audit-record", Details).region.height > 3
        assert "unknown-laptop" in app.export_screenshot()
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, AuditScreen) and records.cursor_key == first
        await pilot.press("escape")  # clears the search first
        assert records.search_text == "" and isinstance(app.screen, AuditScreen)
