"""A full disk, no inodes left, a read-only home: one clear line, the store intact, working again after.

The faults are real: the home lives on a small tmpfs mounted for the test
(the test needs the right to mount, as root in CI has; without it the test
says so and is skipped rather than faked).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from helpers import CA_NAMES, assert_refused, csr_pem, make_csr, run_cli, snapshot_home

from tui_ca.engine import CertificateAuthority

pytestmark = pytest.mark.tinydb_only


def _mount(target: Path, options: str) -> None:
    target.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); these faults need a real small disk")


@pytest.fixture
def small_disk(tmp_path: Path):
    def make(options: str) -> Path:
        _mount(tmp_path / "mnt", options)
        mounted.append(tmp_path / "mnt")
        return tmp_path / "mnt"

    mounted: list[Path] = []
    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _new_home(root: Path) -> Path:
    home = root / "home"
    ca = CertificateAuthority(home)
    ca.init(CA_NAMES)
    ca.submit(csr_pem(make_csr(cn="before")), requester="before")
    return home


def _files(home: Path) -> dict[str, bytes]:
    return snapshot_home(home)


def _fill_bytes(root: Path) -> Path:
    filler = root / "filler"
    # Unbuffered: a write the disk takes in part leaves nothing in a buffer for close() to fail on.
    with open(filler, "wb", buffering=0) as handle:
        chunk = b"\0" * 65536
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _fill_inodes(root: Path) -> list[Path]:
    made = []
    folder = root / "inodes"
    folder.mkdir()
    try:
        while True:
            path = folder / str(len(made))
            path.touch()
            made.append(path)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    return made


def _assert_refused_intact_and_readable(home: Path, fragment: str) -> None:
    before = _files(home)
    err = assert_refused(run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="during"))), 1, fragment,
                         "nothing was changed")  # fmt: skip
    assert err.count("\n") == 1
    assert _files(home) == before
    assert b"before" in run_cli(home, "list", check=True).stdout  # reading still works


def test_a_full_disk_is_one_line_and_the_store_works_again_once_space_is_freed(small_disk):
    root = small_disk("size=2m")
    home = _new_home(root)
    filler = _fill_bytes(root)
    _assert_refused_intact_and_readable(home, "No space left on device")
    filler.unlink()
    run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="after")), check=True)
    assert [r.requester for r in CertificateAuthority(home).requests()] == ["before", "after"]


@pytest.mark.journal_commits
def test_no_inodes_left_is_one_line_and_the_store_works_again(small_disk):
    root = small_disk("size=8m,nr_inodes=400")
    home = _new_home(root)
    made = _fill_inodes(root)
    _assert_refused_intact_and_readable(home, "No space left on device")
    for path in made:
        path.unlink()
    run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="after")), check=True)
    assert len(CertificateAuthority(home).requests()) == 2


def test_a_read_only_home_is_one_line_and_works_again_once_writable(small_disk):
    root = small_disk("size=8m")
    home = _new_home(root)
    subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
    try:
        _assert_refused_intact_and_readable(home, "Read-only file system")
        assert_refused(run_cli(home, "approve", "1"), 1, "Read-only file system")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(root)], check=True)
    run_cli(home, "approve", "1", check=True)
    assert os.listdir(home / ".tmp") == []
