"""CAReader.iter_serials: the serial of every certificate issued, whatever became of it."""

from __future__ import annotations

from tests.engine.test_listing import populate
from tui_ca.engine.reader import CAReader


def test_iter_serials_gives_every_issued_certificate_revoked_and_expired_included(ca, clock, home):
    populate(ca, clock)
    serials = list(CAReader(home).iter_serials())
    assert serials == [cert.serial for cert in ca.iter_certificates()]
    assert len(serials) == 4 and len(set(serials)) == 4  # three approved, one short-lived; one revoked, one expired


def test_change_token_is_local_for_the_file_and_memory_stores_only(ca, home, backend):
    assert CAReader(home).change_token_is_local() is (backend != "postgresql")
