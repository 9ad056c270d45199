"""The first read may finish before the main screen is composed: it is drawn in that screen's first frame."""

from __future__ import annotations

from pathlib import Path

from tui_support import ADMIN, clock, demo_home, list_lines, make_app, pilot_test, screen_lines, serial_counter, until  # noqa: F401

from tui_ca.tui.app import CAApp
from tui_ca.tui.screens.main import MainScreen
from tui_ca.tui.widgets.record_list import RecordList


class _LateMainScreen(CAApp):
    """Opens the main screen only once the app has handled its first read (the read won the race)."""

    def open_main(self) -> None:
        self.seen_at_open: list[bool] = []

    def on_snapshot_loaded(self, message) -> None:
        super().on_snapshot_loaded(message)
        if not hasattr(self, "opened"):
            self.opened = True
            # No screen drew this read: nothing may call the app ready yet.
            self.seen_at_open.append(self.ready_event.is_set())
            CAApp.open_main(self)


@pilot_test
async def test_a_read_that_arrives_before_the_main_screen_is_drawn_by_it(demo_home, clock):
    app = _LateMainScreen(demo_home, clock=clock, actor=ADMIN, serials=serial_counter(), poll_interval=0.2)
    app.export_dir = Path("/srv/exports")
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.ready_event.is_set() and isinstance(app.screen, MainScreen))
        assert app.seen_at_open == [False]
        queued = app.screen.query_one("#queued", RecordList)
        assert queued.total_count == len(app.latest_snapshot.queued.keys) > 0
        assert any("Issuer" in line for line in screen_lines(app))
        assert any(str(queued.keys()[0]) in line for line in list_lines(queued)[1:])


@pilot_test
async def test_ready_waits_for_the_main_screen_to_draw_the_read(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.ready_event.wait()
        main = app.screen_stack[-1]
        # Whichever of the read and the main screen came first, ready means the rows are in the list.
        assert isinstance(main, MainScreen) and main.snapshot is not None
        assert main.query_one("#queued", RecordList).total_count == len(main.snapshot.queued.keys) > 0
        await pilot.pause()
