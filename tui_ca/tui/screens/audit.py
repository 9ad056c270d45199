"""The audit log: every change, who made it and from where, and whether the chain holds.

The log grows by one record per change and may hold 100,000 or more, so it is
shown in the virtual record list (only the rows on screen are drawn). The
chain is verified in a worker of its own: the records can be read while the
hashes are still being checked, and a broken chain is the first thing shown.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from tui_ca.engine import AuditRecord, CAError
from tui_ca.tui.ca_app import ca_app
from tui_ca.tui.data import Snapshot
from tui_ca.tui.text import literal, visible
from tui_ca.tui.widgets.details import Details
from tui_ca.tui.widgets.record_list import Column, RecordList, Row
from tui_ca.tui.widgets.search import SEARCH_BINDINGS, SearchMixin, describe

AUDIT_COLUMNS = [
    Column("Seq", 7, "right", sort=int), Column("When (UTC)", 16), Column("Who", None, min_width=10), Column("Action", 9),
    Column("Target", None, min_width=10), Column("Outcome", None, min_width=8),
]  # fmt: skip
# A tampered log can report a problem per record; the first few say where it
# starts, and the rest would push the log itself off the screen.
PROBLEMS_SHOWN = 3


def audit_row(key: int, record: AuditRecord) -> Row:
    who = visible(f"{record.user} from {record.address}" if record.address else record.user, 60)
    cells = (str(record.seq), f"{record.at:%Y-%m-%d %H:%M}", who, visible(record.action, 20), visible(record.target, 80),
             visible(record.outcome, 120))  # fmt: skip
    extra = " ".join(f"{k}={v}" for k, v in record.extra.items())
    return Row(
        key, cells, search=visible(" ".join(cells) + f" {record.at.isoformat(sep=' ')} {extra}", 2000).casefold()
    )


def verdict(problems: list[str], count: int) -> Text:
    """The verification line(s): intact, or the first problems in red."""
    if not problems:
        return Text(f"Audit chain intact: {count:,} records, each hash checked.", style="bold green")
    text = Text(f"Audit chain BROKEN: {len(problems):,} problem(s)", style="bold red")
    for problem in problems[:PROBLEMS_SHOWN]:
        text.append(f"\n• {visible(problem, 150)}", style="red")
    if len(problems) > PROBLEMS_SHOWN:
        text.append(f"\n… and {len(problems) - PROBLEMS_SHOWN:,} more", style="red")
    return text


class AuditScreen(SearchMixin):
    """The hash-chained audit log, newest first, with the chain's verification on top."""

    BINDINGS = [
        Binding("c", "check", "Check again", tooltip="Read the log and verify the chain again", id="audit.check"),
        Binding("escape", "close", "Back", tooltip="Back to the lists", id="audit.close"),
        *[b for b in SEARCH_BINDINGS if b.action != "clear_search"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[AuditRecord] = []
        self.problems: list[str] | None = None
        """The last verification's problems (``None`` while it runs)."""

    def compose(self) -> ComposeResult:
        yield Label("Audit log", classes="screen-title")
        yield Static(Text("Verifying the audit chain…", style="italic"), id="audit-verdict")
        yield Label("Records (reading…)", id="audit-title", classes="pane-title")
        yield RecordList(AUDIT_COLUMNS, id="audit", empty_text="Reading the audit log…")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit", RecordList).focus()
        self.action_check()

    def apply_snapshot(self, snapshot: Snapshot, changed: bool) -> None:
        if changed:
            self.action_check()

    def action_check(self) -> None:
        self.problems = None
        self.load()
        self.verify()

    def action_close(self) -> None:
        self.clear_search_or_leave("audit")

    def update_titles(self) -> None:
        records = self.query_one("#audit", RecordList)
        if self.records or records.total_count:
            self.query_one("#audit-title", Label).update(f"Records ({describe(records)}, newest first)")

    @work(thread=True, exclusive=True, group="audit-load")
    def load(self) -> None:
        try:
            found = ca_app(self).ca.audit_records()
        except (CAError, OSError, KeyError, ValueError, TypeError) as exc:
            # The verdict says what is wrong with the log; this says why no list.
            self.app.call_from_thread(self.app.notify, f"The audit log cannot be listed: {exc}", severity="error")
            return
        self.app.call_from_thread(self._show_records, found)

    @work(thread=True, exclusive=True, group="audit-verify")
    def verify(self) -> None:
        try:
            problems = ca_app(self).ca.verify_audit()
        except (CAError, OSError, KeyError, ValueError, TypeError) as exc:
            # A shard edited beyond parsing is itself a finding, not a crash.
            problems = [f"the log cannot be read: {exc}"]
        self.app.call_from_thread(self._show_verdict, problems)

    @on(RecordList.Opened, "#audit")
    def show_whole_record(self, event: RecordList.Opened) -> None:
        # Columns cut long values at 80 cells; Enter shows one record whole, in its own screen.
        self.app.push_screen(AuditRecordScreen(self.records[event.key - 1]))

    def _show_records(self, found: list[AuditRecord]) -> None:
        self.records = found
        # Keys are positions (1 = oldest), not sequence numbers: a tampered
        # log may repeat a number, and every record must still get a row.
        keys = list(range(len(found), 0, -1))
        records = self.query_one("#audit", RecordList)
        records.empty_text = "The audit log is empty."
        records.set_source(keys, lambda key: audit_row(key, found[key - 1]))
        self.update_titles()
        self._show_verdict(self.problems)

    def _show_verdict(self, problems: list[str] | None) -> None:
        self.problems = problems
        if problems is None:
            return
        box = self.query_one("#audit-verdict", Static)
        box.update(verdict(problems, len(self.records)))
        box.set_class(bool(problems), "broken")


def record_facts(record: AuditRecord) -> list[tuple[str, Text | str]]:
    rows: list[tuple[str, Text | str]] = [
        ("Sequence", str(record.seq)),
        ("When", f"{record.at:%Y-%m-%d %H:%M:%S} UTC"),
        ("Who", literal(record.user)),
        ("From", literal(record.address) if record.address else Text("this machine", style="dim")),
        ("Action", literal(record.action)),
        ("Target", literal(record.target, limit=1000)),
        ("Outcome", literal(record.outcome, limit=2000)),
    ]
    rows.extend((visible(str(key), 16), literal(str(value), limit=2000)) for key, value in record.extra.items())
    return rows


class AuditRecordScreen(Screen):
    """One audit record whole: every field, long values wrapped, nothing cut."""

    BINDINGS = [Binding("escape,enter", "close", "Back", tooltip="Back to the audit log", id="audit_record.close")]

    def __init__(self, record: AuditRecord) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        yield Label(f"Audit record {self.record.seq}", classes="screen-title")
        with VerticalScroll(id="audit-record-body"):
            yield Details(id="audit-record")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit-record", Details).show(record_facts(self.record))

    def action_close(self) -> None:
        self.dismiss()
