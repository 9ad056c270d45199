"""Refused submissions: what intake turned away and why, so an admin can tell a user why nothing was queued.

The store keeps the newest 10,000 refusals (engine/refusals.py); this screen
shows the newest ``SHOWN`` of them, re-read whenever the store changes and
every few seconds (a refusal commits nothing else, so on some backends it
does not move the change token). Every field came from a client and is shown
through ``visible``/``literal``: never markup, never a control character.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label

from tui_ca.engine import CAError
from tui_ca.engine.models import Refusal
from tui_ca.tui.ca_app import ca_app
from tui_ca.tui.data import Snapshot
from tui_ca.tui.text import literal, visible
from tui_ca.tui.widgets.details import Details
from tui_ca.tui.widgets.record_list import Column, RecordList, Row
from tui_ca.tui.widgets.search import SEARCH_BINDINGS, SearchMixin, describe

REFUSED_COLUMNS = [
    Column("When (UTC)", 16), Column("Via", 4), Column("From", None, min_width=10),
    Column("Requester / subject", None, min_width=12), Column("Reason", None, min_width=16),
]  # fmt: skip
SHOWN = 500
# Refusals alone may not move the change token (a refusal changes no counter).
REREAD_SECONDS = 3.0


def sender(refusal: Refusal) -> str:
    user = refusal.user or "?"
    return f"{user} from {refusal.address}" if refusal.address else user


def refused_row(key: int, refusal: Refusal) -> Row:
    named = refusal.requester or refusal.subject
    cells = (f"{refusal.at:%Y-%m-%d %H:%M}", visible(refusal.source, 8), visible(sender(refusal), 60),
             visible(named, 80), visible(refusal.reason, 200))  # fmt: skip
    extra = f"{refusal.subject or ''} {refusal.at.isoformat(sep=' ')}"
    return Row(key, cells, search=visible(" ".join(cells) + " " + extra, 2000).casefold())


class RefusedScreen(SearchMixin):
    """The newest refused submissions, newest first; Enter shows one whole."""

    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the lists", id="refused.close"),
        *[b for b in SEARCH_BINDINGS if b.action != "clear_search"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.refusals: list[Refusal] = []

    def compose(self) -> ComposeResult:
        yield Label("Refused submissions", classes="screen-title")
        yield Label(Text("None of these was stored; each sender was told the reason shown.",
                         style="italic"), id="refused-note")  # fmt: skip
        yield Label("Refused (reading…)", id="refused-title", classes="pane-title")
        yield RecordList(REFUSED_COLUMNS, id="refused", empty_text="Reading the refused submissions…")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#refused", RecordList).focus()
        self.load()
        self.set_interval(REREAD_SECONDS, self.load, name="refused-reread")

    def apply_snapshot(self, snapshot: Snapshot, changed: bool) -> None:
        if changed:
            self.load()

    def action_close(self) -> None:
        self.clear_search_or_leave("refused")

    def update_titles(self) -> None:
        records = self.query_one("#refused", RecordList)
        self.query_one("#refused-title", Label).update(f"Refused ({describe(records)}, newest first)")

    @work(thread=True, exclusive=True, group="refused-load")
    def load(self) -> None:
        try:
            found = ca_app(self).ca.refusals(limit=SHOWN)
        except (CAError, OSError) as exc:
            self.app.call_from_thread(self.app.notify, f"The refused submissions cannot be read: {exc}",
                                      severity="error", markup=False)  # fmt: skip
            return
        self.app.call_from_thread(self._show, found)

    def _show(self, found: list[Refusal]) -> None:
        if found == self.refusals and self.query_one("#refused", RecordList).total_count == len(found) and found:
            return
        self.refusals = found
        records = self.query_one("#refused", RecordList)
        records.empty_text = "No submission has been refused."
        # Keys are positions, newest first: the store's own numbers may start anywhere.
        records.set_source(list(range(len(found))), lambda key: refused_row(key, found[key]))
        self.update_titles()

    @on(RecordList.Opened, "#refused")
    def show_whole(self, event: RecordList.Opened) -> None:
        self.app.push_screen(RefusalScreen(self.refusals[event.key]))


def refusal_facts(refusal: Refusal) -> list[tuple[str, Text | str]]:
    return [
        ("When", f"{refusal.at:%Y-%m-%d %H:%M:%S} UTC"),
        ("Via", literal(refusal.source)),
        ("Sent by", literal(refusal.user) if refusal.user else Text("unknown", style="dim")),
        ("From", literal(refusal.address) if refusal.address else Text("this machine", style="dim")),
        ("Requester", literal(refusal.requester) if refusal.requester else Text("not named", style="dim")),
        ("Subject", literal(refusal.subject, limit=1000) if refusal.subject else Text("not readable", style="dim")),
        ("Reason", literal(refusal.reason, limit=1000)),
        ("Record", str(refusal.seq)),
    ]


class RefusalScreen(Screen):
    """One refused submission whole: every field, long values wrapped."""

    BINDINGS = [Binding("escape,enter", "close", "Back", tooltip="Back to the refused list", id="refusal.close")]

    def __init__(self, refusal: Refusal) -> None:
        super().__init__()
        self.refusal = refusal

    def compose(self) -> ComposeResult:
        yield Label("Refused submission", classes="screen-title")
        with VerticalScroll(id="refusal-body"):
            yield Details(id="refusal")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#refusal", Details).show(refusal_facts(self.refusal))

    def action_close(self) -> None:
        self.dismiss()
