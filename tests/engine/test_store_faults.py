"""Faults the TinyDB files meet (issue 8 item 2): damage is refused, nothing is lost or half-applied.

Every case is real: files edited or planted by hand, a lock holder in another
process, OS errors raised inside a real commit, a real file-size limit.
Each refusal is one line naming the file, nothing is overwritten, and the
home works again once the cause is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import assert_refused, csr_pem, make_csr, run_cli, snapshot_home

from tui_ca.engine import CertificateAuthority, RequestStatus
from tui_ca.engine.store import StoreDamagedError

pytestmark = [pytest.mark.tinydb_only, pytest.mark.journal_commits]


def _home_files(home: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot_home(home).items() if not k.startswith(".tmp/")}


@pytest.fixture
def queued(ca, home) -> int:
    return ca.submit(csr_pem(make_csr(cn="victim")), requester="victim").request.id


DAMAGE = {
    "empty": b"",
    "blank": b"  \n",
    "null": b"null",
    "list": b"[]",
    "other table": b'{"certs": {}}',
    "no table": b"{}",
    "table is a list": b'{"requests": []}',
    "record is a number": b'{"requests": {"1": 5}}',
    "record lacks fields": b'{"requests": {"1": {"id": 1}}}',
    "record under another id": b'{"requests": {"1": {"id": 7, "status": "queued", "requester": "x", "at": "y"}}}',
    "not json": b'{"requests": {"1": ',
}


@pytest.mark.parametrize("content", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_shard_is_refused_by_every_command_that_touches_it(ca, home, queued, content):
    shard = home / "db" / "requests" / "00000.json"
    shard.write_bytes(content)
    before = _home_files(home)
    for args, stdin in [(("list",), None), (("show", str(queued)), None), (("approve", str(queued)), None),
                        (("reject", str(queued), "--reason", "x"), None),
                        (("submit", "-"), csr_pem(make_csr(cn="next")))]:  # fmt: skip
        err = assert_refused(run_cli(home, *args, input=stdin), 1, str(shard), "damaged", "restore")
        assert err.count("\n") == 1, err
        assert _home_files(home) == before, args  # nothing overwritten, nothing added
    with pytest.raises(StoreDamagedError, match="00000.json is damaged"):
        CertificateAuthority(home).requests()


def test_damage_repaired_by_hand_works_again(ca, home, queued):
    shard = home / "db" / "requests" / "00000.json"
    good = shard.read_bytes()
    shard.write_bytes(b"null")
    assert_refused(run_cli(home, "approve", str(queued)), 1, "damaged")
    shard.write_bytes(good)
    run_cli(home, "approve", str(queued), check=True)
    assert CertificateAuthority(home).request(queued).status is RequestStatus.APPROVED


def test_a_damaged_index_shard_is_refused_not_read_as_empty(ca, home, queued):
    # An empty requester index would let a second request in for the same requester.
    for shard in (home / "db" / "requesters").iterdir():
        shard.write_bytes(b"")
    before = _home_files(home)
    assert_refused(run_cli(home, "submit", "-", "--requester", "victim", input=csr_pem(make_csr(cn="v2"))), 1,
                   "requesters", "damaged")  # fmt: skip
    assert _home_files(home) == before


# ------------------------------------------------------------------ the lock

_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tui_ca.engine import CertificateAuthority
    home, entered, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    ca = CertificateAuthority(home)
    with ca.store.transaction():
        entered.write_text("in")
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    print("released")
""")


def _wait(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _waiting_on_a_lock(pid: int) -> bool:
    try:
        return "lock" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("tamper", ["replace", "delete", "plant"])
def test_the_lock_cannot_be_swapped_under_its_holder(ca, home, tmp_path, tamper):
    entered, go = tmp_path / "entered", tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(home), str(entered), str(go)],
                              stdout=subprocess.PIPE)  # fmt: skip
    try:
        _wait(entered.exists, "the holder to take the lock")
        # Whatever lock file an older layout or an admin left, swapping it must not matter.
        lock = home / ".lock"
        if tamper == "replace":
            lock.write_text("x")
            os.replace(lock, home / ".lock-new")
            (home / ".lock-new").rename(lock)
        elif tamper == "delete":
            lock.unlink(missing_ok=True)
        else:
            lock.write_text("planted")
        second = subprocess.Popen([sys.executable, "-m", "tui_ca", "--home", str(home), "submit", "-"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        second.stdin.write(csr_pem(make_csr(cn="second")))
        second.stdin.close()
        # The second writer must be waiting for the lock, not done.
        _wait(lambda: second.poll() is not None or _waiting_on_a_lock(second.pid), "the second writer to block")
        assert second.poll() is None, "a second writer got in while the lock was held"
        go.write_text("go")
        assert holder.wait(60) == 0
        assert second.wait(60) == 0, second.stderr.read()
    finally:
        go.write_text("go")
        holder.wait(60)


# ------------------------------------------------- failures around the commit

_FAILING_SUBMIT = textwrap.dedent("""
    import errno, os, sys
    from pathlib import Path
    from tui_ca.engine import CertificateAuthority, CAError
    home, phase = Path(sys.argv[1]), sys.argv[2]
    journal = home / "db" / "journal.json"
    real_replace, real_write = os.replace, os.write

    def replace(src, dst):
        if phase == "after" and journal.exists() and Path(dst) != journal:
            raise OSError(errno.EIO, "Input/output error", str(dst))
        return real_replace(src, dst)

    def write(fd, data):
        if phase == "before":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    os.replace, os.write = replace, write
    try:
        result = CertificateAuthority(home).submit(sys.stdin.buffer.read(), requester="failing")
    except CAError as exc:
        print("refused:", exc)
        sys.exit(1)
    print("queued", result.request.id)
""")


def _failing_submit(home: Path, phase: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _FAILING_SUBMIT, str(home), phase],
                          input=csr_pem(make_csr(cn="failing")), capture_output=True, text=False, timeout=60)  # fmt: skip


def test_a_failure_after_the_commit_point_reports_success_and_the_change_is_there(ca, home, queued):
    result = _failing_submit(home, "after")
    assert result.returncode == 0, result.stdout + result.stderr
    request_id = int(result.stdout.split()[-1])
    assert (home / "db" / "journal.json").exists()  # the renames really failed
    assert CertificateAuthority(home).request(request_id).requester == "failing"
    CertificateAuthority(home).submit(csr_pem(make_csr(cn="after")))  # finishes the journal
    assert not (home / "db" / "journal.json").exists()
    assert [r.requester for r in CertificateAuthority(home).requests()] == ["victim", "failing", "after"]


def test_a_failure_before_the_commit_point_leaves_no_trace(ca, home, queued):
    before = _home_files(home)
    result = _failing_submit(home, "before")
    assert result.returncode == 1 and b"No space left on device" in result.stdout, result.stdout + result.stderr
    assert b"nothing was changed" in result.stdout
    assert _home_files(home) == before
    assert list((home / ".tmp").iterdir()) == []
    assert [r.requester for r in CertificateAuthority(home).requests()] == ["victim"]


def test_a_real_file_size_limit_is_one_line_and_the_store_stays_intact(ca, home, queued):
    # RLIMIT_FSIZE makes the kernel refuse the write (EFBIG) as a full disk would.
    limited = textwrap.dedent("""
        import resource, signal, sys, runpy
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))
        sys.argv = ["tui-ca", "--home", sys.argv[1], "submit", "-"]
        runpy.run_module("tui_ca", run_name="__main__")
    """)
    before = _home_files(home)
    result = subprocess.run([sys.executable, "-c", limited, str(home)], input=csr_pem(make_csr(cn="big")),
                            capture_output=True, timeout=60)  # fmt: skip
    assert_refused(result, 1, "File too large", "nothing was changed")
    assert _home_files(home) == before
    run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="big")), check=True)


# ------------------------------------------------------- journal and temp dir


@pytest.mark.parametrize("journal", [b"", b"not json", b"[]", b'{"renames": 5}', b'{"renames": [["a"]]}',
                                     b'{"renames": [[".tmp/x", "../../outside"]]}',
                                     b'{"renames": [[".tmp/x", "ca/issuing.key"]]}'])  # fmt: skip
def test_a_malformed_journal_is_one_line_and_works_again_once_removed(ca, home, queued, journal):
    (home / "db" / "journal.json").write_bytes(journal)
    before = _home_files(home)
    assert_refused(run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="j"))), 1, "journal.json", "damaged")
    assert _home_files(home) == before
    (home / "db" / "journal.json").unlink()
    run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="j")), check=True)


def test_stray_entries_in_the_temp_folder_are_cleared_without_following_links(ca, home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    tmp = home / ".tmp"
    (tmp / "a-folder").mkdir()
    (tmp / "a-folder" / "junk").write_text("junk")
    (tmp / "link-to-outside").symlink_to(outside)
    (tmp / "file").write_text("junk")
    run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="t")), check=True)
    assert list(tmp.iterdir()) == []
    assert (outside / "precious").read_text() == "keep"


# ---------------------------------------------------------------- symlinks


TOUCHING = {
    "db/requests": [("list",), ("approve", "2"), ("show", "2")],
    "db": [("list",), ("approve", "2"), ("submit", "-")],
    "crl": [("crl",), ("revoke", "1")],
    "ca": [("approve", "2"), ("ca-cert",), ("export", "1", "--chain")],
}


@pytest.mark.parametrize("folder", TOUCHING)
def test_a_directory_symlink_in_the_home_is_never_followed(ca, home, queued, tmp_path, folder):
    ca.approve([queued])
    ca.submit(csr_pem(make_csr(cn="second")), requester="second")
    outside = tmp_path / "outside"
    os.replace(home / folder, outside)
    (home / folder).symlink_to(outside)
    listing = {p.relative_to(outside): p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    for args in TOUCHING[folder]:
        stdin = csr_pem(make_csr(cn="third")) if args[0] == "submit" else None
        assert_refused(run_cli(home, *args, input=stdin), 1, "symbolic link", str(home / folder))
    assert {p.relative_to(outside): p.read_bytes() for p in outside.rglob("*") if p.is_file()} == listing


def test_a_symlinked_shard_file_is_refused(ca, home, queued, tmp_path):
    shard = home / "db" / "requests" / "00000.json"
    outside = tmp_path / "shard.json"
    outside.write_bytes(shard.read_bytes())
    shard.unlink()
    shard.symlink_to(outside)
    assert_refused(run_cli(home, "list"), 1, "symbolic link")
    assert json.loads(outside.read_bytes())  # untouched
