"""The header pane: the signing certificate and how fresh the CRL is."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from tui_ca.engine import CAInfo, NameFields
from tui_ca.tui.text import span, visible, when
from tui_ca.tui.widgets.details import facts


def _name(fields: NameFields, with_email: bool) -> Text:
    line = Text()
    for key, value in fields.as_pairs():
        if key == "emailAddress" and not with_email:
            continue
        if line:
            line.append("  ")
        line.append(f"{key}=", style="dim")
        line.append(visible(value, 80))
    return line


def crl_freshness(info: CAInfo, now: datetime) -> Text:
    if info.crl_next_update is None:
        return Text("no CRL published yet", style="bold red")
    if now >= info.crl_next_update:
        return Text(f"CRL {info.crl_number} stale for {span(now - info.crl_next_update)}: publish a new one",
                    style="bold red")  # fmt: skip
    return Text(f"CRL {info.crl_number}, next update in {span(info.crl_next_update - now)}")


class CAHeader(Static):
    """Issuer, Subject, validity of the signing certificate and CRL freshness."""

    def show(self, info: CAInfo, now: datetime) -> None:
        validity = Text()
        validity.append("Not before ", style="dim")
        validity.append(when(info.not_before))
        validity.append("  Not after ", style="dim")
        validity.append(when(info.not_after))
        self.update(facts([
            ("Issuer", _name(info.issuer, with_email=True)),
            ("Subject", _name(info.subject, with_email=False)),
            ("Valid", validity),
            ("CRL", crl_freshness(info, now)),
        ], label_width=8))  # fmt: skip
