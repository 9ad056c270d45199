"""The small modal dialogs: confirm, approve, reject, revoke, export, passphrase.

Every dialog is typed by its result and returns ``None`` when cancelled.
Enter accepts what is shown (the defaults) and confirms; Escape always
cancels. ``y`` and ``n`` answer only dialogs without a free-text field (where
they would be letters), and the buttons name exactly the keys that work.
The body scrolls and the buttons stay docked, so a long body (a warning, the
list of marked rows) never pushes them off an 80x24 screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.button import ButtonVariant
from textual.widgets.option_list import Option

from tui_ca.engine import RevocationReason

T = TypeVar("T")

# What each reason means, in the words an admin uses (RFC 5280 §5.3.1).
REASON_HELP = {
    RevocationReason.UNSPECIFIED: "no reason given",
    RevocationReason.KEY_COMPROMISE: "the private key was exposed or stolen",
    RevocationReason.CA_COMPROMISE: "the CA's key was compromised",
    RevocationReason.AFFILIATION_CHANGED: "the holder's name or role changed",
    RevocationReason.SUPERSEDED: "replaced by a new certificate",
    RevocationReason.CESSATION_OF_OPERATION: "the device or service is gone",
    RevocationReason.CERTIFICATE_HOLD: "suspended for now",
    RevocationReason.PRIVILEGE_WITHDRAWN: "the holder may no longer use it",
}


class DialogBox(VerticalScroll, can_focus=False):
    """The dialog's frame: scrolls its content; the fields keep the focus."""


class Dialog(ModalScreen[T | None], Generic[T]):
    """A titled box with a body, an error line and Confirm/Cancel buttons."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without doing anything", id="dialog.cancel"),
        Binding("n", "no", "No", show=False, id="dialog.no"),
        Binding("y", "yes", "Yes", show=False, id="dialog.yes"),
        Binding("pageup", "scroll(-1)", "Scroll up", show=False, id="dialog.page_up"),
        Binding("pagedown", "scroll(1)", "Scroll down", show=False, id="dialog.page_down"),
    ]

    confirm_label = "Confirm"
    confirm_variant: ButtonVariant = "primary"
    letter_keys = True
    """Whether ``y``/``n`` answer (False where a text field takes letters)."""

    def __init__(self, title: str, body: Text | str = "") -> None:
        super().__init__()
        self.dialog_title = title
        self.body = body

    def compose(self) -> ComposeResult:
        yes, no = ("y", "n") if self.letter_keys else ("Enter", "Esc")
        with DialogBox(classes="dialog"):
            yield Label(self.dialog_title, classes="dialog-title")
            if self.body:
                yield Static(self.body, classes="dialog-body")
            yield from self.compose_fields()
            yield Static("", id="dialog-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.confirm_label} ({yes})", id="confirm", variant=self.confirm_variant)
                yield Button(f"Cancel ({no})", id="cancel")

    def compose_fields(self) -> ComposeResult:
        yield from ()

    def value(self) -> T:
        """The result; raise ValueError with a sentence to refuse."""
        return True  # type: ignore[return-value]

    def show_error(self, message: str) -> None:
        self.query_one("#dialog-error", Static).update(Text(message))

    def action_confirm(self) -> None:
        try:
            result = self.value()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_scroll(self, direction: int) -> None:
        box = self.query_one(DialogBox)
        box.scroll_page_down() if direction > 0 else box.scroll_page_up()

    def action_yes(self) -> None:
        self.action_confirm()

    def action_no(self) -> None:
        self.action_cancel()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # With a free-text field, y and n are letters even on a button.
        if action in ("yes", "no"):
            return self.letter_keys
        return True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_confirm() if event.button.id == "confirm" else self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_confirm()


class ConfirmDialog(Dialog[bool]):
    """Yes or no."""

    def __init__(self, title: str, body: Text | str = "", confirm_label: str = "Yes") -> None:
        super().__init__(title, body)
        self.confirm_label = confirm_label

    def on_mount(self) -> None:
        self.query_one("#confirm", Button).focus()


class DaysInput(Input):
    """A number field that leaves letters to the dialog's y/n keys."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return character is not None and character.isdigit() or super().check_consume_key(key, None)


class ApproveDialog(Dialog[int]):
    """Validity in days (default shown), then issue."""

    confirm_label = "Approve"
    confirm_variant = "success"
    # The field holds digits only, so y and n can still confirm and cancel.
    BINDINGS = [
        Binding("y", "yes", "Yes", show=False, priority=True, id="dialog.yes"),
        Binding("n", "no", "No", show=False, priority=True, id="dialog.no"),
    ]

    def __init__(self, title: str, body: Text | str, default_days: int, max_days: int) -> None:
        super().__init__(title, body)
        self.default_days = default_days
        self.max_days = max_days

    def compose_fields(self) -> ComposeResult:
        yield Label("Validity in days")
        yield DaysInput(str(self.default_days), id="days", type="integer", restrict=r"[0-9]*", max_length=5)

    def value(self) -> int:
        text = self.query_one("#days", Input).value.strip()
        days = int(text) if text.isdigit() else 0
        if not 1 <= days <= self.max_days:
            raise ValueError(f"The validity must be between 1 and {self.max_days} days.")
        return days


class RejectDialog(Dialog[str]):
    """A reason, then reject. y and n are letters here: use Enter and Escape."""

    confirm_label = "Reject"
    confirm_variant = "error"
    letter_keys = False

    def compose_fields(self) -> ComposeResult:
        yield Label("Reason (sent to the audit log)")
        yield Input(placeholder="e.g. not a device we own", id="reason", max_length=500)

    def value(self) -> str:
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            raise ValueError("A rejection needs a reason.")
        return reason


class ReasonList(OptionList):
    """The reasons; j and k move as in the lists."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="reasons.down"),
        Binding("k", "cursor_up", "Up", show=False, id="reasons.up"),
    ]


class RevokeDialog(Dialog[RevocationReason]):
    """The RFC 5280 reason (default unspecified), a warning, then revoke."""

    confirm_label = "Revoke"
    confirm_variant = "error"

    def compose_fields(self) -> ComposeResult:
        options = [Option(f"{reason.value:<22} {REASON_HELP[reason]}", id=reason.value) for reason in RevocationReason]
        yield ReasonList(*options, id="reasons")

    def on_mount(self) -> None:
        self.query_one("#reasons", OptionList).highlighted = 0

    def value(self) -> RevocationReason:
        reasons = self.query_one("#reasons", OptionList)
        index = reasons.highlighted or 0
        reason = reasons.get_option_at_index(index).id
        if reason is None:  # every option is made with its reason as its id
            raise ValueError("Choose a reason from the list.")
        return RevocationReason(reason)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_confirm()


class ExportDialog(Dialog[Path]):
    """Where to write the certificate and its chain."""

    confirm_label = "Export"
    letter_keys = False

    def __init__(self, title: str, body: Text | str, default_path: Path) -> None:
        super().__init__(title, body)
        self.default_path = default_path

    def compose_fields(self) -> ComposeResult:
        yield Label("Write the PEM (certificate, issuing CA, root) to")
        yield Input(str(self.default_path), id="path")

    def value(self) -> Path:
        text = self.query_one("#path", Input).value.strip()
        if not text:
            raise ValueError("Type a file name.")
        return Path(text).expanduser()


class PassphraseDialog(Dialog[bytes]):
    """The CA key's passphrase, asked once; kept in memory only."""

    confirm_label = "Unlock"
    letter_keys = False

    def compose_fields(self) -> ComposeResult:
        yield Input(password=True, id="passphrase", placeholder="passphrase")

    def value(self) -> bytes:
        secret = self.query_one("#passphrase", Input).value
        if not secret:
            raise ValueError("Type the passphrase, or press Escape to open the CA read-only.")
        return secret.encode()
