"""Confirm the requester: what the CSR says, then approve or reject it."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Label, Static

from tui_ca.engine import CAError, Certificate, Request, RequestStatus
from tui_ca.engine.ca import DEFAULT_LEAF_DAYS
from tui_ca.tui.actions import ask_approve, ask_reject
from tui_ca.tui.ca_app import ca_app
from tui_ca.tui.data import Snapshot
from tui_ca.tui.roles import RoleKeys
from tui_ca.tui.text import literal, reading_lines, span, visible, when
from tui_ca.tui.widgets.details import Details


@dataclass(frozen=True)
class RequestView:
    """A request with what the screen warns about."""

    request: Request
    """The request."""
    active: Certificate | None
    """The requester's active certificate, if any."""
    default_days: int
    """The CA's default validity for new certificates."""
    needed: int = 1
    """Distinct approvals the policy in force asks of this request."""


# How each intake names itself on the screen; anything else is shown as stored.
SOURCE_NAMES = {"est": "EST", "scep": "SCEP", "cli": "CLI", "server-setup": "server-setup"}


def arrival(request: Request) -> str:
    """``SCEP, transaction ID 3F2A…, challenge matched``: the intake and what it recorded of the arrival."""
    parts = [SOURCE_NAMES.get(request.source) or visible(request.source, 20)]
    note = dict(request.note)
    transaction = note.pop("scep_transaction_id", None)
    if transaction is not None:
        parts.append(f"transaction ID {visible(str(transaction), 80)}")
    challenge = note.pop("challenge", None)
    if challenge is not None:
        parts.append("challenge matched" if challenge == "matched" else f"challenge {visible(str(challenge), 20)}")
    # Details a newer intake records that this screen has no words for yet: shown as they are.
    parts.extend(f"{visible(str(key), 30)} {visible(str(value), 80)}" for key, value in sorted(note.items()))
    return ", ".join(parts)


def request_facts(view: RequestView, now) -> list[tuple[str, Text | str]]:
    r, d = view.request, view.request.details
    sig = Text("verifies", style="bold green") if d.signature_valid else Text("DOES NOT VERIFY", style="bold red")
    rows: list[tuple[str, Text | str]] = [
        ("Certificate ID", str(r.id)),
        ("Status", r.status.value),
        ("Requester", literal(r.requester)),
    ]
    for key, value in d.subject_fields.as_pairs():
        if value is not None:
            rows.append((f"Subject {key}", literal(value)))
    rows.append(("Subject (full)", literal(d.subject, limit=400)))
    rows.append(("SANs", literal(", ".join(d.sans)) if d.sans else Text("none", style="dim")))
    if d.name_warning:
        rows.append(("Warning", Text(d.name_warning, style="bold yellow")))
    rows.append(("Key", f"{d.key_type} ({d.key_size} bits)"))
    rows.append(("CSR signature", sig))
    rows.append(("SPKI SHA-256", Text(reading_lines(d.fingerprint_groups), style="bold")))
    arrived = Text(f"{when(r.submitted_at)} ({span(now - r.submitted_at)} ago) via ")
    arrived.append(arrival(r))
    arrived.append(", sent by ")
    arrived.append(visible(r.submitted_by.describe(), 80))
    rows.append(("Arrived", arrived))
    if r.decided_at is not None:
        decided = Text(f"{r.status.value} {when(r.decided_at)} by ")
        decided.append(visible(r.decided_by.describe() if r.decided_by else None, 80))
        rows.append(("Decided", decided))
    if r.reason:
        rows.append(("Reason", literal(r.reason)))
    if r.renewal_of is not None:
        rows.append(("Renews", f"certificate {r.renewal_of}"))
    if view.needed > 1 or r.approvals:
        names = ", ".join(visible(a.describe(), 60) for a in r.approvals) or "none yet"
        rows.append(("Approvals", f"{len(r.approvals)} of {view.needed} ({names})"))
    return rows


def screen_title(request_id: int, status: RequestStatus | None) -> str:
    """Only a queued request is there to be confirmed; a decided one says what became of it."""
    if status is None:
        return f"Request {request_id}"
    if status is RequestStatus.QUEUED:
        return f"Confirm the requester — request {request_id}"
    return f"Request {request_id} — {status.value}"


def warnings(view: RequestView) -> list[str]:
    found: list[str] = []
    if view.request.status is not RequestStatus.QUEUED:
        # Decided: nothing to confirm, and its own certificate is no conflict.
        return found
    if view.active is not None and view.active.id not in (view.request.renewal_of, view.request.id):
        found.append(f"The requester holds active certificate {view.active.id} (serial {view.active.short_serial}…); "
                     "approval will be refused until it is revoked.")  # fmt: skip
    if not view.request.details.signature_valid:
        found.append("The CSR's signature does not verify: the requester may not hold the key.")
    if view.request.details.common_name is None:
        found.append("The subject has no CN; the certificate is named by its SANs only.")
    return found


class RequestScreen(RoleKeys):
    """One request: confirm who sent it (compare the fingerprint), then decide."""

    ROLE_KEYS = {"a": "approve", "r": "reject"}

    BINDINGS = [
        Binding("a", "approve", "Approve", tooltip="Issue a certificate for this request", id="request.approve"),
        Binding("r", "reject", "Reject", tooltip="Refuse this request, with a reason", id="request.reject"),
        Binding(
            "y", "item('copy')", "Copy", tooltip="Copy the SPKI fingerprint, serial or PEM (OSC 52)", id="request.copy"
        ),  # fmt: skip
        Binding("p", "item('view')", "As text", tooltip="As text (openssl-like), with the PEM", id="request.text"),
        Binding("escape", "close", "Back", tooltip="Back to the lists", id="request.close"),
    ]

    def __init__(self, request_id: int) -> None:
        super().__init__()
        self.request_id = request_id
        self.view: RequestView | None = None

    def compose(self) -> ComposeResult:
        yield Label(screen_title(self.request_id, None), classes="screen-title")
        with VerticalScroll(id="request-body"):
            yield Static("", id="warnings", classes="warnings")
            yield Details("Reading the request…", id="request-details")
            yield Static(Text("Ask the requester to read out their SPKI SHA-256 and compare every group.",
                              style="italic"), classes="hint", id="compare-hint")  # fmt: skip
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def apply_snapshot(self, snapshot: Snapshot, changed: bool) -> None:
        if changed:
            self.load()

    @work(thread=True, exclusive=True, group="request-load")
    def load(self) -> None:
        ca = ca_app(self).ca
        try:
            request = ca.request(self.request_id)
            active = ca.active_certificate(request.requester)
            try:
                needed = ca.approvals_needed(request)
            except CAError:
                needed = 1  # a damaged policy: the request still shows; approving says why it is refused
            view = RequestView(request, active, ca.config().get("leaf_days", DEFAULT_LEAF_DAYS), needed)
            now = ca.now()
        except CAError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._show, view, now)

    def _show(self, view: RequestView, now) -> None:
        self.view = view
        self.query_one(".screen-title", Label).update(screen_title(self.request_id, view.request.status))
        self.query_one("#request-details", Details).show(request_facts(view, now))
        found = warnings(view)
        box = self.query_one("#warnings", Static)
        box.update(Text("\n".join(f"⚠ {w}" for w in found)))
        box.set_class(bool(found), "shown")
        self.query_one("#compare-hint").display = view.request.status is RequestStatus.QUEUED
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "reject"):
            if self.role_denied(action):
                return None
            return True if self.view is not None and self.view.request.status is RequestStatus.QUEUED else None
        return True

    def action_close(self) -> None:
        self.dismiss()

    def action_item(self, then: str) -> None:
        from tui_ca.tui.screens.item_text import open_item

        open_item(ca_app(self), "request", self.request_id, then)

    def action_approve(self) -> None:
        if self.view is None:
            return
        ask_approve(ca_app(self), [self.view.request], self.view.default_days, self._decided)

    def action_reject(self) -> None:
        if self.view is None:
            return
        ask_reject(ca_app(self), [self.view.request], self._decided)

    def _decided(self, _result) -> None:
        if self.is_current:
            self.dismiss()
