"""What a bulk action did, row by row: issued (with its serial), or refused and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui_ca.tui.text import visible

if TYPE_CHECKING:
    from tui_ca.tui.actions import RowOutcome


def report_text(outcomes: list[RowOutcome]) -> Text:
    text = Text()
    for n, outcome in enumerate(outcomes):
        if n:
            text.append("\n")
        text.append(f"{outcome.key:>6}  ")
        text.append("✓ " if outcome.ok else "✗ ", style="bold green" if outcome.ok else "bold red")
        text.append(visible(outcome.text, 300), style="" if outcome.ok else "red")
    return text


class BulkReportScreen(ModalScreen[None]):
    """One line per row; Enter or Escape closes it."""

    BINDINGS = [
        Binding("escape,enter,q", "close", "Close", tooltip="Close the report", id="report.close"),
        Binding("j", "scroll(1)", "Down", show=False, id="report.down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="report.up"),
    ]

    def __init__(self, action: str, outcomes: list[RowOutcome]) -> None:
        super().__init__()
        self.action = action
        self.outcomes = outcomes

    def compose(self) -> ComposeResult:
        done = sum(o.ok for o in self.outcomes)
        with VerticalScroll(classes="dialog", id="report"):
            yield Label(f"{self.action}: {done} of {len(self.outcomes)} done", classes="dialog-title")
            yield Static(report_text(self.outcomes), id="report-rows", classes="dialog-body")
            yield Static(Text("Enter or Esc closes this report.", style="italic"), classes="hint")

    def action_scroll(self, lines: int) -> None:
        self.query_one("#report", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
