"""Where a CA home lives: ``--home``, else ``$TUI_CA_HOME``, else the user data dir."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_home(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit.expanduser()
    if env := os.environ.get("TUI_CA_HOME"):
        return Path(env).expanduser()
    # Only here: platformdirs costs a command's start-up more than it saves when --home is given.
    from platformdirs import user_data_path

    return user_data_path("tui-ca") / "ca"
