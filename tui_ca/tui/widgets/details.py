"""A labelled list of facts, every value shown literally."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

LABEL_WIDTH = 16


def facts(rows: list[tuple[str, Text | str]], label_width: int = LABEL_WIDTH) -> Table:
    """Label/value rows; values wrap (folding long words) inside their column."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(width=label_width, style="bold", no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    for label, value in rows:
        table.add_row(label, value if isinstance(value, Text) else Text(value))
    return table


class Details(Static):
    """The facts of one request or certificate."""

    def show(self, rows: list[tuple[str, Text | str]]) -> None:
        self.update(facts(rows))
