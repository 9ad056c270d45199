"""The audit screen: every record, newest first, and the chain's verdict on top."""

from __future__ import annotations

import json

from tui_ca.engine import CertificateAuthority
from tui_ca.tui.screens.audit import AuditScreen
from tui_ca.tui.screens.main import MainScreen
from tui_ca.tui.widgets.record_list import RecordList
from tui_support import clock, demo_home, list_lines, make_app, pilot_test, screen_lines, settle, until  # noqa: F401


def _verdict(app) -> str:
    return str(app.screen.query_one("#audit-verdict").render())


@pilot_test
async def test_audit_screen_lists_the_log_and_shows_an_edited_record(demo_home, clock):
    reader = CertificateAuthority(demo_home, clock=clock)
    expected = reader.audit_records()
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen.problems is not None
                    and app.screen.query_one("#audit", RecordList).row_count > 0)  # fmt: skip
        records = app.screen.query_one("#audit", RecordList)
        assert records.row_count == len(expected) and records.has_focus
        assert f"intact: {len(expected)} records" in _verdict(app)
        newest = list_lines(records)[1]
        assert newest.lstrip().startswith(str(expected[-1].seq)) and expected[-1].action in newest
        assert "alice from 192.0.2.10" in "\n".join(list_lines(records))
        await pilot.press("end", "enter")  # the oldest record, whole
        await settle(pilot)
        shown = [n.message for n in app._notifications]
        assert any("Record 1," in m and "root and issuing CA: created" in m and "ec-p256" in m for m in shown)

        # Someone edits a record's outcome in the store file behind the engine's back.
        path = reader.store.files.shard_path("audit", reader.store.files.shard_names("audit")[0])
        data = json.loads(path.read_text())
        data["audit"]["4"]["outcome"] = "nothing happened"
        path.write_text(json.dumps(data))
        await pilot.press("c")
        await until(pilot, lambda: app.screen.problems)
        await settle(pilot)
        assert "BROKEN" in _verdict(app) and "record 4: content does not match its hash" in _verdict(app)
        assert app.screen.query_one("#audit-verdict").has_class("broken")
        assert any("nothing happened" in line for line in list_lines(records))

        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


@pilot_test
async def test_audit_screen_draws_only_visible_rows_of_a_long_log(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen.records)
        records = app.screen.query_one("#audit", RecordList)
        await settle(pilot)
        built = len(records._made)
        assert 0 < built <= records.size.height
