"""The ``tui-ca`` console script: through this user's command server when one listens, else here.

It imports only what finding the server costs (``os`` and a stat of its
socket) until it knows which path the command takes.
"""

from __future__ import annotations

import os
import sys

from tui_ca.command_socket import SWITCH_ENV, socket_path


def entry_point() -> None:
    """Run ``sys.argv`` by a command server (tui_ca/command_client.py) if it takes it, else here; never returns.

    Not annotated ``NoReturn``: importing ``typing`` would cost every command ~3 ms.
    """
    if os.environ.get(SWITCH_ENV, "").lower() != "off":
        path = socket_path()
        if os.path.exists(path):
            from tui_ca.command_client import run_through_server

            code = run_through_server(sys.argv[1:], path)
            if code is not None:
                os._exit(code)
    from tui_ca.cli import entry_point as run_here

    run_here()
