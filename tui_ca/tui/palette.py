"""The command palette (Ctrl+P) offers every action the keys offer, from the bindings themselves.

Listing the active bindings of the screen the palette was opened from means
the palette can never offer an action the keys do not (or miss one): a key
that does not apply now is left out, as it is greyed in the footer.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from tui_ca.tui.screens.help import key_name


class ActionsProvider(Provider):
    """One command per enabled binding of the current screen, its focused widget and the app."""

    def _commands(self) -> list[tuple[str, str, DOMNode, str]]:
        found: dict[str, tuple[str, str, DOMNode, str]] = {}
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not active.enabled or binding.action.startswith("command_palette") or not binding.description:
                continue
            name = binding.description
            if name in found:
                continue
            help_text = f"{key_name(key)} — {binding.tooltip or active.tooltip or name}"
            found[name] = (name, help_text, active.node, binding.action)
        return sorted(found.values(), key=lambda c: c[0].casefold())

    async def _run(self, node: DOMNode, action: str) -> None:
        await self.app.run_action(action, node)

    async def discover(self) -> Hits:
        for name, help_text, node, action in self._commands():
            yield DiscoveryHit(name, partial(self._run, node, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, node, action in self._commands():
            score = max(matcher.match(name), matcher.match(help_text) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self._run, node, action), help=help_text)
