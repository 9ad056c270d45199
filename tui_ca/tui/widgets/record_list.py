"""A virtual list of records: draws only the rows on screen.

DataTable builds every row up front (about 0.1 ms a row, 10.9 s for 100,000
certificates before the first frame). This widget keeps rows as plain tuples
of already-escaped strings and turns only the visible ones into segments, so
its cost follows the terminal's height, not the CA's size. Rows are keyed by
Certificate ID; the cursor follows its key across reloads and filters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison


class SearchStopped(Exception):
    """Raised by a finder whose ``stop()`` said a newer search replaced it."""


# Rows built for drawing, kept until this many (a few screens' worth), then made again.
_ROWS_KEPT = 512


@dataclass(frozen=True)
class Column:
    """One column of a record list."""

    label: str
    """Header text."""
    width: int | None = None
    """Cells; ``None`` takes the room left (at least ``min_width``)."""
    justify: str = "left"
    """``left`` or ``right``."""
    min_width: int = 8
    """Smallest width of a flexible column."""
    sort: Callable[[str], SupportsRichComparison] | None = None
    """Turns a cell into the value it sorts by (default: the text, case-folded)."""


@dataclass(frozen=True)
class Row:
    """One record: its key and its cells as display-safe strings."""

    key: int
    """Certificate ID."""
    cells: tuple[str, ...]
    """Already escaped (see ``tui_ca.tui.text.visible``)."""
    style: str = ""
    """A rich style for the whole row (e.g. dim for revoked)."""
    search: str = ""
    """Lower-cased text the filter matches against."""
    kind: str = ""
    """What the key names, where a list mixes kinds (``request``, ``certificate``)."""


class RecordList(ScrollView, can_focus=True):
    """Rows of records with a fixed header line, a cursor and a filter."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="list.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="list.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="list.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="list.page_down"),
        Binding("home,g", "jump(0)", "First", show=False, id="list.first"),
        Binding("end,G", "jump(-1)", "Last", show=False, id="list.last"),
        Binding("enter", "open", "Open", tooltip="Open the selected item", id="list.open"),
        Binding("space", "toggle_mark", "Mark", show=False, tooltip="Mark or unmark the selected row", id="list.mark"),
        Binding("asterisk", "mark_all", "Mark all", show=False, tooltip="Mark every row shown", id="list.mark_all"),
        Binding("u", "clear_marks", "Unmark all", show=False, tooltip="Clear every mark", id="list.unmark"),
        Binding("s", "sort(1)", "Sort", show=False, tooltip="Sort by the next column", id="list.sort"),
        Binding("S", "sort(0)", "Reverse", show=False, tooltip="Reverse the sort order", id="list.reverse"),
    ]

    COMPONENT_CLASSES = {"record-list--header", "record-list--cursor", "record-list--empty", "record-list--match"}

    DEFAULT_CSS = """
    RecordList { height: 1fr; }
    RecordList > .record-list--header { text-style: bold; }
    RecordList > .record-list--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    RecordList:blur > .record-list--cursor { background: $block-cursor-blurred-background; }
    RecordList > .record-list--empty { color: $text-muted; }
    RecordList > .record-list--match { text-style: bold underline; }
    """

    class MarksChanged(Message):
        """The set of marked rows changed."""

        def __init__(self, record_list: RecordList) -> None:
            super().__init__()
            self.record_list = record_list

        @property
        def control(self) -> RecordList:
            return self.record_list

    class Changed(Message):
        """What the list shows changed (search matches, sort order): titles follow."""

        def __init__(self, record_list: RecordList) -> None:
            super().__init__()
            self.record_list = record_list

        @property
        def control(self) -> RecordList:
            return self.record_list

    class Opened(Message):
        """Enter (or a click on the selected row) on a record."""

        def __init__(self, record_list: RecordList, key: int) -> None:
            super().__init__()
            self.record_list = record_list
            self.key = key

        @property
        def control(self) -> RecordList:
            return self.record_list

    def __init__(self, columns: list[Column], *, empty_text: str = "Nothing here.", markable: bool = False,
                 **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.markable = markable
        """Whether rows can be marked for a bulk action (a mark column is drawn)."""
        self.marks: set[int] = set()
        """Keys of the marked rows."""
        self.columns = [Column("", 1), *columns] if markable else columns
        self.empty_text = empty_text
        self._all: list[int] = []
        self._fetch: Callable[[int], Row] = _missing
        self._made: dict[int, Row] = {}
        self._shown: list[int] = []
        self._filter = ""
        self._filter_keys: set[int] | None = None
        self._find: Callable[..., set[int]] | None = None
        self._haystack: dict[int, str] | None = None
        self._query = ""
        self._found: set[int] | None = None
        self._search_start = 0
        self._matches: list[int] = []
        self._match_set: set[int] = set()
        self._order: list[int] | None = None
        self._source = 0
        self._busy: set[str] = set()
        self.sort_column: int | None = None
        """Index into ``columns`` of the sort column (``None``: display order as given)."""
        self.sort_descending = False
        self.cursor = 0
        self._widths: list[int] = []
        self._widths_for = -1
        self._paint_styles: tuple[Style, Style, Style, Style, Style] | None = None
        """The component styles, resolved once per ``render_lines`` (None outside one)."""

    # -------------------------------------------------------------- data

    @property
    def row_count(self) -> int:
        """Rows shown (after the filter)."""
        return len(self._shown)

    @property
    def total_count(self) -> int:
        return len(self._all)

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def search_text(self) -> str:
        return self._query

    @property
    def match_count(self) -> int:
        return len(self._matches)

    @property
    def busy(self) -> bool:
        """A search, filter or sort is being worked out (off the UI thread)."""
        return bool(self._busy)

    @property
    def sort_label(self) -> str:
        """``Requester ▲`` when sorted by a column, else empty."""
        if self.sort_column is None:
            return ""
        return f"{self.columns[self.sort_column].label} {'▼' if self.sort_descending else '▲'}"

    @property
    def cursor_key(self) -> int | None:
        return self._shown[self.cursor] if self._shown else None

    def row(self, key: int) -> Row | None:
        """The row for ``key``, built on first use (only drawn rows are ever built)."""
        made = self._made.get(key)
        if made is None:
            try:
                made = self._fetch(key)
            except KeyError:
                return None
            if len(self._made) >= _ROWS_KEPT:
                # Scrolling through 100,000 rows must not keep 100,000 rows.
                self._made.clear()
            self._made[key] = made
        return made

    def keys(self) -> list[int]:
        return list(self._shown)

    def set_rows(self, rows: list[Row]) -> None:
        """Replace the rows; the cursor stays on the same key when it still exists."""
        by_key = {r.key: r for r in rows}
        self.set_source([r.key for r in rows], by_key.__getitem__)

    def set_source(self, keys: list[int], fetch: Callable[[int], Row],
                   find: Callable[..., set[int]] | None = None) -> None:  # fmt: skip
        """Replace the rows by their keys, in display order, and a way to build one row.

        ``find`` gives the keys whose records hold a lower-cased text (it may
        read the store, so it runs in a worker); without it the rows' own
        search text is scanned.
        """
        keep = self.cursor_key
        previous_order = self._order
        self._all, self._fetch, self._made = keys, fetch, {}
        self._find = find
        self._source += 1
        if self.marks:
            # A decided request or a revoked certificate leaves the list, and its mark with it.
            present = set(keys)
            if not self.marks <= present:
                self.marks &= present
                self.post_message(self.MarksChanged(self))
        self._haystack = None
        self._order = None
        if previous_order is not None and self.sort_column is not None:
            # Until the new order is worked out, the old one holds for the rows still there.
            present = set(keys)
            known = set(previous_order)
            self._order = [k for k in previous_order if k in present] + [k for k in keys if k not in known]
        if self._filter:
            self._start("filter", self._filter)
        if self._query:
            self._start("search", self._query)
        if self.sort_column is not None:
            self._start_sort()
        self._apply(keep)

    def set_columns(self, columns: list[Column]) -> None:
        """Other columns (rows from ``set_source`` must match them); the sort starts over."""
        columns = [Column("", 1), *columns] if self.markable else columns
        if columns == self.columns:
            return
        self.columns, self._widths_for = columns, -1
        self.sort_column, self._order = None, None
        self.refresh()

    def remake_rows(self, fetch: Callable[[int], Row]) -> None:
        """Same keys, rows made anew (their text follows the clock); filter and cursor stay."""
        self._fetch, self._made = fetch, {}
        self.refresh()

    def set_filter(self, text: str) -> None:
        """Show only the rows whose records hold ``text`` (worked out in a worker when it reads the store)."""
        keep = self.cursor_key
        self._filter = text.casefold().strip()
        self._filter_keys = None
        if self._filter:
            self._start("filter", self._filter)
        else:
            self._busy.discard("filter")
        self._apply(keep)

    def set_search(self, text: str, *, start: int | None = None) -> None:
        """Find ``text`` in every record; the cursor goes to the first match from ``start``."""
        self._query = text.casefold().strip()
        self._search_start = self.cursor if start is None else start
        self._found = None
        if self._query:
            self._start("search", self._query)
        else:
            self._busy.discard("search")
        self._find_matches()
        self._jump_to_match()
        self.refresh()
        self.post_message(self.Changed(self))

    def _jump_to_match(self) -> None:
        if self._matches:
            origin = self._search_start
            self._set_cursor(next((i for i in self._matches if i >= origin), self._matches[0]))

    def next_match(self, direction: int) -> bool:
        """Move to the next (1) or previous (-1) match, wrapping; False when nothing matches."""
        if not self._matches:
            return False
        if direction > 0:
            index = next((i for i in self._matches if i > self.cursor), self._matches[0])
        else:
            index = next((i for i in reversed(self._matches) if i < self.cursor), self._matches[-1])
        self._set_cursor(index)
        return True

    # -------------------------------------------------------------- workers

    def _keys_holding(self, text: str) -> set[int]:
        """The keys whose records hold ``text``: the source's finder, else the rows' own search text."""
        if self._find is not None:
            return self._find(text, stop=lambda: False)
        if self._haystack is None:
            self._haystack = {k: row.search for k in self._all if (row := self.row(k)) is not None}
        return {k for k, hay in self._haystack.items() if text in hay}

    def _start(self, purpose: str, text: str) -> None:
        if self._find is None:
            # Rows held in memory (the audit log, a few small lists): no worker needed.
            self._deliver(purpose, text, self._source, self._keys_holding(text))
            return
        self._busy.add(purpose)
        source, find = self._source, self._find

        def work() -> None:
            # A search reads the whole store and each keystroke starts a new one; the
            # older ones stop at their next pause instead of reading to the end.
            worker = get_current_worker()
            try:
                found = find(text, stop=lambda: worker.is_cancelled)
            except SearchStopped:
                return
            self.app.call_from_thread(self._deliver, purpose, text, source, found)

        self.run_worker(work, thread=True, exclusive=True, group=f"{self.id}-{purpose}", exit_on_error=False)

    def _deliver(self, purpose: str, text: str, source: int, found: set[int]) -> None:
        current = self._filter if purpose == "filter" else self._query
        if source != self._source or text != current:
            return  # a later keystroke or a reload asked again
        self._busy.discard(purpose)
        if purpose == "filter":
            self._filter_keys = found
            self._apply(self.cursor_key)
        else:
            self._found = found
            self._find_matches()
            self._jump_to_match()
            self.refresh()
        self.post_message(self.Changed(self))

    def _find_matches(self) -> None:
        found = self._found if self._query else None
        self._matches = [i for i, k in enumerate(self._shown) if k in found] if found else []
        self._match_set = set(self._matches)

    def action_sort(self, advance: int) -> None:
        """``s``: sort by the next column (ID, then each in turn, then as given); ``S``: reverse."""
        data_columns = [i for i, c in enumerate(self.columns) if c.label]
        if advance:
            if self.sort_column is None:
                self.sort_column, self.sort_descending = data_columns[0], False
            else:
                following = [i for i in data_columns if i > self.sort_column]
                self.sort_column = following[0] if following else None
                self.sort_descending = False
        else:
            if self.sort_column is None:
                self.sort_column = data_columns[0]
            self.sort_descending = not self.sort_descending
        if self.sort_column is None:
            self._order = None
            self._busy.discard("sort")
            self._apply(self.cursor_key)
        else:
            self._start_sort()
        self.post_message(self.Changed(self))

    def _start_sort(self) -> None:
        column_index = self.sort_column
        if column_index is None:
            return
        column = self.columns[column_index]
        cell = column_index - (1 if self.markable else 0)
        value = column.sort or str.casefold
        keys, fetch, descending, source = list(self._all), self._fetch, self.sort_descending, self._source
        wanted = (column_index, descending, source)

        def key_of(k: int) -> SupportsRichComparison:
            row = fetch(k)
            return value(row.cells[cell]) if cell < len(row.cells) else ""

        def work() -> None:
            # Rows made for sorting are dropped again: only drawn rows stay in memory.
            order = sorted(keys, key=key_of, reverse=descending)
            self.app.call_from_thread(self._sorted_by, wanted, order)

        self._busy.add("sort")
        self.run_worker(work, thread=True, exclusive=True, group=f"{self.id}-sort", exit_on_error=False)

    def _sorted_by(self, wanted: tuple[int, bool, int], order: list[int]) -> None:
        if wanted != (self.sort_column, self.sort_descending, self._source):
            return
        self._busy.discard("sort")
        self._order = order
        self._apply(self.cursor_key)
        self.post_message(self.Changed(self))

    def _sorted(self, keys: list[int]) -> list[int]:
        if self._order is None:
            return keys
        if len(keys) == len(self._all):
            return list(self._order)
        wanted = set(keys)
        return [k for k in self._order if k in wanted]

    def _apply(self, keep: int | None) -> None:
        if self._filter:
            # Until the worker answers, the filter shows nothing rather than rows that may not match.
            wanted = self._filter_keys or set()
            shown = [k for k in self._all if k in wanted]
        else:
            shown = list(self._all)
        self._shown = self._sorted(shown)
        self._find_matches()
        position = self._position(keep)
        if position is not None:
            self.cursor = position
        else:
            self.cursor = min(self.cursor, max(len(self._shown) - 1, 0))
        # One header line plus the rows; no width to scroll: cells are cut to fit.
        self.virtual_size = Size(0, len(self._shown) + 1)
        self._scroll_cursor_into_view()
        self.refresh()

    def _position(self, key: int | None) -> int | None:
        if key is None:
            return None
        # A C-level scan (about a millisecond at 100,000 rows) instead of an index dict of ~10 MiB.
        try:
            return self._shown.index(key)
        except ValueError:
            return None

    def move_to(self, key: int) -> bool:
        index = self._position(key)
        if index is None:
            return False
        self._set_cursor(index)
        return True

    # -------------------------------------------------------------- cursor

    def _set_cursor(self, index: int) -> None:
        if not self._shown:
            return
        self.cursor = max(0, min(index, len(self._shown) - 1))
        self._scroll_cursor_into_view()
        self.refresh()

    def _scroll_cursor_into_view(self) -> None:
        body = max(self.scrollable_content_region.height - 1, 1)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + body:
            self.scroll_to(y=self.cursor - body + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor + direction * max(self.scrollable_content_region.height - 2, 1))

    def action_jump(self, where: int) -> None:
        self._set_cursor(0 if where == 0 else len(self._shown) - 1)

    def action_open(self) -> None:
        if self._shown:
            self.post_message(self.Opened(self, self._shown[self.cursor]))

    def marked_keys(self) -> list[int]:
        """The marked keys in display order (all of them, shown or filtered out)."""
        return [k for k in self._all if k in self.marks]

    def _marks_changed(self) -> None:
        self.refresh()
        self.post_message(self.MarksChanged(self))

    def action_toggle_mark(self) -> None:
        key = self.cursor_key
        if key is None:
            return
        self.marks.symmetric_difference_update({key})
        self._set_cursor(self.cursor + 1)
        self._marks_changed()

    def action_mark_all(self) -> None:
        self.marks.update(self._shown)
        self._marks_changed()

    def action_clear_marks(self) -> None:
        self.marks.clear()
        self._marks_changed()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open" and not self._shown:
            return None
        if action in ("toggle_mark", "mark_all", "clear_marks"):
            if not self.markable:
                return False
            return True if (self.marks if action == "clear_marks" else self._shown) else None
        return True

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if event.y < 1 or not 0 <= index < len(self._shown):
            return
        self.focus()
        if index == self.cursor or event.chain >= 2:
            self._set_cursor(index)
            self.action_open()
        else:
            self._set_cursor(index)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(0, len(self._shown) + 1)
        self._scroll_cursor_into_view()

    # -------------------------------------------------------------- drawing

    def _column_widths(self, width: int) -> list[int]:
        if self._widths_for == width:
            return self._widths
        gaps = len(self.columns) - 1
        fixed = sum(c.width or 0 for c in self.columns)
        flexible = [c for c in self.columns if c.width is None]
        spare = max(width - fixed - gaps, 0)
        share = max(spare // max(len(flexible), 1), min((c.min_width for c in flexible), default=0))
        self._widths = [c.width if c.width is not None else share for c in self.columns]
        self._widths_for = width
        return self._widths

    def _line(self, cells: tuple[str, ...], width: int, style: Style) -> Strip:
        widths = self._column_widths(width)
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        for n, (column, cell_width) in enumerate(zip(self.columns, widths, strict=True)):
            if n:
                line.append(" ")
            cell = Text(cells[n] if n < len(cells) else "", no_wrap=True, overflow="ellipsis", end="")
            cell.truncate(cell_width, overflow="ellipsis", pad=False)
            padding = " " * max(cell_width - cell.cell_len, 0)
            if column.justify == "right":
                line.append(padding)
                line.append_text(cell)
            else:
                line.append_text(cell)
                line.append(padding)
        segments = list(line.render(self.app.console))
        return Strip(segments).apply_style(style)

    def render_lines(self, crop: Region) -> list[Strip]:
        # Resolving styles walks the DOM; once per paint, not once per line.
        self._paint_styles = (
            self.rich_style, self.get_component_rich_style("record-list--header"),
            self.get_component_rich_style("record-list--cursor"), self.get_component_rich_style("record-list--empty"),
            self.get_component_rich_style("record-list--match"),
        )  # fmt: skip
        try:
            return super().render_lines(crop)
        finally:
            self._paint_styles = None

    def _styles(self) -> tuple[Style, Style, Style, Style, Style]:
        styles = getattr(self, "_paint_styles", None)
        if styles is None:
            styles = (self.rich_style, self.get_component_rich_style("record-list--header"),
                      self.get_component_rich_style("record-list--cursor"),
                      self.get_component_rich_style("record-list--empty"),
                      self.get_component_rich_style("record-list--match"))  # fmt: skip
        return styles

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base, header, cursor, empty, match = self._styles()
        if y == 0:
            arrow = "▼" if self.sort_descending else "▲"
            labels = tuple(c.label + arrow if n == self.sort_column else c.label for n, c in enumerate(self.columns))
            strip = self._line(labels, width, base + header)
            return strip.crop_extend(0, width, base + header)
        index = int(self.scroll_offset.y) + y - 1
        if not self._shown:
            if y == 1:
                if not self._filter:
                    text = self.empty_text
                elif "filter" in self._busy:
                    text = "Searching…"
                else:
                    text = f"No match for the filter {self._filter!r}."
                return Strip([Segment(text[:width], base + empty)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if index >= len(self._shown):
            return Strip.blank(width, base)
        key = self._shown[index]
        row = self.row(key)
        if row is None:
            # A key whose record can no longer be read (gone between reads): an empty line, not a crash.
            return Strip.blank(width, base)
        style = base + Style.parse(row.style) if row.style else base
        if index in self._match_set:
            style = style + match
        if index == self.cursor:
            style = style + cursor
        cells = row.cells
        if self.markable:
            cells = ("●" if key in self.marks else " ", *cells)
        return self._line(cells, width, style).crop_extend(0, width, style)

    def region_of_cursor(self) -> Region:
        return Region(0, self.cursor + 1, self.size.width, 1)


def _missing(key: int) -> Row:
    raise KeyError(key)
