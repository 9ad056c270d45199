"""Turning requester-controlled strings into safe, literal ``rich.text.Text``.

Anything that came from a CSR or a requester is data. It is never parsed as
markup (``Text`` objects, not strings), and characters that could move the
cursor, clear the screen or reorder a line (C0/C1 controls, bidi overrides and
other format characters) are shown as visible escapes instead.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from rich.text import Text

# Categories a terminal may act on rather than draw: controls (Cc), format
# characters such as bidi overrides (Cf), line/paragraph separators (Zl, Zp),
# surrogates and unassigned code points.
_HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
# Long values are cut for display; the full value is never needed to decide.
MAX_SHOWN = 200


def visible(value: str | None, limit: int = MAX_SHOWN) -> str:
    """``value`` with every non-printing character written as an escape."""
    if value is None:
        return "-"
    if value.isprintable():
        # The common case, checked in C: nothing a terminal would act on.
        return value if len(value) <= limit else value[: limit - 1] + "…"
    out = []
    for ch in value:
        if ch == " " or unicodedata.category(ch) not in _HIDDEN:
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def literal(value: str | None, style: str = "", limit: int = MAX_SHOWN) -> Text:
    """Untrusted text as a ``Text`` that shows exactly what was sent."""
    return Text(visible(value, limit), style=style, no_wrap=False, overflow="fold")


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def day(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d")


def span(delta: timedelta) -> str:
    """A rough, readable duration: ``3d``, ``5h``, ``12m``."""
    seconds = int(abs(delta.total_seconds()))
    if seconds >= 86400:
        return f"{seconds // 86400}d"
    if seconds >= 3600:
        return f"{seconds // 3600}h"
    return f"{max(seconds // 60, 0)}m"


def days_left(not_after: datetime, now: datetime) -> int:
    return (not_after - now).days


def reading_lines(groups: str, per_line: int = 8) -> str:
    """A grouped fingerprint as lines of eight groups, so no group is split when read aloud."""
    parts = groups.split()
    return "\n".join(" ".join(parts[i : i + per_line]) for i in range(0, len(parts), per_line))
