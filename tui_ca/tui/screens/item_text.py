"""``y`` copies a request's or certificate's SPKI fingerprint, serial or PEM; ``p`` shows it as text.

Copying goes through OSC 52 (``App.copy_to_clipboard``): the terminal puts
the text on the admin's own clipboard, which works over SSH and, with
``set -g set-clipboard on``, inside tmux. The text view is an openssl-like
dump built with ``cryptography`` (see ``tui_ca.tui.dump``) with the PEM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui_ca.engine import CAError
from tui_ca.tui.ca_app import ca_app
from tui_ca.tui.dump import certificate_text, csr_text
from tui_ca.tui.screens.dialogs import DialogBox

if TYPE_CHECKING:
    from tui_ca.tui.app import CAApp


@dataclass(frozen=True)
class ItemText:
    """What can be copied from one request or certificate."""

    kind: str
    """``request`` or ``certificate``."""
    key: int
    """The Certificate ID."""
    spki_sha256: str
    """Lower-case hex, as ``openssl`` prints it without colons."""
    serial_hex: str | None
    """Certificates only."""
    pem: str
    """The CSR or the certificate."""

    @property
    def what(self) -> str:
        return f"{'request' if self.kind == 'request' else 'certificate'} {self.key}"


def read_item(ca, kind: str, key: int) -> ItemText:
    """One engine read (in a worker): the model's fingerprints and the PEM."""
    if kind == "request":
        request = ca.request(key)
        return ItemText(kind, key, request.details.spki_sha256, None, ca.csr_pem(key).decode("ascii"))
    cert = ca.certificate(key)
    return ItemText(kind, key, cert.spki_sha256, cert.serial_hex, ca.certificate_pem(key).decode("ascii"))


class CopyDialog(ModalScreen[str | None]):
    """Pick what to copy; Enter copies it (1, 2, 3 pick directly)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Copy nothing", id="copy.cancel"),
        Binding("j", "cursor(1)", "Down", show=False, id="copy.down"),
        Binding("k", "cursor(-1)", "Up", show=False, id="copy.up"),
    ]

    def __init__(self, item: ItemText) -> None:
        super().__init__()
        self.item = item

    def choices(self) -> list[tuple[str, str, str]]:
        """(id, label, text to copy)."""
        found = [("spki", f"SPKI SHA-256  {self.item.spki_sha256[:16]}…", self.item.spki_sha256)]
        if self.item.serial_hex is not None:
            found.append(("serial", f"Serial        {self.item.serial_hex}", self.item.serial_hex))
        label = "CSR" if self.item.kind == "request" else "certificate"
        found.append(("pem", f"PEM           the {label}, {len(self.item.pem.splitlines())} lines", self.item.pem))
        return found

    def compose(self) -> ComposeResult:
        with DialogBox(classes="dialog", id="copy"):
            yield Label(f"Copy from {self.item.what} to your clipboard", classes="dialog-title")
            options = [Option(f"{n}  {label}", id=choice) for n, (choice, label, _) in enumerate(self.choices(), 1)]
            yield OptionList(*options, id="copy-choices")
            yield Static(Text("Enter copies (through your terminal: OSC 52); Esc cancels.", style="italic"),
                         classes="hint")  # fmt: skip

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()

    def action_cursor(self, delta: int) -> None:
        options = self.query_one(OptionList)
        options.action_cursor_down() if delta > 0 else options.action_cursor_up()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def on_key(self, event) -> None:
        if event.character in ("1", "2", "3"):
            index = int(event.character) - 1
            choices = self.choices()
            if index < len(choices):
                event.stop()
                self.dismiss(choices[index][0])

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextScreen(Screen):
    """A certificate or CSR as text, scrollable; ``y`` copies the PEM."""

    BINDINGS = [
        Binding("escape,q", "close", "Back", tooltip="Back", id="text.close"),
        Binding("j", "scroll(1)", "Down", show=False, id="text.down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="text.up"),
        Binding("y", "copy", "Copy PEM", tooltip="Copy the PEM to your clipboard (OSC 52)", id="text.copy"),
    ]

    def __init__(self, item: ItemText) -> None:
        super().__init__()
        self.item = item

    def compose(self) -> ComposeResult:
        yield Label(f"{self.item.what.capitalize()} as text", classes="screen-title")
        with VerticalScroll(id="text-body"):
            dump = csr_text if self.item.kind == "request" else certificate_text
            yield Static(Text(dump(self.item.pem.encode("ascii"))), id="text-dump")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#text-body").focus()

    def action_scroll(self, lines: int) -> None:
        self.query_one("#text-body", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_copy(self) -> None:
        copy_to_clipboard(ca_app(self), self.item, "pem")

    def action_close(self) -> None:
        self.dismiss()


def copy_to_clipboard(app: CAApp, item: ItemText, choice: str | None) -> None:
    if choice is None:
        return
    text = {"spki": item.spki_sha256, "serial": item.serial_hex, "pem": item.pem}[choice]
    if text is None:
        return
    app.copy_to_clipboard(text)
    name = {"spki": "SPKI SHA-256", "serial": "serial", "pem": "PEM"}[choice]
    app.notify(f"Copied the {name} of {item.what} to your clipboard (through the terminal, OSC 52).", timeout=4)


def open_item(app: CAApp, kind: str, key: int, then: str) -> None:
    """Read the item in a worker, then ``copy`` (the chooser) or ``view`` (the text screen)."""

    def run() -> None:
        try:
            item = read_item(app.ca, kind, key)
        except CAError as exc:
            app.call_from_thread(app.notify, str(exc), severity="error")
            return
        if then == "view":
            app.call_from_thread(app.push_screen, TextScreen(item))
        else:
            app.call_from_thread(app.push_screen, CopyDialog(item), lambda choice: copy_to_clipboard(app, item, choice))

    app.run_worker(run, thread=True, group="item-text")
