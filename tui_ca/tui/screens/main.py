"""The main screen: the signing certificate, the queue and the certificates."""

from __future__ import annotations

from datetime import timedelta

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Label, Static

from tui_ca.engine import CAError
from tui_ca.engine.ca import DEFAULT_LEAF_DAYS
from tui_ca.tui.ca_app import ca_app
from tui_ca.tui.data import EXPIRING_WORD, Snapshot, age_seconds, aged
from tui_ca.tui.roles import RoleKeys, explanation
from tui_ca.tui.widgets.ca_header import CAHeader
from tui_ca.tui.widgets.keys_footer import KeysFooter
from tui_ca.tui.widgets.record_list import Column, RecordList
from tui_ca.tui.widgets.search import SEARCH_BINDINGS, SearchMixin, describe

QUEUED_COLUMNS = [
    Column("ID", 6, "right", sort=int), Column("Requester", None, min_width=10),
    Column("Subject CN", None, min_width=10), Column("Key", 9), Column("Age", 4, "right", sort=age_seconds),
]  # fmt: skip
# Under a K-of-N approval policy the queue says how far each request got ("1 of 2 alice").
QUEUED_APPROVAL_COLUMNS = [*QUEUED_COLUMNS[:4], Column("Approvals", None, min_width=12), QUEUED_COLUMNS[4]]
CERT_COLUMNS = [
    Column("ID", 6, "right", sort=int), Column("Requester", None, min_width=10), Column("CN", None, min_width=8),
    Column("Serial", 8), Column("Not after", 17), Column("Status", 8),
]  # fmt: skip
CLOSED_COLUMNS = [
    Column("ID", 6, "right", sort=int), Column("Requester", None, min_width=8), Column("CN", None, min_width=8),
    Column("Outcome", 8), Column("When", 10), Column("By", 14), Column("Why", None, min_width=10),
]  # fmt: skip


class MainScreen(RoleKeys, SearchMixin):
    """Certificate Management, as the product's panel, for the keyboard."""

    ROLE_KEYS = {"a": "approve", "r": "reject", "v": "revoke"}

    BINDINGS = [
        *SEARCH_BINDINGS,
        Binding(
            "h", "toggle_closed", "History", tooltip="Show revoked, expired and rejected items", id="main.history"
        ),  # fmt: skip
        Binding("A", "audit", "Audit log", tooltip="The audit log and whether its chain is intact", id="main.audit"),
        Binding(
            "R",
            "refused",
            "Refused",
            show=False,
            tooltip="Submissions refused at intake (CLI, EST, SCEP) and why",
            id="main.refused",
        ),  # fmt: skip
        Binding("a", "approve", "Approve", tooltip="Approve the selected (or marked) requests", id="main.approve"),
        Binding("r", "reject", "Reject", tooltip="Reject the selected (or marked) requests", id="main.reject"),
        Binding("v", "revoke", "Revoke", tooltip="Revoke the selected (or marked) certificates", id="main.revoke"),
        Binding(
            "x",
            "expiring",
            "Expiring",
            show=False,
            tooltip="Show only certificates ending within 30 days (again: all)",
            id="main.expiring",
        ),  # fmt: skip
        Binding(
            "y",
            "item('copy')",
            "Copy",
            show=False,
            tooltip="Copy the SPKI fingerprint, serial or PEM (OSC 52)",
            id="main.copy",
        ),  # fmt: skip
        Binding(
            "p",
            "item('view')",
            "As text",
            show=False,
            tooltip="The certificate or CSR as text, with its PEM",
            id="main.text",
        ),  # fmt: skip
    ]

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: Snapshot | None = None
        self._keys_shown: tuple | None = None

    def refresh_bindings(self) -> None:
        """Tell the footer only when what it shows changed.

        Each notice recomposes the footer and restyles every key (measured: about
        a third of the CPU before the first screen, three notices with the same
        keys); re-reads, marks and title updates mostly change nothing there.
        """
        shown = (self.app.app_focus, self.focused,
                 tuple((key, b.binding.action, b.enabled, b.tooltip) for key, b in self.active_bindings.items()))  # fmt: skip
        if shown == self._keys_shown:
            return
        self._keys_shown = shown
        super().refresh_bindings()

    def compose(self) -> ComposeResult:
        yield CAHeader("Reading the CA…", id="ca-header")
        with Vertical(id="queued-pane", classes="pane"):
            yield Label("Queued CSRs", id="queued-title", classes="pane-title")
            yield RecordList(QUEUED_COLUMNS, id="queued", empty_text="No requests wait for a decision.",
                             markable=True)  # fmt: skip
        with Vertical(id="certs-pane", classes="pane"):
            yield Label("Approved Certificates", id="certs-title", classes="pane-title")
            yield RecordList(CERT_COLUMNS, id="certs", empty_text="No valid certificates.", markable=True)
        # The history pane and the filter field are mounted when first used:
        # every widget at start-up costs styling time before the first frame.
        yield KeysFooter()

    async def on_mount(self) -> None:
        # Focused now, not after this handler (``focus()`` defers): the footer's keys
        # follow the focus, and are composed once, before the first frame, below.
        self.set_focus(self.query_one("#queued", RecordList))
        app = ca_app(self)
        snapshot = app.early_snapshot()
        if snapshot is not None:
            # The first read finished before this screen was composed: draw it in the first frame.
            self._show(snapshot)
            if app.expiring_count is not None:
                self.show_expiring(app.expiring_count)
        await self.query_one(KeysFooter).show_keys()
        if snapshot is not None:
            app.shown(snapshot.partial)

    # ------------------------------------------------------------ data

    def apply_snapshot(self, snapshot: Snapshot, changed: bool) -> bool:
        """Show a read; ``False`` when not composed yet (``on_mount`` shows the app's latest read then)."""
        if not self.is_mounted:
            return False
        if snapshot is not self.snapshot:  # the app's early read, already drawn at mount, arrives again
            self._show(snapshot)
        return True

    def _show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.query_one(CAHeader).show(snapshot.info, snapshot.now)
        for list_id, rows in (("queued", snapshot.queued), ("certs", snapshot.certificates),
                              ("closed", snapshot.closed)):  # fmt: skip
            for records in self.query(f"#{list_id}").results(RecordList):
                if list_id == "queued":
                    records.set_columns(QUEUED_APPROVAL_COLUMNS if snapshot.multi_approval else QUEUED_COLUMNS)
                records.set_source(rows.keys, rows.fetch, rows.find)
        self._update_titles()
        self.show_roles()
        self.refresh_bindings()

    def role_key_applies(self, operation: str) -> bool:
        focused = self.focused
        return isinstance(focused, RecordList) and focused.id == ("certs" if operation == "revoke" else "queued")

    def show_roles(self) -> None:
        """A line under the header naming what this admin's roles do not allow (mounted only when roles bite)."""
        denied = getattr(self.app, "denied", {})
        found = list(self.query("#roles-note").results(Static))
        if not denied:
            for note in found:
                note.display = False
            return
        text = explanation(ca_app(self).ca, denied)
        if found:
            found[0].update(text)
            found[0].display = True
        else:
            self.mount(Static(text, id="roles-note"), after=self.query_one(CAHeader))

    def tick(self, now) -> None:
        """The clock moved on (the app polls every second): the CRL line and the ages follow it."""
        # The poll can fire while the app is closing and the header is gone.
        for header in self.query(CAHeader).results(CAHeader):
            header.tick(now)
        snapshot = self.snapshot
        if snapshot is None or now - snapshot.now < timedelta(minutes=1):
            return
        # Ages read in minutes at the finest; only the rows on screen are re-made.
        self.snapshot = snapshot = aged(snapshot, now)
        for list_id, rows in (("queued", snapshot.queued), ("certs", snapshot.certificates)):
            for records in self.query(f"#{list_id}").results(RecordList):
                records.remake_rows(rows.fetch)

    def _update_titles(self) -> None:
        self.update_titles()

    def update_titles(self) -> None:
        titles = {"queued": "Queued CSRs", "certs": "Approved Certificates", "closed": "Revoked, expired and rejected"}
        for list_id, title in titles.items():
            found = list(self.query(f"#{list_id}").results(RecordList))
            if not found:
                continue
            records = found[0]
            if self.snapshot is not None and self.snapshot.partial and list_id != "queued":
                count = f"{records.total_count:,} so far, reading…"
            else:
                count = describe(records)
            self.query_one(f"#{list_id}-title", Label).update(f"{title} ({count})")

    # ------------------------------------------------------------ opening

    @on(RecordList.Opened)
    def open_record(self, event: RecordList.Opened) -> None:
        from tui_ca.tui.screens.certificate import CertificateScreen
        from tui_ca.tui.screens.request import RequestScreen

        if event.record_list.id == "queued":
            self.app.push_screen(RequestScreen(event.key))
        elif event.record_list.id == "certs":
            self.app.push_screen(CertificateScreen(event.key))
        else:
            row = event.record_list.row(event.key)
            if row is not None and row.kind == "request":
                self.app.push_screen(RequestScreen(event.key))
            else:
                self.app.push_screen(CertificateScreen(event.key))

    @on(RecordList.MarksChanged)
    def marks_changed(self, event: RecordList.MarksChanged) -> None:
        self._update_titles()
        self.refresh_bindings()

    # ------------------------------------------------------------ acting from the lists

    def _targets(self, list_id: str) -> list[int]:
        """The marked rows of that list if it has focus and marks, else its selected row."""
        focused = self.focused
        if not isinstance(focused, RecordList) or focused.id != list_id:
            return []
        marked = focused.marked_keys()
        if marked:
            return marked
        return [] if focused.cursor_key is None else [focused.cursor_key]

    def action_approve(self) -> None:
        self._act("queued", "approve")

    def action_reject(self) -> None:
        self._act("queued", "reject")

    def action_revoke(self) -> None:
        self._act("certs", "revoke")

    def _act(self, list_id: str, what: str) -> None:
        ids = self._targets(list_id)
        if ids:
            self.prepare(list_id, what, ids)

    @work(thread=True, exclusive=True, group="prepare")
    def prepare(self, list_id: str, what: str, ids: list[int]) -> None:
        """Read the rows fresh (another admin may have decided one), then ask."""
        from tui_ca.tui import actions

        ca = ca_app(self).ca
        try:
            if what == "revoke":
                certs = [ca.certificate(i) for i in ids]
                self.app.call_from_thread(actions.ask_revoke, ca_app(self), certs, self._acted(list_id))
                return
            requests = [ca.request(i) for i in ids]
            if what == "approve":
                days = ca.config().get("leaf_days", DEFAULT_LEAF_DAYS)
                self.app.call_from_thread(actions.ask_approve, ca_app(self), requests, days, self._acted(list_id))
            else:
                self.app.call_from_thread(actions.ask_reject, ca_app(self), requests, self._acted(list_id))
        except CAError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")

    def _acted(self, list_id: str):
        def unmark(result) -> None:
            # The rows that were done leave the list; refused ones stay marked to be looked at.
            done = {o.key for o in result if o.ok} if isinstance(result, list) else None
            for records in self.query(f"#{list_id}").results(RecordList):
                if done is not None and records.marks:
                    records.marks -= done
                    records.post_message(RecordList.MarksChanged(records))

        return unmark

    def show_expiring(self, count: int) -> None:
        for header in self.query(CAHeader).results(CAHeader):
            header.show_expiring(count)

    def action_expiring(self) -> None:
        certs = self.query_one("#certs", RecordList)
        certs.set_filter("" if certs.filter_text == EXPIRING_WORD else EXPIRING_WORD)
        certs.focus()
        self.update_titles()

    def action_refused(self) -> None:
        from tui_ca.tui.screens.refused import RefusedScreen

        self.app.push_screen(RefusedScreen())

    def action_audit(self) -> None:
        from tui_ca.tui.screens.audit import AuditScreen

        self.app.push_screen(AuditScreen())

    # ------------------------------------------------------------ search, history

    def _selected_item(self) -> tuple[str, int] | None:
        focused = self.focused
        if not isinstance(focused, RecordList) or focused.cursor_key is None:
            return None
        key = focused.cursor_key
        if focused.id == "queued":
            return "request", key
        if focused.id == "certs":
            return "certificate", key
        row = focused.row(key)
        return ("request" if row is not None and row.kind == "request" else "certificate"), key

    def action_item(self, then: str) -> None:
        from tui_ca.tui.screens.item_text import open_item

        selected = self._selected_item()
        if selected is not None:
            open_item(ca_app(self), *selected, then)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "item":
            return True if self._selected_item() is not None else None
        if action in ("approve", "reject", "revoke"):
            # Hidden in a list it does not act on (the footer has 80 cells); greyed there with no row.
            list_id = "certs" if action == "revoke" else "queued"
            focused = self.focused
            if not isinstance(focused, RecordList) or focused.id != list_id:
                return False
            if self.role_denied(action):
                return None
            return True if self._targets(list_id) else None
        return self.search_check(action)

    async def _closed_pane(self) -> Vertical:
        found = list(self.query("#closed-pane").results(Vertical))
        if found:
            return found[0]
        records = RecordList(CLOSED_COLUMNS, id="closed", empty_text="Nothing revoked, expired or rejected.")
        pane = Vertical(Label("Revoked, expired and rejected", id="closed-title", classes="pane-title"), records,
                        id="closed-pane", classes="pane")  # fmt: skip
        await self.mount(pane, before=self.query_one(Footer))
        if self.snapshot is not None:
            records.set_source(self.snapshot.closed.keys, self.snapshot.closed.fetch, self.snapshot.closed.find)
            self._update_titles()
        return pane

    async def action_toggle_closed(self) -> None:
        pane = await self._closed_pane()
        pane.toggle_class("shown")
        if pane.has_class("shown"):
            self.query_one("#closed", RecordList).focus()
        else:
            self.query_one("#queued", RecordList).focus()
