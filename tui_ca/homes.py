"""Where a CA home lives: ``--home``, else ``$TUI_CA_HOME``, else the user data dir."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_path


def resolve_home(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit.expanduser()
    if env := os.environ.get("TUI_CA_HOME"):
        return Path(env).expanduser()
    return user_data_path("tui-ca") / "ca"
