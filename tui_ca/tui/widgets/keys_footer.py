"""The footer of keys, composed once and then changed in place while the same keys are shown."""

from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeysFooter(Footer):
    """Textual's footer, without a recompose for every change of a key's state.

    The stock footer composes empty, then again after the first frame once the
    screen announces its bindings, and again at each announcement: each time
    nine keys mounted and styled and the screen laid out anew (bench/ui_startup.py
    at 100,000 certificates: three composes and two extra frames before the main
    screen was ready). Here the screen composes the keys once before its first
    frame (``show_keys``); afterwards, while the same keys are shown, only their
    enabled state and tooltip change, in place; other keys recompose as before.
    """

    _composed: tuple | None = None
    """What the keys composed last show (``_shown_keys``); ``None`` before they were."""

    def _shown_keys(self) -> tuple:
        """Which keys the footer shows, in order: what a recompose would change."""
        active = self.screen.active_bindings
        keys = tuple((key, b.action, b.description, b.key_display) for key, (_, b, _, _) in active.items() if b.show)
        palette = self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE
        return keys, palette and self.app.COMMAND_PALETTE_BINDING in active

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._composed = self._shown_keys()
        for widget in super().compose():
            if isinstance(widget, FooterKey) and not widget.has_class("-command-palette"):
                # A key starts compact and is restyled when bound to the footer's (not compact):
                # two more passes of the stylesheet over each key. Made as the footer is, it is not.
                # (The palette's key is not bound: it stays compact, as Textual draws it.)
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget

    async def show_keys(self) -> None:
        """Compose the keys now (before the screen's first frame), not after that frame."""
        self._bindings_ready = True
        if self._composed == self._shown_keys():
            return
        done = asyncio.Event()

        async def recompose() -> None:
            try:
                await self.recompose()
            finally:
                done.set()

        # On the footer's own queue: its keys bind to it as they are composed.
        self.call_later(recompose)
        await done.wait()

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if self._composed is not None and self._composed == self._shown_keys():
            self._update_keys()
        else:
            self.call_after_refresh(self._follow)

    async def _follow(self) -> None:
        # Asked before the keys were composed (or for other keys): by now they may be these.
        if self._composed == self._shown_keys():
            self._update_keys()
        else:
            await self.recompose()

    def _update_keys(self) -> None:
        """The same keys, each enabled or greyed and explained as the screen now says."""
        active = self.screen.active_bindings
        for key in self.query(FooterKey).results(FooterKey):
            found = active.get(key.key)
            if found is None:
                continue
            _, binding, enabled, tooltip = found
            # As FooterKey.__init__ records it: greyed by the class, and a click on it rings the bell.
            key._disabled = not enabled
            key.set_class(not enabled, "-disabled")
            key.tooltip = (binding.tooltip or binding.description) if key.has_class("-command-palette") else tooltip
