"""Release a hold from the certificate screen; how a request arrived; keys greyed by the admin's roles.

Issues 12/13 (unhold in the UI), 11 (the arrival details on the confirm
screen) and 15 (roles: what the role does not allow is greyed, and said).
"""

from __future__ import annotations

import grp
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from tui_support import (  # noqa: F401
    ADMIN,
    clock,
    demo_home,
    fixture_keys,
    make_app,
    pilot_test,
    recorded_notices,
    screen_lines,
    settle,
    until,
)

from tui_ca.engine import Actor, CertificateAuthority, RevocationReason
from tui_ca.engine.approval_policy import ApprovalPolicy
from tui_ca.engine.roles import Identity, RoleGroups
from tui_ca.tui.screens.certificate import CertificateScreen
from tui_ca.tui.screens.dialogs import ApproveDialog, ConfirmDialog
from tui_ca.tui.screens.request import RequestScreen
from tui_ca.tui.widgets.record_list import RecordList

TRANSACTION = "3F2A9C1E5B7D4F60A1B2C3D4E5F60718"


def hold(home, clock, cert_id: int = 1) -> int:
    """Put the certificate on hold; the CRL number after it."""
    ca = CertificateAuthority(home, clock=clock, actor=ADMIN)
    ca.revoke(cert_id, RevocationReason.CERTIFICATE_HOLD)
    return ca.info().crl_number


def queue_scep_request(home, clock) -> int:
    """A request as the SCEP service queues it (transaction ID, a matched challenge), from the spare fixture key."""
    key = fixture_keys()[8]
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vpn-gw-3.example.net")]))
           .sign(key, hashes.SHA256()))  # fmt: skip
    ca = CertificateAuthority(home, clock=clock)
    from cryptography.hazmat.primitives.serialization import Encoding

    result = ca.submit(csr.public_bytes(Encoding.PEM), source="scep", actor=Actor("scep", "198.51.100.40"),
                       note={"scep_transaction_id": TRANSACTION, "challenge": "matched"})  # fmt: skip
    return result.request.id


def lack_roles(home, clock) -> str:
    """Roles on, with approving left to this user's group and revoking to a group it is not in."""
    me = Identity.of_process()
    other = next(g.gr_name for g in grp.getgrall() if g.gr_name not in me.groups)
    ca = CertificateAuthority(home, clock=clock)
    ca.set_policy(ApprovalPolicy(), RoleGroups(approver=grp.getgrgid(os.getgid()).gr_name, revoker=other))
    return other


# ---------------------------------------------------------------- unhold


@pilot_test
async def test_a_held_certificate_is_released_from_its_screen_after_confirmation(demo_home, clock):
    entries_before = CertificateAuthority(demo_home).crl_state().entries
    crl_before = hold(demo_home, clock)
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        said = recorded_notices(app)
        await settle(pilot)
        app.push_screen(CertificateScreen(1))
        await until(pilot, lambda: isinstance(app.screen, CertificateScreen) and app.screen.cert is not None)
        await settle(pilot)
        screen = app.screen
        assert screen.check_action("unhold", ()) is True and screen.check_action("revoke", ()) is None
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = str(app.screen.query_one(".dialog-body").render())
        assert "put on hold" in body and "new CRL without it" in body
        await pilot.press("n")  # no: nothing changes
        await until(pilot, lambda: app.screen is screen)
        assert CertificateAuthority(demo_home).certificate(1).revoked_at is not None
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, lambda: screen.cert is not None and screen.cert.revoked_at is None)
        ca = CertificateAuthority(demo_home)
        assert ca.certificate(1).revoked_at is None and ca.info().crl_number == crl_before + 1
        assert ca.crl_state().entries == entries_before
        await until(pilot, lambda: any("released from hold" in n and f"CRL {crl_before + 1}" in n for n in said))
        # Valid again: the release key is gone, revoking applies again.
        await settle(pilot)
        assert screen.check_action("unhold", ()) is False and screen.check_action("revoke", ()) is True


@pilot_test
async def test_release_is_not_offered_for_a_valid_or_finally_revoked_certificate(demo_home, clock):
    CertificateAuthority(demo_home, clock=clock).revoke(2, RevocationReason.KEY_COMPROMISE)
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for cert_id in (1, 2):
            app.push_screen(CertificateScreen(cert_id))
            await until(pilot, lambda: isinstance(app.screen, CertificateScreen) and app.screen.cert is not None)
            await settle(pilot)
            assert app.screen.check_action("unhold", ()) is False
            await pilot.press("u")
            await settle(pilot)
            assert isinstance(app.screen, CertificateScreen)
            await pilot.press("escape")
            await settle(pilot)


# ---------------------------------------------------------------- arrival


@pilot_test
async def test_the_confirm_screen_says_how_the_request_arrived(demo_home, clock):
    request_id = queue_scep_request(demo_home, clock)
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.push_screen(RequestScreen(request_id))
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.view is not None)
        await settle(pilot)
        shown = " ".join(" ".join(screen_lines(app)).split())
        assert f"via SCEP, transaction ID {TRANSACTION}, challenge matched, sent by scep from 198.51.100.40" in shown
        await pilot.press("escape")
        await settle(pilot)
        app.push_screen(RequestScreen(6))  # the demo's first queued request, typed at the CLI
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.view is not None)
        await settle(pilot)
        shown = " ".join(" ".join(screen_lines(app)).split())
        assert "via CLI, sent by" in shown and "transaction ID" not in shown


@pilot_test
async def test_an_arrival_detail_from_a_client_is_shown_literally(demo_home, clock):
    request_id = queue_scep_request(demo_home, clock)
    ca = CertificateAuthority(demo_home, clock=clock)
    hostile = "[red]x[/]\x1b[2J"
    with ca.store.transaction() as txn:
        txn.put_request({**txn.get_request(request_id), "note": {"scep_transaction_id": hostile}})
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.push_screen(RequestScreen(request_id))
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.view is not None)
        await settle(pilot)
        shown = " ".join(" ".join(screen_lines(app)).split())
        assert "transaction ID [red]x[/]\\x1b[2J" in shown


# ---------------------------------------------------------------- roles


@pilot_test
async def test_keys_the_role_does_not_allow_are_greyed_and_say_why(demo_home, clock):
    hold(demo_home, clock, cert_id=1)
    group = lack_roles(demo_home, clock)
    me = Identity.of_process().user
    app = make_app(demo_home, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        said = recorded_notices(app)
        await settle(pilot)
        await until(pilot, lambda: app.denied)
        main = app.screen
        assert set(app.denied) == {"revoke", "unhold"}
        note = str(main.query_one("#roles-note").render())
        assert f"Roles: {me} may not revoke or release holds (needs the revoker role, group '{group}')" in note
        # Approving is this user's role: it still works from the list.
        assert main.check_action("approve", ()) is True
        await pilot.press("tab")
        await settle(pilot)
        assert main.focused.id == "certs" and main.check_action("revoke", ()) is None
        from tui_ca.tui.palette import ActionsProvider

        assert "Revoke" not in [name for name, *_ in ActionsProvider(main)._commands()]
        await pilot.press("v")
        await until(pilot, lambda: any(f"{me} may not revoke: that needs the revoker role" in n for n in said))
        assert app.screen is main
        # Bulk: marks do not open a door the role closes.
        await pilot.press("asterisk", "v")
        await settle(pilot)
        assert app.screen is main and main.check_action("revoke", ()) is None

        app.push_screen(CertificateScreen(1))
        await until(pilot, lambda: isinstance(app.screen, CertificateScreen) and app.screen.cert is not None)
        await settle(pilot)
        assert app.screen.check_action("unhold", ()) is None and app.screen.check_action("revoke", ()) is None
        await pilot.press("u")
        await until(pilot, lambda: any(f"{me} may not unhold" in n for n in said))
        assert isinstance(app.screen, CertificateScreen)
        assert CertificateAuthority(demo_home).certificate(1).revoked_at is not None
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("shift+tab")
        await settle(pilot)
        assert main.focused.id == "queued"
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApproveDialog))


@pilot_test
async def test_an_admin_who_may_not_approve_sees_it_greyed_on_the_confirm_screen(demo_home, clock):
    me = Identity.of_process()
    other = next(g.gr_name for g in grp.getgrall() if g.gr_name not in me.groups)
    CertificateAuthority(demo_home, clock=clock).set_policy(ApprovalPolicy(), RoleGroups(approver=other))
    audit_before = len(CertificateAuthority(demo_home).audit_records())
    app = make_app(demo_home, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        said = recorded_notices(app)
        await settle(pilot)
        await until(pilot, lambda: app.denied)
        assert set(app.denied) == {"approve", "reject", "revoke", "unhold"}
        app.push_screen(RequestScreen(6))
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.view is not None)
        await settle(pilot)
        assert app.screen.check_action("approve", ()) is None and app.screen.check_action("reject", ()) is None
        await pilot.press("a")
        await until(pilot, lambda: any(f"{me.user} may not approve" in n for n in said))
        assert isinstance(app.screen, RequestScreen)
        queued = app.screen_stack[1].query_one("#queued", RecordList)
        assert 6 in queued.keys()
    # Nothing reached the engine, so nothing was refused there either.
    assert len(CertificateAuthority(demo_home).audit_records()) == audit_before
