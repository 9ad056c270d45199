"""The CRL never lapses unnoticed: re-published at half its life, a warning in its last day."""

from __future__ import annotations

from datetime import timedelta

from helpers import csr_pem, make_csr
from tui_ca.engine import CertificateAuthority
from tui_ca.tui.screens.dialogs import PassphraseDialog
from tui_ca.tui.screens.main import MainScreen
from tui_support import DEMO_CA_NAMES, clock, demo_home, make_app, pilot_test, polls, settle, until  # noqa: F401


def _header_text(app) -> str:
    header = app.screen.query_one("#ca-header")
    return "\n".join("".join(s.text for s in header.render_line(y)) for y in range(header.size.height))


@pilot_test
async def test_past_half_its_life_the_crl_is_republished_once(demo_home, clock):
    reader = CertificateAuthority(demo_home, clock=clock)
    before = reader.info()
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await polls(pilot, 3)
        assert reader.info().crl_number == before.crl_number  # not due yet: nothing published
        clock.now = before.crl_this_update + (before.crl_next_update - before.crl_this_update) / 2 + timedelta(minutes=1)
        await until(pilot, lambda: reader.info().crl_number == before.crl_number + 1)
        await until(pilot, lambda: f"CRL {before.crl_number + 1}, next update in 7d" in _header_text(app))
        assert any(f"CRL {before.crl_number} had passed half its life" in n.message for n in app._notifications)
        await polls(pilot, 5)  # several polls later, still one new CRL
        await settle(pilot)
    assert reader.info().crl_number == before.crl_number + 1
    assert [r.target for r in reader.audit_records() if r.action == "crl"][-2:] == [
        f"CRL {before.crl_number}", f"CRL {before.crl_number + 1}"]


@pilot_test
async def test_a_locked_key_is_asked_for_once_and_the_last_day_is_a_warning(tmp_path, clock):
    home = tmp_path / "locked"
    CertificateAuthority(home, clock=clock, passphrase=b"correct horse").init(DEMO_CA_NAMES)
    CertificateAuthority(home, clock=clock).submit(csr_pem(make_csr("ec-p256", cn="p1")))
    reader = CertificateAuthority(home, clock=clock)
    first = reader.info()
    app = make_app(home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, PassphraseDialog)
        await pilot.press("escape")  # the admin only wants to look
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        assert "next update in 7d" in _header_text(app) and not app.screen.query_one("#ca-header").has_class(
            "crl-warning")
        # Less than a day before the next update (and so past half its life).
        clock.now = first.crl_next_update - timedelta(hours=20)
        await until(pilot, lambda: isinstance(app.screen, PassphraseDialog))
        assert "re-publish the CRL" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))
        await until(pilot, lambda: "goes stale in 20h" in _header_text(app))
        assert app.screen.query_one("#ca-header").has_class("crl-warning")
        assert any(f"CRL {first.crl_number} was not re-published" in n.message for n in app._notifications)
        await polls(pilot, 5)  # asked once for this CRL, not at every poll
        assert isinstance(app.screen, MainScreen)
    assert reader.info().crl_number == first.crl_number


@pilot_test
async def test_a_passphrase_given_for_the_crl_publishes_it(tmp_path, clock):
    home = tmp_path / "locked"
    CertificateAuthority(home, clock=clock, passphrase=b"correct horse").init(DEMO_CA_NAMES)
    reader = CertificateAuthority(home, clock=clock)
    first = reader.info()
    app = make_app(home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("escape")
        clock.now = first.crl_next_update - timedelta(days=2)
        await until(pilot, lambda: isinstance(app.screen, PassphraseDialog))
        await pilot.press(*"correct horse", "enter")
        await until(pilot, lambda: reader.info().crl_number == first.crl_number + 1, timeout=20)
