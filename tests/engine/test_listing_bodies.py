"""Certificate and request listings come from the listing bodies the store keeps, and always say what the records say.

A fresh CertificateAuthority (nothing in memory) lists from the kept bodies;
these tests change certificates and requests in every way the engine can,
change shards by hand, damage them, and take a home from before the bodies,
and compare the listing with the records (the per-record dicts) each time.
"""

from __future__ import annotations

import json
import shutil
import zlib
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import CertificateAuthority, CertStatus, RequestStatus, RevocationReason
from tui_ca.engine.store import StoreDamagedError, listing_files

# Listing bodies describe shard files: these tests watch the files a journal commit writes.
pytestmark = pytest.mark.journal_commits

KEY = ec.generate_private_key(ec.SECP256R1())
ENCODE = json.JSONEncoder().encode
# Where the TinyDB backend keeps each collection's bodies.
BODIES = {"certs": "db/listing", "requests": "db/listing/requests"}


def submit_many(ca, count: int, prefix: str) -> list[int]:
    csrs = [
        (x509.CertificateSigningRequestBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix}-{i}")]))
         .sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), None)
        for i in range(count)
    ]  # fmt: skip
    return [r.request.id for r in ca.submit_many(csrs)]


def issue_many(ca, count: int, prefix: str, **approve) -> list:
    return [o.certificate for o in ca.approve(submit_many(ca, count, prefix), **approve)]


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


def assert_requests_agree(ca, status=None) -> None:
    """The request listing is the per-record one: the JSON byte for byte, the rows field for field."""
    dicts = list(ca.iter_request_dicts(status))
    assert "".join(ca.iter_request_json(status)) == "".join(ENCODE(d) + "\n" for d in dicts), status
    rows = [(d["id"], d["status"], d["requester"], d["details"]["key_type"], d["submitted_at"]) for d in dicts]
    assert list(ca.iter_request_rows(status)) == rows, status


def assert_lists_agree(home, clock) -> None:
    fresh = CertificateAuthority(home, clock=clock)
    for status in (None, *CertStatus):
        assert listed(fresh, status) == expected(fresh, status), status
    for status in (None, *RequestStatus):
        assert_requests_agree(fresh, status)


def rewrite_body(path, change) -> None:
    """A body file changed by hand with its fingerprints made again: it holds for its shard, and lies."""
    header, body = path.read_bytes().split(b"\n", 1)
    body = change(body)
    head_end = body.index(b"\n") + 1
    rows = body[: head_end + json.loads(body[:head_end])["rows"]]
    fields = json.loads(header)
    fields["body"], fields["rows"] = [len(body), zlib.crc32(body)], [len(rows), zlib.crc32(rows)]
    path.write_bytes(json.dumps(fields).encode() + b"\n" + body)


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


def test_request_listings_say_what_the_records_say_through_every_change(ca, home, clock):
    issue_many(ca, 300, "approved")  # two ID shards of approved requests
    queued = submit_many(ca, 5, "queued")
    assert_lists_agree(home, clock)
    ca.reject(queued[0], "not ours")
    ca.approve([queued[1]])
    assert_lists_agree(home, clock)
    clock.now += timedelta(days=400)
    assert sorted(ca.expire_queue(timedelta(days=30))) == queued[2:]
    assert_lists_agree(home, clock)
    fresh = CertificateAuthority(home, clock=clock)
    assert [row[0] for row in fresh.iter_request_rows(RequestStatus.EXPIRED)] == queued[2:]
    assert [row[1] for row in fresh.iter_request_rows()][-5:] == ["rejected", "approved", "expired", "expired",
                                                                 "expired"]  # fmt: skip


def test_a_request_with_odd_stored_text_is_listed_exactly_as_stored(ca, home, clock):
    # Intake refuses names like these; a record written by an older version may still hold one.
    name = 'odd "name"\t\x1b[31m \u00e9\u2028\\\n\x85'
    odd, quoted, untyped = submit_many(ca, 3, "odd")
    with ca.store.transaction() as txn:
        doc = txn.get_request(odd)
        txn.put_request({**doc, "requester": name, "subject": "CN=\u0394\x00", "reason": "\u2029\r",
                         "key_type": "EC\tP-256\u00e9"})  # fmt: skip
        txn.put_request({**txn.get_request(quoted), "requester": '"quoted'})
        txn.put_request({**txn.get_request(untyped), "key_type": None, "at": 5})
    fresh = CertificateAuthority(home, clock=clock)
    rows = list(fresh.iter_request_rows())
    assert [row[2] for row in rows] == [name, '"quoted', "odd-2"]
    assert [row[3:] for row in rows] == [("EC\tP-256\u00e9", rows[0][4]), ("EC P-256", rows[1][4]), (None, 5)]
    assert json.loads("".join(fresh.iter_request_json()).splitlines()[0])["requester"] == name
    assert_lists_agree(home, clock)


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
    for folder in BODIES.values():
        assert sorted(p.name for p in (home / folder).glob("*.txt")) == ["00000.txt", "00001.txt"]

    def no_render(*args, **kwargs):
        raise AssertionError("a listing parsed the records although the bodies hold")

    monkeypatch.setattr(listing_files, "_render", no_render)
    fresh = CertificateAuthority(home, clock=clock)
    assert len(list(fresh.iter_certificate_rows())) == 300
    assert sum(chunk.count("\n") for chunk in fresh.iter_certificate_json()) == 300
    assert len(list(fresh.iter_request_rows())) == 300
    assert sum(chunk.count("\n") for chunk in fresh.iter_request_json()) == 300
    assert len(list(fresh.iter_request_rows(RequestStatus.APPROVED))) == 300


def requesters_listed(ca, collection: str) -> list[str]:
    rows = ca.iter_certificate_rows() if collection == "certs" else ca.iter_request_rows()
    return [row[2] for row in rows]


def json_listed(ca, collection: str) -> str:
    return "".join(ca.iter_certificate_json() if collection == "certs" else ca.iter_request_json())


@pytest.mark.tinydb_only
@pytest.mark.parametrize("collection", BODIES)
def test_a_shard_changed_by_hand_is_listed_from_its_records(ca, home, clock, collection):
    certs = issue_many(ca, 5, "hand")
    shard = home / "db" / collection / "00000.json"
    data = json.loads(shard.read_text())
    data[collection][str(certs[2].id)]["requester"] = "edited-by-hand"
    shard.write_text(json.dumps(data))
    fresh = CertificateAuthority(home, clock=clock)
    assert requesters_listed(fresh, collection)[2] == "edited-by-hand"
    assert '"requester": "edited-by-hand"' in json_listed(fresh, collection)
    assert_lists_agree(home, clock)


@pytest.mark.tinydb_only
@pytest.mark.parametrize("collection", BODIES)
@pytest.mark.parametrize("damage", [b"null", b"", b"[]", b'{"%s": {"1": 5}}'])
def test_a_damaged_shard_is_refused_by_name_although_its_body_is_kept(ca, home, clock, damage, collection):
    issue_many(ca, 3, "damaged")
    shard = home / "db" / collection / "00000.json"
    shard.write_bytes(damage.replace(b"%s", collection.encode()))
    fresh = CertificateAuthority(home, clock=clock)
    listings = (
        (fresh.iter_certificate_rows, fresh.iter_certificate_json) if collection == "certs"
        else (fresh.iter_request_rows, fresh.iter_request_json)
    )  # fmt: skip
    for listing in listings:
        with pytest.raises(StoreDamagedError, match=str(shard)):
            list(listing())


@pytest.mark.tinydb_only
@pytest.mark.parametrize("collection", BODIES)
@pytest.mark.parametrize("body", [b"", b"garbage", b'{"v": 2, "shard": [1, 2], "body": [0, 0], "rows": [0, 0]}\n',
                                  b'{"v": 99, "shard": [0, 0], "body": [0, 0]}\n'])  # fmt: skip
def test_a_body_file_that_is_not_the_shard_s_is_never_trusted(ca, home, clock, body, collection):
    issue_many(ca, 3, "bodies")
    (home / BODIES[collection] / "00000.txt").write_bytes(body)
    assert_lists_agree(home, clock)


@pytest.mark.tinydb_only
def test_a_home_from_before_the_bodies_gets_them_all_in_its_next_commit(ca, home, clock):
    certs = issue_many(ca, 300, "old")
    before = listed(CertificateAuthority(home, clock=clock))
    before_requests = json_listed(CertificateAuthority(home, clock=clock), "requests")
    shutil.rmtree(home / "db" / "listing")
    meta_file = home / "db" / "meta" / "meta.json"
    meta = json.loads(meta_file.read_text())
    for _, _, flag in listing_files.LISTINGS.values():
        del meta["meta"]["1"][flag]
    meta_file.write_text(json.dumps(meta))
    old = CertificateAuthority(home, clock=clock)
    assert listed(old) == before  # made from the records meanwhile
    assert json_listed(old, "requests") == before_requests
    old.revoke(certs[-1].id, RevocationReason.SUPERSEDED)  # touches the second certs shard only, no request
    for folder in BODIES.values():
        assert sorted(p.name for p in (home / folder).glob("*.txt")) == ["00000.txt", "00001.txt"]
    flags = json.loads(meta_file.read_text())["meta"]["1"]
    assert all(flags[flag] is True for _, _, flag in listing_files.LISTINGS.values())
    assert_lists_agree(home, clock)
    assert old.check() == []


@pytest.mark.tinydb_only
def test_a_home_with_certificate_bodies_only_gets_request_bodies_in_its_next_commit(ca, home, clock):
    issue_many(ca, 300, "half")
    shutil.rmtree(home / BODIES["requests"])
    certificate_bodies = {p.name: p.read_bytes() for p in (home / BODIES["certs"]).glob("*.txt")}
    meta_file = home / "db" / "meta" / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["meta"]["1"][listing_files.LISTINGS["requests"][2]]
    meta_file.write_text(json.dumps(meta))
    submit_many(CertificateAuthority(home, clock=clock), 1, "later")  # a commit that changes one requests shard
    assert sorted(p.name for p in (home / BODIES["requests"]).glob("*.txt")) == ["00000.txt", "00001.txt"]
    # The certificate bodies, which hold, are not written again.
    assert {p.name: p.read_bytes() for p in (home / BODIES["certs"]).glob("*.txt")} == certificate_bodies
    assert requesters_listed(CertificateAuthority(home, clock=clock), "requests")[-1] == "later-0"
    assert_lists_agree(home, clock)


@pytest.mark.tinydb_only
def test_a_commit_that_fails_before_its_commit_point_writes_no_body(ca, home, clock, monkeypatch):
    from tui_ca.engine.store import files as files_module

    certs = issue_many(ca, 3, "fail")
    bodies = {name: home / folder / "00000.txt" for name, folder in BODIES.items()}
    kept = {name: path.read_bytes() for name, path in bodies.items()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module, "_write_durably", full_disk)
    with pytest.raises(Exception, match="No space left"):
        ca.revoke(certs[0].id, RevocationReason.SUPERSEDED)
    with pytest.raises(Exception, match="No space left"):
        submit_many(ca, 1, "never")
    monkeypatch.undo()
    assert {name: path.read_bytes() for name, path in bodies.items()} == kept
    assert_lists_agree(home, clock)
    assert [row[1] for row in CertificateAuthority(home, clock=clock).iter_certificate_rows()] == ["valid"] * 3
    assert len(list(CertificateAuthority(home, clock=clock).iter_request_rows())) == 3


@pytest.mark.tinydb_only
@pytest.mark.parametrize("collection", BODIES)
def test_a_body_edited_by_hand_is_never_trusted(ca, home, clock, collection):
    issue_many(ca, 3, "edited")
    path = home / BODIES[collection] / "00000.txt"
    kept = path.read_bytes()
    assert kept.count(b"edited-1") >= 3  # the row, the subject, the common name (and a SAN)
    path.write_bytes(kept.replace(b"edited-1", b"forged-1"))  # the header (the shard's fingerprint) intact
    fresh = CertificateAuthority(home, clock=clock)
    assert requesters_listed(fresh, collection) == ["edited-0", "edited-1", "edited-2"]
    assert "forged" not in json_listed(fresh, collection)
    assert_lists_agree(home, clock)
    assert fresh.check() == []  # not trusted, so nothing listed from it: not an inconsistency


@pytest.mark.tinydb_only
@pytest.mark.parametrize("collection", BODIES)
@pytest.mark.parametrize("kept", [0.5, 0.0, 1.0])
def test_a_body_a_power_loss_tore_or_left_behind_is_made_again_from_the_records(ca, home, clock, collection, kept):
    """Bodies are not synced at commit (files.Transaction.write_blob): what a power loss can leave of one."""
    certs = issue_many(ca, 3, "torn")
    path = home / BODIES[collection] / "00000.txt"
    older = path.read_bytes()
    if collection == "certs":
        ca.revoke(certs[0].id, RevocationReason.SUPERSEDED)
    else:
        submit_many(ca, 1, "later")
    whole = path.read_bytes()
    # Cut short (data not on disk yet), empty (the rename landed, no data), or the previous body (the rename lost).
    path.write_bytes(whole[: int(len(whole) * kept)] if kept < 1 else older)
    assert_lists_agree(home, clock)
    fresh = CertificateAuthority(home, clock=clock)
    assert fresh.check() == []
    assert len(requesters_listed(fresh, collection)) == (3 if collection == "certs" else 4)


@pytest.mark.tinydb_only
@pytest.mark.parametrize("collection", BODIES)
def test_check_names_a_body_that_holds_for_its_shard_but_lies(ca, home, clock, collection):
    issue_many(ca, 3, "lied")
    assert CertificateAuthority(home, clock=clock).check() == []
    path = home / BODIES[collection] / "00000.txt"
    rewrite_body(path, lambda body: body.replace(b"lied-1", b"liar-1"))
    fresh = CertificateAuthority(home, clock=clock)
    assert requesters_listed(fresh, collection)[1] == "liar-1"  # what check is there to catch
    problems = fresh.check()
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith(f"listing: {path} does not say what the records it lists say")


@pytest.mark.tinydb_only
def test_a_home_from_before_both_migrations_passes_check_after_its_next_commit(ca, home, clock, monkeypatch):
    from tui_ca.engine.store import tinydb as backend_module

    certs = issue_many(ca, 300, "legacy")
    shutil.rmtree(home / "db" / "listing")
    meta_file = home / "db" / "meta" / "meta.json"
    meta = json.loads(meta_file.read_text())
    for _, _, flag in listing_files.LISTINGS.values():
        del meta["meta"]["1"][flag]
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


@pytest.mark.tinydb_only
def test_a_process_that_commits_once_renders_only_the_records_it_changed(ca, home, clock, monkeypatch):
    from tui_ca.engine import listing_rows

    issue_many(ca, 5, "once")
    queued = submit_many(ca, 3, "waiting")
    rendered: list[tuple[str, int]] = []
    for kind in (listing_rows.CERTIFICATES, listing_rows.REQUESTS):
        entry = kind.entry
        monkeypatch.setattr(kind, "entry", lambda doc, kind=kind, entry=entry: rendered.append((kind.name, doc["id"]))
                            or entry(doc))  # fmt: skip
    monkeypatch.setattr(listing_files, "_MEMOS", type(listing_files._MEMOS)())  # a new process: nothing in memory
    CertificateAuthority(home, clock=clock).reject(queued[1], "once is enough")
    assert rendered == [("requests", queued[1])]
    rendered.clear()
    monkeypatch.setattr(listing_files, "_MEMOS", type(listing_files._MEMOS)())
    CertificateAuthority(home, clock=clock).approve([queued[0]])
    assert sorted(rendered) == [("certificates", queued[0]), ("requests", queued[0])]
    assert_lists_agree(home, clock)
    assert CertificateAuthority(home, clock=clock).check() == []
