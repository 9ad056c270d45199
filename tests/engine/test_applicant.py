"""Requester identity in the engine (applicant.py): which names each applicant may take, checked in the submit.

These run on every store backend; the same rules through a real server are in
tests/server/test_identity.py and tests/scep/test_scep_identity.py.
"""

from __future__ import annotations

import pytest
from helpers import csr_pem, make_csr, make_key, snapshot_home

from tui_ca.engine import RevocationReason, RuleError
from tui_ca.engine.applicant import Applicant, NamePatterns, RequesterNotAllowed, check_pattern
from tui_ca.engine.errors import InputError


def _csr(cn: str) -> bytes:
    return csr_pem(make_csr(cn=cn))


def test_the_admin_submits_for_any_name_and_hears_every_id(ca):
    first = ca.submit(_csr("desk-1"), requester="someone")
    assert (first.request.requester, first.request.via) == ("someone", "admin")
    with pytest.raises(RuleError) as refused:
        ca.submit(_csr("desk-2"), requester="someone")
    assert refused.value.public == str(refused.value) and str(first.request.id) in refused.value.public


def test_a_certificate_applicant_keeps_its_requester(ca):
    [done] = ca.approve([ca.submit(_csr("phone-1"), requester="Phone-1").request.id])
    holder = Applicant.certificate(done.certificate)
    with pytest.raises(RequesterNotAllowed, match="only as requester 'Phone-1', not 'phone-2'"):
        ca.submit(_csr("phone-2"), applicant=holder)
    renewal = ca.submit(_csr("phone-1"), applicant=holder, renewal_of=done.certificate.id)
    assert (renewal.request.requester, renewal.request.via) == ("Phone-1", "certificate")


def test_a_certificate_renews_only_itself(ca, home):
    [one] = ca.approve([ca.submit(_csr("cam-1")).request.id])
    [two] = ca.approve([ca.submit(_csr("cam-2")).request.id])
    before = snapshot_home(home)
    with pytest.raises(RequesterNotAllowed) as refused:
        ca.submit(_csr("cam-2"), applicant=Applicant.certificate(one.certificate), renewal_of=two.certificate.id)
    assert str(two.certificate.id) not in refused.value.public
    assert snapshot_home(home) == before


def test_a_user_is_itself_unless_the_name_is_mapped(ca):
    user = Applicant.user("lab-admin", ("lab-*",))
    assert ca.submit(_csr("LAB-4"), applicant=user).request.requester == "LAB-4"
    assert ca.submit(_csr("printer-1"), applicant=user).request.requester == "lab-admin"
    with pytest.raises(RequesterNotAllowed):
        ca.submit(_csr("x"), requester="printer-1", applicant=user)


def test_anonymous_may_not_take_reserved_or_authenticated_names(ca, home):
    anonymous = Applicant.anonymous(NamePatterns(("bob", "lab-*")))
    queued = ca.submit(_csr("desk-9"), requester="desk-9").request  # the admin's
    before = snapshot_home(home)
    for name in ("Bob", "lab-x", "desk-9"):
        with pytest.raises(RequesterNotAllowed) as refused:
            ca.submit(_csr(name), applicant=anonymous)
        assert "authenticated client" in refused.value.public and f" {queued.id}" not in refused.value.public
    assert snapshot_home(home) == before
    assert ca.submit(_csr("kiosk-1"), applicant=anonymous).request.via == "anonymous"


def test_anonymous_refusals_name_no_ids_but_the_message_keeps_them(ca):
    anonymous = Applicant.anonymous()
    key = make_key("ec-p256", fresh=True)
    first = ca.submit(csr_pem(make_csr(key, cn="kiosk-2")), applicant=anonymous).request
    with pytest.raises(RuleError) as queued:
        ca.submit(_csr("kiosk-2"), applicant=anonymous)
    assert f"request {first.id}" in str(queued.value) and f" {first.id} " not in queued.value.public
    [done] = ca.approve([first.id])
    serial = done.certificate.serial_hex
    with pytest.raises(RuleError) as active:
        ca.submit(_csr("kiosk-2"), applicant=anonymous)
    assert serial in str(active.value) and serial not in active.value.public
    ca.revoke(done.certificate.id, RevocationReason.KEY_COMPROMISE)
    with pytest.raises(RuleError) as compromised:
        ca.submit(csr_pem(make_csr(key, cn="kiosk-3")), applicant=anonymous)
    assert f"certificate {first.id}" in str(compromised.value)
    assert "keyCompromise" in compromised.value.public and "certificate" not in compromised.value.public


def test_a_strangers_queued_csr_is_not_handed_back(ca):
    csr = _csr("lab-2")
    mine = ca.submit(csr, applicant=Applicant.user("lab-admin", ("lab-*",))).request
    assert ca.submit(csr, applicant=Applicant.user("lab-admin", ("lab-*",))).request.id == mine.id
    for stranger in (Applicant.anonymous(), Applicant.user("bob")):
        with pytest.raises(RequesterNotAllowed) as refused:
            ca.submit(csr, applicant=stranger)
        assert str(mine.id) not in refused.value.public


def test_a_pattern_of_only_stars_is_refused():
    with pytest.raises(InputError):
        check_pattern("**")
    assert NamePatterns(("a*c",)).matches("ABBC") and not NamePatterns(("a*c",)).matches("abcd")
