"""Every key, gathered from the bindings themselves so the list cannot drift."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


def key_name(keys: str) -> str:
    """Binding keys as the keyboard names them (``question_mark`` → ``?``)."""
    names = {"question_mark": "?", "slash": "/", "escape": "Esc", "enter": "Enter", "pageup": "PgUp",
             "pagedown": "PgDn", "ctrl+s": "Ctrl+S", "space": "Space", "asterisk": "*", "ctrl+p": "Ctrl+P",
             "tab,shift+tab": "Tab Shift+Tab"}  # fmt: skip
    return " ".join(names.get(k, k) for k in keys.split(","))


def key_table() -> Table:
    from tui_ca.tui.app import CAApp
    from tui_ca.tui.screens.audit import AuditScreen
    from tui_ca.tui.screens.certificate import CertificateScreen
    from tui_ca.tui.screens.dialogs import Dialog
    from tui_ca.tui.screens.item_text import TextScreen
    from tui_ca.tui.screens.main import MainScreen
    from tui_ca.tui.screens.refused import RefusedScreen
    from tui_ca.tui.screens.request import RequestScreen
    from tui_ca.tui.widgets.record_list import RecordList

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    groups = [
        (
            "Everywhere",
            CAApp.BINDINGS
            + [
                Binding("tab,shift+tab", "", "Next / previous list or field"),
                Binding("ctrl+p", "", "Command palette: every action that applies now"),
            ],
        ),
        ("Lists", RecordList.BINDINGS),
        ("Main screen", MainScreen.BINDINGS),
        ("Confirm the requester", RequestScreen.BINDINGS),
        ("Certificate", CertificateScreen.BINDINGS),
        ("Audit log", AuditScreen.BINDINGS),
        ("Refused submissions", RefusedScreen.BINDINGS),
        ("Certificate or CSR as text", TextScreen.BINDINGS),
        (
            "Dialogs",
            [Binding("enter", "", "Accept the defaults and confirm")]
            + Dialog.BINDINGS
            + [Binding("", "", "(y and n only where no text field takes letters)")],
        ),
    ]
    for title, bindings in groups:
        table.add_row(Text(title, style="bold underline"), "")
        for binding in bindings:
            if isinstance(binding, tuple):  # BINDINGS may hold (key, action[, description]), as Textual reads them
                binding = Binding(*binding)
            table.add_row(key_name(binding.key), binding.description)
    table.add_row("", "")
    table.add_row("Mouse", "click selects, click again (or double-click) opens")
    return table


class HelpScreen(ModalScreen[None]):
    """The keys, one table."""

    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close", tooltip="Close the key list", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Label("Keys", classes="dialog-title")
            yield Static(key_table())
            yield Static(Text("A key that does not apply now is shown greyed in the footer.", style="italic"))

    def action_close(self) -> None:
        self.dismiss(None)
