"""The confirm and certificate screens say when no TLS stack will accept the certificate by name (issue 12)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from tui_support import ADMIN, clock, demo_home, fixture_keys, make_app, pilot_test, screen_lines, settle, until  # noqa: F401

from tui_ca.engine import CertificateAuthority
from tui_ca.tui.screens.certificate import CertificateScreen
from tui_ca.tui.screens.request import RequestScreen

WARNING = "TLS stacks will not accept it by name"


def queue_cn_only(home, clock, cn: str) -> int:
    """A request whose CSR has only a CN (the README's own recipe)."""
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(fixture_keys()[8], hashes.SHA256()))  # fmt: skip
    return CertificateAuthority(home, clock=clock).submit(csr.public_bytes(Encoding.PEM)).request.id


async def shown_on(app, pilot, screen) -> str:
    app.push_screen(screen)
    await until(pilot, lambda: app.screen is screen and getattr(screen, "view", True) is not None)
    await settle(pilot)
    return " ".join(" ".join(screen_lines(app)).split())


@pilot_test
async def test_a_cn_that_is_no_host_name_is_warned_about_before_and_after_approval(demo_home, clock):
    request_id = queue_cn_only(demo_home, clock, "Alice Smith")
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert WARNING in await shown_on(app, pilot, RequestScreen(request_id))
        await pilot.press("escape")
        CertificateAuthority(demo_home, clock=clock, actor=ADMIN).approve([request_id])
        await settle(pilot)
        assert WARNING in await shown_on(app, pilot, CertificateScreen(request_id))


@pilot_test
async def test_a_cn_that_is_a_host_name_becomes_a_san_and_is_not_warned_about(demo_home, clock):
    request_id = queue_cn_only(demo_home, clock, "host-7.example.net")
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        shown = await shown_on(app, pilot, RequestScreen(request_id))
        assert "DNS:host-7.example.net" in shown and WARNING not in shown
