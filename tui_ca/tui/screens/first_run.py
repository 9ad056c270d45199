"""First run: a home without a CA gets one, from the names the admin types."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from tui_ca.engine import CAError, NameFields
from tui_ca.engine.ca import DEFAULT_CA_DAYS
from tui_ca.tui.ca_app import ca_app

KEY_TYPES = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
# (field id, label, placeholder); CN is the only required one.
NAME_INPUTS = [
    ("cn", "Common name (CN) *", "Example Issuing CA"),
    ("org", "Organisation (O)", "Example Networks"),
    ("ou", "Unit (OU)", "PKI"),
    ("country", "Country (C)", "GB"),
    ("state", "State (ST)", "England"),
    ("locality", "Locality (L)", "London"),
    ("email", "CA e-mail", "pki@example.net"),
]
# Short passphrases fall to a guessing attack on a stolen key file, scrypt or not.
MIN_PASSPHRASE = 8


class FirstRunScreen(Screen[bool]):
    """Create the root and issuing CA in an empty home."""

    BINDINGS = [
        Binding("ctrl+s", "create", "Create the CA", tooltip="Create the root and issuing CA", id="first_run.create"),
        Binding("escape", "leave", "Quit", tooltip="Leave without creating a CA", id="first_run.leave"),
    ]

    def compose(self) -> ComposeResult:
        yield Label("No CA in this home yet — create one", classes="screen-title")
        with VerticalScroll(id="first-run-body"):
            yield Static(Text(f"Home: {ca_app(self).home}"), classes="hint")
            with Grid(id="first-run-form"):
                for field_id, label, placeholder in NAME_INPUTS:
                    yield Label(label)
                    yield Input(placeholder=placeholder, id=field_id)
                yield Label("Key type")
                yield Select([(k, k) for k in KEY_TYPES], value="ec-p256", allow_blank=False, id="key-type")
                yield Label("Validity (days)")
                yield Input(str(DEFAULT_CA_DAYS), id="days", type="integer", restrict=r"[0-9]*")
                yield Label("Key passphrase")
                yield Input(placeholder="optional: encrypts the CA keys", password=True, id="passphrase")
                yield Label("Repeat passphrase")
                yield Input(placeholder="the same again", password=True, id="passphrase-again")
            yield Static("", id="first-run-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create the CA (ctrl+s)", id="create", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#cn", Input).focus()

    def _value(self, field_id: str) -> str | None:
        return self.query_one(f"#{field_id}", Input).value.strip() or None

    def action_create(self) -> None:
        days_text = self._value("days") or ""
        if not days_text.isdigit():
            self._error("The validity must be a number of days.")
            return
        # Passphrases are taken as typed: spaces count.
        secret = self.query_one("#passphrase", Input).value
        if secret != self.query_one("#passphrase-again", Input).value:
            self._error("The two passphrases differ; type the same one twice.")
            return
        if secret and len(secret) < MIN_PASSPHRASE:
            self._error(f"The passphrase needs at least {MIN_PASSPHRASE} characters (or none, for unencrypted keys).")
            return
        country = self._value("country")
        names = NameFields(country=country.upper() if country else None, state=self._value("state"),
                           locality=self._value("locality"), organization=self._value("org"),
                           org_unit=self._value("ou"), common_name=self._value("cn"), email=self._value("email"))  # fmt: skip
        self.query_one("#create", Button).disabled = True
        self._error("Creating the root and issuing CA…")
        self.create(names, int(days_text), str(self.query_one("#key-type", Select).value),
                    secret.encode() if secret else None)  # fmt: skip

    @work(thread=True, exclusive=True, group="init")
    def create(self, names: NameFields, days: int, key_type: str, secret: bytes | None) -> None:
        # The app's engine reads the passphrase through the app, so the keys it
        # writes are encrypted with it and the session stays unlocked after.
        ca_app(self).use_passphrase(secret)
        try:
            ca_app(self).ca.init(names, days=days, key_type=key_type)
        except CAError as exc:
            ca_app(self).use_passphrase(None)
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._done, secret is not None)

    def _failed(self, message: str) -> None:
        self.query_one("#create", Button).disabled = False
        self._error(message)

    def _done(self, encrypted: bool) -> None:
        self.app.notify("CA created; its keys are encrypted with the passphrase." if encrypted else "CA created.")
        self.dismiss(True)

    def _error(self, message: str) -> None:
        self.query_one("#first-run-error", Static).update(Text(message))

    @on(Button.Pressed, "#create")
    def _pressed(self) -> None:
        self.action_create()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_create()

    def action_leave(self) -> None:
        self.dismiss(False)
