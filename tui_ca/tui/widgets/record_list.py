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

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


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
    ]

    COMPONENT_CLASSES = {"record-list--header", "record-list--cursor", "record-list--empty"}

    DEFAULT_CSS = """
    RecordList { height: 1fr; }
    RecordList > .record-list--header { text-style: bold; }
    RecordList > .record-list--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    RecordList:blur > .record-list--cursor { background: $block-cursor-blurred-background; }
    RecordList > .record-list--empty { color: $text-muted; }
    """

    class Opened(Message):
        """Enter (or a click on the selected row) on a record."""

        def __init__(self, record_list: RecordList, key: int) -> None:
            super().__init__()
            self.record_list = record_list
            self.key = key

        @property
        def control(self) -> RecordList:
            return self.record_list

    def __init__(self, columns: list[Column], *, empty_text: str = "Nothing here.", **kwargs) -> None:
        super().__init__(**kwargs)
        self.columns = columns
        self.empty_text = empty_text
        self._all: list[int] = []
        self._fetch: Callable[[int], Row] = _missing
        self._made: dict[int, Row] = {}
        self._shown: list[int] = []
        self._index: dict[int, int] = {}
        self._filter = ""
        self._search: Callable[[int], str] | None = None
        self._haystack: list[str] | None = None
        self.cursor = 0
        self._widths: list[int] = []
        self._widths_for = -1

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
    def cursor_key(self) -> int | None:
        return self._shown[self.cursor] if self._shown else None

    def row(self, key: int) -> Row | None:
        """The row for ``key``, built on first use (only drawn rows are ever built)."""
        made = self._made.get(key)
        if made is None:
            try:
                made = self._made[key] = self._fetch(key)
            except KeyError:
                return None
        return made

    def keys(self) -> list[int]:
        return list(self._shown)

    def set_rows(self, rows: list[Row]) -> None:
        """Replace the rows; the cursor stays on the same key when it still exists."""
        by_key = {r.key: r for r in rows}
        self.set_source([r.key for r in rows], by_key.__getitem__)

    def set_source(self, keys: list[int], fetch: Callable[[int], Row],
                   search: Callable[[int], str] | None = None) -> None:  # fmt: skip
        """Replace the rows by their keys, in display order, and a way to build one row.

        ``search`` gives a key's lower-cased filter text without building its
        row, so filtering 100,000 records does not build 100,000 rows.
        """
        keep = self.cursor_key
        self._all, self._fetch, self._made = keys, fetch, {}
        self._search = search
        self._haystack: list[str] | None = None
        self._apply(keep)

    def set_filter(self, text: str) -> None:
        keep = self.cursor_key
        self._filter = text.casefold().strip()
        self._apply(keep)

    def _apply(self, keep: int | None) -> None:
        wanted = self._filter
        if wanted:
            if self._haystack is None:
                # Once per source; after that each keystroke is a scan of strings.
                text = self._search or (lambda key: self.row(key).search)
                self._haystack = [text(k) for k in self._all]
            self._shown = [k for k, hay in zip(self._all, self._haystack, strict=True) if wanted in hay]
        else:
            self._shown = list(self._all)
        self._index = {k: i for i, k in enumerate(self._shown)}
        if keep is not None and keep in self._index:
            self.cursor = self._index[keep]
        else:
            self.cursor = min(self.cursor, max(len(self._shown) - 1, 0))
        # One header line plus the rows; the width follows the widget.
        self.virtual_size = Size(self.size.width, len(self._shown) + 1)
        self._scroll_cursor_into_view()
        self.refresh()

    def move_to(self, key: int) -> bool:
        index = self._index.get(key)
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open" and not self._shown:
            return None
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
        self.virtual_size = Size(event.size.width, len(self._shown) + 1)
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
        )  # fmt: skip
        try:
            return super().render_lines(crop)
        finally:
            self._paint_styles = None

    def _styles(self) -> tuple[Style, Style, Style, Style]:
        styles = getattr(self, "_paint_styles", None)
        if styles is None:
            styles = (self.rich_style, self.get_component_rich_style("record-list--header"),
                      self.get_component_rich_style("record-list--cursor"),
                      self.get_component_rich_style("record-list--empty"))  # fmt: skip
        return styles

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base, header, cursor, empty = self._styles()
        if y == 0:
            strip = self._line(tuple(c.label for c in self.columns), width, base + header)
            return strip.crop_extend(0, width, base + header)
        index = int(self.scroll_offset.y) + y - 1
        if not self._shown:
            if y == 1:
                text = self.empty_text if not self._filter else f"No match for the filter {self._filter!r}."
                return Strip([Segment(text[:width], base + empty)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if index >= len(self._shown):
            return Strip.blank(width, base)
        row = self.row(self._shown[index])
        style = base + Style.parse(row.style) if row.style else base
        if index == self.cursor:
            style = style + cursor
        return self._line(row.cells, width, style).crop_extend(0, width, style)

    def region_of_cursor(self) -> Region:
        return Region(0, self.cursor + 1, self.size.width, 1)


def _missing(key: int) -> Row:
    raise KeyError(key)
