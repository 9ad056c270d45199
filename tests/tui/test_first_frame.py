"""The first read may finish before the main screen is composed: it is drawn in that screen's first frame.

And that frame is the main screen's last layout: its footer of keys is composed once, before it.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets._footer import FooterKey
from tui_support import (  # noqa: F401
    ADMIN,
    clock,
    demo_home,
    list_lines,
    make_app,
    pilot_test,
    screen_lines,
    serial_counter,
    settle,
    until,
)

from tui_ca.engine import CertificateAuthority, RequestStatus
from tui_ca.tui.app import CAApp
from tui_ca.tui.screens.main import MainScreen
from tui_ca.tui.widgets.keys_footer import KeysFooter
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


@pilot_test
async def test_the_footer_is_composed_once_and_its_keys_follow_the_queue_in_place(demo_home, clock, monkeypatch):
    composed: list[tuple] = []
    real_compose = KeysFooter.compose

    def counted(self):
        if self._bindings_ready:
            composed.append(self._shown_keys())
        return real_compose(self)

    monkeypatch.setattr(KeysFooter, "compose", counted)
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)

        def key(name: str) -> FooterKey:
            return {k.key: k for k in app.screen.query_one(KeysFooter).query(FooterKey)}[name]

        assert len(composed) == 1
        assert not key("a").has_class("-disabled")  # the queue has rows: approve is live
        # Another admin decides every queued request: the same keys, greyed, and no new compose.
        other = CertificateAuthority(demo_home, clock=clock)
        for request in other.requests(RequestStatus.QUEUED):
            other.reject(request.id, "done elsewhere")
        await until(pilot, lambda: key("a").has_class("-disabled") and key("r").has_class("-disabled"))
        assert len(composed) == 1
        # Other keys (revoke in the certificates list) are composed anew.
        await pilot.press("tab")
        await until(pilot, lambda: "v" in {k.key for k in app.screen.query_one(KeysFooter).query(FooterKey)})
        assert len(composed) == 2
