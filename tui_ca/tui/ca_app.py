"""``ca_app(node)``: the running app, typed as the ``CAApp`` it is.

Textual types ``node.app`` as ``App[Any]``, so mypy knows nothing of the CA's
own attributes there (``ca``, ``home``, ``operate``, ``export_dir``). Every
screen of tui-ca runs inside a ``CAApp``; this says so in one place. It is a
``cast``: nothing is looked up or checked at run time, and the app module is
not imported (the screens load before it is needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from tui_ca.tui.app import CAApp


def ca_app(node: MessagePump) -> CAApp:
    """``node.app`` as a ``CAApp``."""
    return cast("CAApp", node.app)
