"""The store (DESIGN §3): journal recovery, leftovers, no stale caches, modes.

A crash is simulated for real: a child process replaces ``os.replace`` with
a version that kills the process (``os._exit``, so no ``finally`` runs and the
kernel drops the lock) at a chosen point of a commit. The parent then checks
what is on disk and that the next transaction, in another process, finishes
or discards the interrupted commit.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import CA_NAMES, csr_pem, make_csr, snapshot_home

from tui_ca.engine import CertificateAuthority, RequestStatus

# Runs one submit in a child and dies during its commit. ``CRASH_AFTER`` is
# the number of data-file renames to let through once the journal is in
# place; -1 means die when the journal itself is about to be put in place.
_CRASHING_SUBMIT = textwrap.dedent("""
    import os, sys, threading
    from pathlib import Path
    from tui_ca.engine import CertificateAuthority

    home, crash_after = Path(sys.argv[1]), int(sys.argv[2])
    journal = home / "db" / "journal.json"
    real_replace, done, one_at_a_time = os.replace, [0], threading.Lock()

    def dying_replace(src, dst):
        # The store may rename from several threads: one rename at a time, the
        # count and the rename together, so exactly CRASH_AFTER renames are done.
        with one_at_a_time:
            if crash_after < 0 and Path(dst) == journal:
                os._exit(77)
            if journal.exists() and Path(dst) != journal:
                if done[0] == crash_after:
                    os._exit(77)
                done[0] += 1
            real_replace(src, dst)

    os.replace = dying_replace
    CertificateAuthority(home).submit(sys.stdin.buffer.read(), requester="crash-test")
    print("no crash")
""")


def _crash_submit(home: Path, data: bytes, crash_after: int) -> None:
    result = subprocess.run([sys.executable, "-c", _CRASHING_SUBMIT, str(home), str(crash_after)],
                            input=data, capture_output=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 77, result.stdout + result.stderr


@pytest.mark.journal_commits
@pytest.mark.tinydb_only
@pytest.mark.parametrize("crash_after", [0, 1, 3])
def test_commit_interrupted_after_journal_is_completed_by_next_transaction(ca, home, crash_after):
    data = csr_pem(make_csr(cn="crashy"))
    _crash_submit(home, data, crash_after)
    journal = home / "db" / "journal.json"
    assert journal.exists()
    plan = json.loads(journal.read_text())
    pending = [tmp for tmp, _ in plan["renames"] if (home / tmp).exists()]
    assert len(pending) == len(plan["renames"]) - crash_after > 0

    # The next transaction, in another process, rolls the commit forward.
    other = CertificateAuthority(home)
    second = other.submit(csr_pem(make_csr(cn="after-crash")))
    assert not journal.exists()
    assert list((home / ".tmp").iterdir()) == []
    requests = other.requests()
    assert [(r.id, r.requester) for r in requests] == [(1, "crash-test"), (2, "after-crash")]
    assert second.request.id == 2
    # The recovered commit is whole: its audit record and indexes came with it.
    assert [r.action for r in other.audit_records()][-2:] == ["submit", "submit"]
    assert other.verify_audit() == []
    assert other.submit(data).request.id == 1  # the CSR index was recovered too
    assert ca.request(1).status is RequestStatus.QUEUED  # and the first object sees it


@pytest.mark.journal_commits
@pytest.mark.tinydb_only
def test_crash_before_journal_leaves_old_state_and_leftovers_are_discarded(ca, home):
    before = snapshot_home(home)
    _crash_submit(home, csr_pem(make_csr(cn="lost")), crash_after=-1)
    leftovers = list((home / ".tmp").iterdir())
    assert leftovers  # the prepared files are there, but nothing names them
    assert not (home / "db" / "journal.json").exists()
    # Readers see exactly the old state: no data file changed.
    after_crash = {k: v for k, v in snapshot_home(home).items() if not k.startswith(".tmp/")}
    assert after_crash == before
    assert CertificateAuthority(home).requests() == []

    result = CertificateAuthority(home).submit(csr_pem(make_csr(cn="next")))
    assert result.request.id == 1  # the lost commit consumed no ID
    assert list((home / ".tmp").iterdir()) == []
    assert [r.requester for r in ca.requests()] == ["next"]


@pytest.mark.tinydb_only
def test_hand_made_leftovers_without_journal_are_removed(ca, home):
    tmp = home / ".tmp"
    (tmp / "deadbeef-0").write_bytes(b'{"requests": {"1": {"half": ')
    (tmp / "journal").write_bytes(b'{"renames": [[".tmp/deadbeef-0", "db/requests/00000.json"]]}')
    ca.publish_crl()
    assert list(tmp.iterdir()) == []
    assert not (home / "db/requests/00000.json").exists()
    assert ca.verify_audit() == []


@pytest.mark.journal_commits
@pytest.mark.tinydb_only
def test_hand_made_journal_is_rolled_forward(ca, home):
    """A journal whose first rename already happened (crash mid-way), built by hand."""
    request_id = ca.submit(csr_pem(make_csr(cn="manual"))).request.id
    shard = home / "db/requests/00000.json"
    data = json.loads(shard.read_text())
    data["requests"][str(request_id)]["requester"] = "renamed-by-journal"
    (home / ".tmp/cafe-0").write_text(json.dumps(data))
    (home / "db/journal.json").write_text(json.dumps({"renames": [
        [".tmp/gone-0", "db/meta/meta.json"],  # already renamed before the crash
        [".tmp/cafe-0", "db/requests/00000.json"],
    ]}))  # fmt: skip
    # The journal is a commit that happened: a consistent reader finishes it
    # (under the lock) rather than showing the state from before it.
    assert ca.request(request_id).requester == "renamed-by-journal"
    ca.publish_crl()
    assert not (home / "db/journal.json").exists()
    assert ca.request(request_id).requester == "renamed-by-journal"
    assert CertificateAuthority(home).request(request_id).requester == "renamed-by-journal"


def test_two_objects_in_one_process_see_each_other_at_once(home, clock):
    first = CertificateAuthority(home, clock=clock)
    first.init(CA_NAMES)
    second = CertificateAuthority(home, clock=clock)
    assert second.exists() and second.info().crl_number == 1
    # Alternate writers: TinyDB's per-table next-id cache must not collide.
    ids = []
    for n in range(6):
        writer = (first, second)[n % 2]
        ids.append(writer.submit(csr_pem(make_csr(cn=f"alt-{n}"))).request.id)
        reader = (second, first)[n % 2]
        assert [r.id for r in reader.requests()] == ids
    assert ids == [1, 2, 3, 4, 5, 6]
    cert = first.approve([3])[0].certificate
    assert second.certificate(cert.serial_hex).id == 3
    second.revoke(3)
    assert first.certificate(3).revoked_at is not None
    assert first.info().crl_number == second.info().crl_number == 2
    assert len(first.audit_records()) == len(second.audit_records())
    assert first.verify_audit() == [] and second.verify_audit() == []
    # A third object made after all that starts from the files alone.
    third = CertificateAuthority(home, clock=clock)
    assert [r.status for r in third.requests()].count(RequestStatus.QUEUED) == 5


@pytest.mark.tinydb_only
def test_private_files_and_home_modes(ca, home):
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for key in ("ca/root.key", "ca/issuing.key"):
        assert stat.S_IMODE((home / key).stat().st_mode) == 0o600
    for shard in (home / "db").rglob("*.json"):
        assert stat.S_IMODE(shard.stat().st_mode) & 0o077 == 0, shard
    assert ca.home_permissions_problems() == []


@pytest.mark.tinydb_only
def test_no_temporary_files_survive_a_commit(ca, home):
    ca.submit(csr_pem(make_csr(cn="clean")))
    assert list((home / ".tmp").iterdir()) == []
    assert not (home / "db/journal.json").exists()
    # Every stored shard is complete JSON (no torn or partial files).
    for shard in (home / "db").rglob("*.json"):
        json.loads(shard.read_bytes())


def test_group_readable_key_is_refused(ca, home):
    from tui_ca.engine import UnsafeHomeError

    os.chmod(home / "ca/issuing.key", 0o640)
    fresh = CertificateAuthority(home)
    request_id = fresh.submit(csr_pem(make_csr(cn="k"))).request.id
    with pytest.raises(UnsafeHomeError, match="chmod 600"):
        fresh.approve([request_id])
