"""Folders a CA home needs, private whatever the umask.

``mkdir(mode=0o700)`` is masked by the umask, and ``parents=True`` makes the
missing parents with the default mode; a umask of 0o002 or 0o022 is common,
one of 0o277 would even leave the owner unable to write. Each folder this
creates is therefore set to 0700 explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path


def make_private_dirs(path: Path, mode: int = 0o700) -> None:
    """``mkdir -p`` where every folder made (the leaf and any missing parent) is ``mode`` (0700)."""
    missing: list[Path] = []
    current = Path(os.path.abspath(path))
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, mode)
