"""The main screen: the signing certificate, the queue and the certificates."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from tui_ca.tui.data import Snapshot
from tui_ca.tui.widgets.ca_header import CAHeader
from tui_ca.tui.widgets.record_list import Column, RecordList

QUEUED_COLUMNS = [
    Column("ID", 6, "right"), Column("Requester", None, min_width=10), Column("Subject CN", None, min_width=10),
    Column("Key", 9), Column("Age", 4, "right"),
]  # fmt: skip
CERT_COLUMNS = [
    Column("ID", 6, "right"), Column("Requester", None, min_width=10), Column("CN", None, min_width=8),
    Column("Serial", 8), Column("Not after", 17), Column("Status", 8),
]  # fmt: skip
CLOSED_COLUMNS = [
    Column("ID", 6, "right"), Column("Requester", None, min_width=8), Column("CN", None, min_width=8),
    Column("Outcome", 8), Column("When", 10), Column("By", 14), Column("Why", None, min_width=10),
]  # fmt: skip


class MainScreen(Screen):
    """Certificate Management, as the product's panel, for the keyboard."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", tooltip="Filter the focused list", id="main.filter"),
        Binding(
            "h", "toggle_closed", "History", tooltip="Show revoked, expired and rejected items", id="main.history"
        ),  # fmt: skip
        Binding("A", "audit", "Audit log", tooltip="The audit log and whether its chain is intact", id="main.audit"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="main.clear_filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._filter_target: RecordList | None = None
        self.snapshot: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield CAHeader("Reading the CA…", id="ca-header")
        with Vertical(id="queued-pane", classes="pane"):
            yield Label("Queued CSRs", id="queued-title", classes="pane-title")
            yield RecordList(QUEUED_COLUMNS, id="queued", empty_text="No requests wait for a decision.")
        with Vertical(id="certs-pane", classes="pane"):
            yield Label("Approved Certificates", id="certs-title", classes="pane-title")
            yield RecordList(CERT_COLUMNS, id="certs", empty_text="No valid certificates.")
        # The history pane and the filter field are mounted when first used:
        # every widget at start-up costs styling time before the first frame.
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#queued", RecordList).focus()

    # ------------------------------------------------------------ data

    def apply_snapshot(self, snapshot: Snapshot, changed: bool) -> None:
        self.snapshot = snapshot
        self.query_one(CAHeader).show(snapshot.info, snapshot.now)
        for list_id, rows in (("queued", snapshot.queued), ("certs", snapshot.certificates),
                              ("closed", snapshot.closed)):  # fmt: skip
            for records in self.query(f"#{list_id}").results(RecordList):
                records.set_source(rows.keys, rows.fetch, rows.search)
        self._update_titles()

    def tick(self, now) -> None:
        """The clock moved on (the app polls every second): the CRL line follows it."""
        # The poll can fire while the app is closing and the header is gone.
        for header in self.query(CAHeader).results(CAHeader):
            header.tick(now)

    def _update_titles(self) -> None:
        titles = {"queued": "Queued CSRs", "certs": "Approved Certificates", "closed": "Revoked, expired and rejected"}
        for list_id, title in titles.items():
            found = list(self.query(f"#{list_id}").results(RecordList))
            if not found:
                continue
            records = found[0]
            count = f"{records.total_count:,}"
            if self.snapshot is not None and self.snapshot.partial:
                count = f"{count} so far, reading…" if list_id != "queued" else count
            elif records.filter_text:
                count = f"{records.row_count:,} of {count}, filter {records.filter_text!r}"
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

    def action_audit(self) -> None:
        from tui_ca.tui.screens.audit import AuditScreen

        self.app.push_screen(AuditScreen())

    # ------------------------------------------------------------ filter, history

    def _focused_list(self) -> RecordList | None:
        focused = self.focused
        return focused if isinstance(focused, RecordList) else self._filter_target

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":
            return True if isinstance(self.focused, RecordList) else None
        if action == "clear_filter":
            target = self._focused_list()
            return True if (target is not None and target.filter_text) or self._filter_shown() else None
        return True

    def _filter_shown(self) -> bool:
        return any(field.has_class("shown") for field in self.query("#filter").results(Input))

    async def _filter_field(self) -> Input:
        found = list(self.query("#filter").results(Input))
        if found:
            return found[0]
        field = Input(placeholder="filter: ID, requester, CN, serial…", id="filter")
        await self.mount(field, before=self.query_one(Footer))
        return field

    async def action_filter(self) -> None:
        target = self._focused_list()
        if target is None:
            return
        self._filter_target = target
        field = await self._filter_field()
        field.value = target.filter_text
        field.placeholder = f"filter {self.query_one(f'#{target.id}-title', Label).content}: ID, requester, CN…"
        field.add_class("shown")
        field.focus()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        if self._filter_target is not None:
            self._filter_target.set_filter(event.value)
            self._update_titles()

    @on(Input.Submitted, "#filter")
    def filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        self._close_filter()

    def _close_filter(self) -> None:
        for field in self.query("#filter").results(Input):
            field.remove_class("shown")
        if self._filter_target is not None:
            self._filter_target.focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        target = self._focused_list()
        if target is not None:
            self._filter_target = target
            target.set_filter("")
            for field in self.query("#filter").results(Input):
                field.value = ""
            self._update_titles()
        self._close_filter()

    async def _closed_pane(self) -> Vertical:
        found = list(self.query("#closed-pane").results(Vertical))
        if found:
            return found[0]
        records = RecordList(CLOSED_COLUMNS, id="closed", empty_text="Nothing revoked, expired or rejected.")
        pane = Vertical(Label("Revoked, expired and rejected", id="closed-title", classes="pane-title"), records,
                        id="closed-pane", classes="pane")  # fmt: skip
        await self.mount(pane, before=self.query_one(Footer))
        if self.snapshot is not None:
            records.set_source(self.snapshot.closed.keys, self.snapshot.closed.fetch, self.snapshot.closed.search)
            self._update_titles()
        return pane

    async def action_toggle_closed(self) -> None:
        pane = await self._closed_pane()
        pane.toggle_class("shown")
        if pane.has_class("shown"):
            self.query_one("#closed", RecordList).focus()
        else:
            self.query_one("#queued", RecordList).focus()
