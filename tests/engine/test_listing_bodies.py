"""Certificate listings come from the listing bodies the store keeps, and always say what the records say.

A fresh CertificateAuthority (nothing in memory) lists from the kept bodies;
these tests change certificates in every way the engine can, change shards
by hand, damage them, and take a home from before the bodies, and compare the
listing with the records each time.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import CertificateAuthority, CertStatus, RevocationReason
from tui_ca.engine.store import StoreDamagedError, listing_files

KEY = ec.generate_private_key(ec.SECP256R1())


def issue_many(ca, count: int, prefix: str, **approve) -> list:
    csrs = [
        (x509.CertificateSigningRequestBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix}-{i}")]))
         .sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), None)
        for i in range(count)
    ]  # fmt: skip
    requests = ca.submit_many(csrs)
    return [o.certificate for o in ca.approve([r.request.id for r in requests], **approve)]


def openssl_form(hex_serial: str) -> str:
    digits = format(int(hex_serial, 16), "X")
    return digits.zfill(len(digits) + len(digits) % 2)


def expected(ca, status=None) -> tuple[list, list]:
    """Rows and JSON objects as the records say (through the per-record dicts)."""
    dicts = list(ca.iter_certificate_dicts(status))
    for item in dicts:
        item["serial"] = openssl_form(item["serial"])
    rows = [(d["id"], d["status"], d["requester"], d["not_after"], d["serial"]) for d in dicts]
    return rows, dicts


def listed(ca, status=None) -> tuple[list, list]:
    chunks = list(ca.iter_certificate_json(status))
    assert all(chunk.endswith("\n") and chunk for chunk in chunks)
    objects = [json.loads(line) for chunk in chunks for line in chunk.splitlines()]
    return list(ca.iter_certificate_rows(status)), objects


def assert_lists_agree(home, clock) -> None:
    fresh = CertificateAuthority(home, clock=clock)
    for status in (None, *CertStatus):
        assert listed(fresh, status) == expected(fresh, status), status


def test_listings_say_what_the_records_say_through_every_change(ca, home, clock):
    certs = issue_many(ca, 300, "spread")  # two ID shards
    short = issue_many(ca, 3, "short", days=5)
    assert_lists_agree(home, clock)
    ca.revoke(certs[0].id, RevocationReason.KEY_COMPROMISE)
    ca.revoke(certs[280].id, RevocationReason.CERTIFICATE_HOLD)
    assert_lists_agree(home, clock)
    clock.now += timedelta(days=6)  # the short ones expire: the kept bodies say "valid" until now
    assert_lists_agree(home, clock)
    ca.unhold(certs[280].id)
    assert_lists_agree(home, clock)
    rows = list(CertificateAuthority(home, clock=clock).iter_certificate_rows(CertStatus.EXPIRED))
    assert [row[0] for row in rows] == [c.id for c in short]


def test_a_requester_name_is_listed_exactly_as_stored(ca, home, clock):
    # Intake refuses names like this; a record written by an older version may still hold one.
    name = 'odd "name"\t\x1b[31m \u00e9\u2028\\'
    (cert,) = issue_many(ca, 1, "odd")
    with ca.store.transaction() as txn:
        doc = txn.get_certificate(cert.id)
        txn.put_certificate({**doc, "requester": name})
    (row,) = CertificateAuthority(home, clock=clock).iter_certificate_rows()
    assert row[2] == name
    assert_lists_agree(home, clock)


@pytest.mark.tinydb_only
def test_a_listing_reads_the_kept_bodies_not_the_records(ca, home, clock, monkeypatch):
    issue_many(ca, 300, "kept")
    assert sorted(p.name for p in (home / "db" / "listing").iterdir()) == ["00000.txt", "00001.txt"]

    def no_render(*args):
        raise AssertionError("a listing parsed the records although the bodies hold")

    monkeypatch.setattr(listing_files, "_render", no_render)
    fresh = CertificateAuthority(home, clock=clock)
    assert len(list(fresh.iter_certificate_rows())) == 300
    assert sum(chunk.count("\n") for chunk in fresh.iter_certificate_json()) == 300


@pytest.mark.tinydb_only
def test_a_shard_changed_by_hand_is_listed_from_its_records(ca, home, clock):
    certs = issue_many(ca, 5, "hand")
    shard = home / "db" / "certs" / "00000.json"
    data = json.loads(shard.read_text())
    data["certs"][str(certs[2].id)]["requester"] = "edited-by-hand"
    shard.write_text(json.dumps(data))
    rows = list(CertificateAuthority(home, clock=clock).iter_certificate_rows())
    assert rows[2][2] == "edited-by-hand"
    assert_lists_agree(home, clock)


@pytest.mark.tinydb_only
@pytest.mark.parametrize("damage", [b"null", b"", b"[]", b'{"certs": {"1": 5}}'])
def test_a_damaged_shard_is_refused_by_name_although_its_body_is_kept(ca, home, clock, damage):
    issue_many(ca, 3, "damaged")
    shard = home / "db" / "certs" / "00000.json"
    shard.write_bytes(damage)
    fresh = CertificateAuthority(home, clock=clock)
    for listing in (fresh.iter_certificate_rows, fresh.iter_certificate_json):
        with pytest.raises(StoreDamagedError, match=str(shard)):
            list(listing())


@pytest.mark.tinydb_only
@pytest.mark.parametrize("body", [b"", b"garbage", b'{"v": 2, "shard": [1, 2], "body": [0, 0], "rows": [0, 0]}\n',
                                  b'{"v": 99, "shard": [0, 0], "body": [0, 0]}\n'])  # fmt: skip
def test_a_body_file_that_is_not_the_shard_s_is_never_trusted(ca, home, clock, body):
    issue_many(ca, 3, "bodies")
    (home / "db" / "listing" / "00000.txt").write_bytes(body)
    assert_lists_agree(home, clock)


@pytest.mark.tinydb_only
def test_a_home_from_before_the_bodies_gets_them_all_in_its_next_commit(ca, home, clock):
    certs = issue_many(ca, 300, "old")
    before = listed(CertificateAuthority(home, clock=clock))
    shutil.rmtree(home / "db" / "listing")
    meta_file = home / "db" / "meta" / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["meta"]["1"][listing_files.LISTED]
    meta_file.write_text(json.dumps(meta))
    old = CertificateAuthority(home, clock=clock)
    assert listed(old) == before  # made from the records meanwhile
    old.revoke(certs[-1].id, RevocationReason.SUPERSEDED)  # touches the second shard only
    assert sorted(p.name for p in (home / "db" / "listing").iterdir()) == ["00000.txt", "00001.txt"]
    assert json.loads(meta_file.read_text())["meta"]["1"][listing_files.LISTED] is True
    assert_lists_agree(home, clock)


@pytest.mark.tinydb_only
def test_a_commit_that_fails_before_its_commit_point_writes_no_body(ca, home, clock, monkeypatch):
    from tui_ca.engine.store import files as files_module

    certs = issue_many(ca, 3, "fail")
    body = home / "db" / "listing" / "00000.txt"
    kept = body.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module, "_write_durably", full_disk)
    with pytest.raises(Exception, match="No space left"):
        ca.revoke(certs[0].id, RevocationReason.SUPERSEDED)
    monkeypatch.undo()
    assert body.read_bytes() == kept
    assert_lists_agree(home, clock)
    assert [row[1] for row in CertificateAuthority(home, clock=clock).iter_certificate_rows()] == ["valid"] * 3


@pytest.mark.tinydb_only
def test_a_body_edited_by_hand_is_never_trusted(ca, home, clock):
    issue_many(ca, 3, "edited")
    path = home / "db" / "listing" / "00000.txt"
    kept = path.read_bytes()
    assert kept.count(b"edited-1") >= 3  # the row, the subject, the common name (and a SAN)
    path.write_bytes(kept.replace(b"edited-1", b"forged-1"))  # the header (the shard's fingerprint) intact
    fresh = CertificateAuthority(home, clock=clock)
    assert [row[2] for row in fresh.iter_certificate_rows()] == ["edited-0", "edited-1", "edited-2"]
    assert "forged" not in "".join(fresh.iter_certificate_json())
    assert_lists_agree(home, clock)


@pytest.mark.tinydb_only
def test_a_home_from_before_both_migrations_passes_check_after_its_next_commit(ca, home, clock, monkeypatch):
    from tui_ca.engine.store import tinydb as backend_module

    certs = issue_many(ca, 300, "legacy")
    shutil.rmtree(home / "db" / "listing")
    meta_file = home / "db" / "meta" / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["meta"]["1"][listing_files.LISTED]
    del meta["meta"]["3"]  # the index layout: 64 buckets, entries not counted
    meta_file.write_text(json.dumps(meta))
    monkeypatch.setattr(backend_module, "ENTRIES_PER_BUCKET", 1)  # 300 entries: split to 512 buckets
    old = CertificateAuthority(home, clock=clock)
    assert old.check() == []
    certs += issue_many(old, 1, "after")  # a CSR, requester and serial change: each index splits on its first
    old.revoke(certs[5].id, RevocationReason.KEY_COMPROMISE)  # and a compromised key
    layout = json.loads(meta_file.read_text())["meta"]["3"]
    assert layout["serials"] == layout["requesters"] == layout["csrs"] == [512, 301]
    fresh = CertificateAuthority(home, clock=clock)
    assert fresh.check() == []
    assert all(fresh.store.view().find_serial(c.serial) == c.id for c in certs)
    assert_lists_agree(home, clock)
