"""First run with a passphrase: the CA keys are written encrypted, and the session stays unlocked."""

from __future__ import annotations

import pytest
from textual.widgets import Input
from tui_support import clock, make_app, pilot_test, settle, until  # noqa: F401 (fixture)

from tui_ca.engine import CertificateAuthority, KeyLockedError
from tui_ca.tui.screens.dialogs import PassphraseDialog
from tui_ca.tui.screens.first_run import FirstRunScreen
from tui_ca.tui.screens.main import MainScreen

SECRET = "tr0ub4dor & 3"


def _error(app) -> str:
    return str(app.screen.query_one("#first-run-error").render())


@pilot_test
async def test_first_run_with_a_passphrase_encrypts_the_ca_keys(tmp_path, clock):
    home = tmp_path / "new"
    app = make_app(home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, FirstRunScreen)
        app.screen.query_one("#cn", Input).value = "Lab Issuing CA"
        app.screen.query_one("#passphrase", Input).value = SECRET
        app.screen.query_one("#passphrase-again", Input).value = SECRET + "x"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "differ" in _error(app))
        app.screen.query_one("#passphrase", Input).value = "short"
        app.screen.query_one("#passphrase-again", Input).value = "short"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "at least 8" in _error(app))
        assert not CertificateAuthority(home).exists()
        app.screen.query_one("#passphrase", Input).value = SECRET
        app.screen.query_one("#passphrase-again", Input).value = SECRET
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.ready_event.is_set(), timeout=20)
        await settle(pilot)
        # The passphrase was just typed twice: the session is not asked for it again.
        assert not any(isinstance(s, PassphraseDialog) for s in app.screen_stack)
        assert app.ca.info().key_encrypted
    assert CertificateAuthority(home).key_is_encrypted()
    CertificateAuthority(home, passphrase=SECRET.encode()).unlock()
    with pytest.raises(KeyLockedError):
        CertificateAuthority(home, passphrase=b"not the passphrase").unlock()


@pilot_test
async def test_first_run_without_a_passphrase_leaves_the_keys_unencrypted(tmp_path, clock):
    home = tmp_path / "plain"
    app = make_app(home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.screen.query_one("#cn", Input).value = "Lab Issuing CA"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.ready_event.is_set(), timeout=20)
    assert not CertificateAuthority(home).key_is_encrypted()
