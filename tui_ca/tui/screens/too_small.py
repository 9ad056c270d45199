"""Shown instead of everything else while the terminal is smaller than the UI needs.

Below 80x24 the lists lose their rows and a key such as Enter would act on
a row the admin cannot see; this screen covers them and takes the keys
(only ``q`` still quits) until the terminal is big enough again.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widgets import Static

MIN_SIZE = Size(80, 24)
"""The smallest terminal every screen is laid out for."""


def too_small(size: Size) -> bool:
    return size.width < MIN_SIZE.width or size.height < MIN_SIZE.height


def message(size: Size) -> Text:
    return Text(f"tui-ca needs a terminal of at least {MIN_SIZE.width}x{MIN_SIZE.height}; this one is "
                f"{size.width}x{size.height}.\nEnlarge the window (or zoom out) to go on; q quits.",
                justify="center")  # fmt: skip


class TooSmallScreen(ModalScreen[None]):
    """A single message; it goes away by itself once the terminal is big enough."""

    def compose(self) -> ComposeResult:
        yield Static(message(self.app.size), id="too-small")

    def on_resize(self) -> None:
        self.query_one("#too-small", Static).update(message(self.app.size))

    def on_screen_resume(self) -> None:
        # A dialog opened above this screen may close after the terminal grew.
        if not too_small(self.app.size):
            self.dismiss()
