"""A fresh SoftHSM2 token per test, found through SOFTHSM2_CONF (set for this process and children)."""

from __future__ import annotations

import pytest

from tests.hsm.softhsm import SoftToken, make_token


@pytest.fixture
def soft(tmp_path, monkeypatch) -> SoftToken:
    made = make_token(tmp_path / "hsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(made.conf))
    return made


@pytest.fixture(autouse=True)
def _close_shared_sessions():
    """Each test's token is its own: the process-wide sessions of the last one are closed, and
    SoftHSM2 is finalised so that it reads the next test's SOFTHSM2_CONF when next loaded."""
    yield
    import pkcs11

    from tui_ca.engine import token_keys

    for session in list(token_keys._SHARED.values()):
        session.close()
    for library in pkcs11._loaded.values():
        library.finalize()
