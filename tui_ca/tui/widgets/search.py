"""``/`` search, ``n``/``N`` between matches and ``f`` to show only matches, for any screen of record lists.

A search looks at every field of a record, shown or only stored (the lists
build that text once per read, when the first search starts), moves the
cursor to the first match and marks every matching row; ``f`` narrows the
list to the matches so that ``*`` can mark them all.
"""

from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input

from tui_ca.tui.data import EXPIRING_WORD
from tui_ca.tui.widgets.record_list import RecordList

SEARCH_BINDINGS = [
    Binding("slash", "search", "Search", tooltip="Search every field of the focused list", id="search.start"),
    Binding("n", "next_match(1)", "Next match", show=False, tooltip="The next match", id="search.next"),
    Binding("N", "next_match(-1)", "Previous match", show=False, tooltip="The previous match", id="search.previous"),
    Binding(
        "f",
        "only_matches",
        "Only matches",
        show=False,
        tooltip="Show only the matches (again: all rows)",
        id="search.only",
    ),  # fmt: skip
    Binding("escape", "clear_search", "Clear search", show=False, id="search.clear"),
]


def describe(records: RecordList) -> str:
    """The list's state for its title: counts, search, filter, marks, sort."""
    parts = [f"{records.row_count:,} of {records.total_count:,}" if records.filter_text else f"{records.total_count:,}"]
    if records.filter_text == EXPIRING_WORD:
        parts[0] += ", only those ending within 30 days"
    if records.busy:
        parts.append("searching…" if records.search_text or records.filter_text else "sorting…")
    elif records.search_text:
        parts.append(f"{records.match_count:,} match{'es' if records.match_count != 1 else ''} "
                     f"for {records.search_text!r}" + (", only matches" if records.filter_text else ""))  # fmt: skip
    if records.markable and records.marks:
        parts.append(f"{len(records.marks):,} marked")
    if records.sort_label:
        parts.append(f"sorted by {records.sort_label}")
    return ", ".join(parts)


class SearchMixin(Screen):
    """The search field and keys; the screen supplies the titles."""

    _search_target: RecordList | None = None
    _search_start = 0

    def update_titles(self) -> None:
        """Redraw the lists' titles (each screen has its own)."""

    def _focused_list(self) -> RecordList | None:
        focused = self.focused
        return focused if isinstance(focused, RecordList) else self._search_target

    def search_check(self, action: str) -> bool | None:
        """``check_action`` for the search keys (``None`` greys a key out)."""
        target = self._focused_list()
        if action == "search":
            return True if isinstance(self.focused, RecordList) else None
        if action in ("next_match", "only_matches"):
            return True if target is not None and target.search_text else None
        if action == "clear_search":
            busy = target is not None and (target.search_text or target.filter_text)
            return True if busy or self._field_shown() else None
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.search_check(action)

    def clear_search_or_leave(self, list_id: str) -> None:
        """Escape: first clear the search of the list ``#list_id``, as on the main screen; then go back."""
        if self._field_shown() or self.query_one(f"#{list_id}", RecordList).search_text:
            self.action_clear_search()
            return
        self.dismiss()

    def _field_shown(self) -> bool:
        return any(field.has_class("shown") for field in self.query("#search").results(Input))

    async def _field(self) -> Input:
        found = list(self.query("#search").results(Input))
        if found:
            return found[0]
        field = Input(id="search")
        await self.mount(field, before=self.query_one(Footer))
        return field

    async def action_search(self) -> None:
        target = self._focused_list()
        if target is None:
            return
        self._search_target, self._search_start = target, target.cursor
        field = await self._field()
        field.value = target.search_text
        field.placeholder = "search: ID, requester, CN, SAN, serial, key, status (revoked, expiring), address, date…"
        field.add_class("shown")
        field.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        target = self._search_target
        if target is not None:
            if target.filter_text:
                target.set_filter(event.value)
            target.set_search(event.value, start=self._search_start)
            self.update_titles()

    @on(Input.Submitted, "#search")
    def _search_done(self, event: Input.Submitted) -> None:
        event.stop()
        self._close_field()

    def _close_field(self) -> None:
        for field in self.query("#search").results(Input):
            field.remove_class("shown")
        if self._search_target is not None:
            self._search_target.focus()
        self.refresh_bindings()

    def action_next_match(self, direction: int) -> None:
        target = self._focused_list()
        if target is not None and not target.next_match(direction):
            self.notify(f"No match for {target.search_text!r}.", severity="warning", timeout=3)

    def action_only_matches(self) -> None:
        target = self._focused_list()
        if target is None or not target.search_text:
            return
        target.set_filter("" if target.filter_text else target.search_text)
        target.set_search(target.search_text)
        self.update_titles()

    def action_clear_search(self) -> None:
        target = self._focused_list()
        if target is not None:
            self._search_target = target
            target.set_filter("")
            target.set_search("")
            for field in self.query("#search").results(Input):
                field.value = ""
            self.update_titles()
        self._close_field()

    @on(RecordList.Changed)
    def _list_changed(self, event: RecordList.Changed) -> None:
        self.update_titles()
        self.refresh_bindings()
