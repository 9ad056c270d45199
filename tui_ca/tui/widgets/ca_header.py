"""The header pane: the signing certificate and how fresh the CRL is."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from tui_ca.engine import CAInfo, NameFields
from tui_ca.tui.crl import needs_warning
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
    if needs_warning(info, now):
        return Text(f"⚠ CRL {info.crl_number} goes stale in {span(info.crl_next_update - now)}: publish a new one",
                    style="bold yellow")  # fmt: skip
    return Text(f"CRL {info.crl_number}, next update in {span(info.crl_next_update - now)}")


class CAHeader(Static):
    """Issuer, Subject, validity of the signing certificate and CRL freshness."""

    _crl_shown: tuple[CAInfo, str] | None = None
    expiring: int | None = None
    """Valid certificates ending within 30 days (``None`` until counted)."""

    def show_expiring(self, count: int) -> None:
        self.expiring = count
        if self._crl_shown is not None:
            self.show(self._crl_shown[0], self._now)

    def tick(self, now: datetime) -> None:
        """Follow the clock: redraw only when the CRL line would read differently."""
        if self._crl_shown is not None and str(crl_freshness(self._crl_shown[0], now)) != self._crl_shown[1]:
            self.show(self._crl_shown[0], now)

    def show(self, info: CAInfo, now: datetime) -> None:
        freshness = crl_freshness(info, now)
        self._crl_shown = (info, str(freshness))
        self._now = now
        self.set_class(needs_warning(info, now), "crl-warning")
        validity = Text()
        validity.append("Not before ", style="dim")
        validity.append(when(info.not_before))
        validity.append("  Not after ", style="dim")
        validity.append(when(info.not_after))
        self.update(facts([
            ("Issuer", _name(info.issuer, with_email=True)),
            ("Subject", _name(info.subject, with_email=False)),
            ("Valid", validity),
            ("CRL", freshness + self._expiring_text()),
        ], label_width=8))  # fmt: skip

    def _expiring_text(self) -> Text:
        if not self.expiring:
            return Text("")
        plural = "s end" if self.expiring != 1 else " ends"
        return Text(f"   ⚠ {self.expiring:,} certificate{plural} within 30 days (x)", style="bold yellow")
