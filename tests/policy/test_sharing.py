"""Modes of a private and of a group-shared home, in one process (the OS-user tests run several)."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import assert_refused, csr_pem, make_csr, run_cli
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.errors import InputError, UnsafeHomeError
from tui_ca.engine.sharing import SHARING_FILE, Sharing, share_home


@pytest.fixture
def open_tmp():
    """A folder the admin group can pass through (pytest's own tmp parents are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="tui-ca-sharing-", dir="/tmp"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _own_group() -> str:
    return grp.getgrgid(os.getgid()).gr_name


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_plain_home_is_private_and_refuses_group_access(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    sharing = Sharing.of(home)
    assert not sharing.shared and sharing.file_mode() == 0o600 and sharing.folder_mode == 0o700
    key = home / "key"
    key.write_bytes(b"k")
    key.chmod(0o600)
    sharing.check(key)
    key.chmod(0o640)
    with pytest.raises(UnsafeHomeError, match="has no admin group.*chmod 600"):
        sharing.check(key)
    # Setgid and group bits set by hand do not share a home: only init --admin-group records a group.
    os.chmod(home, 0o2770)
    assert not Sharing.of(home).shared
    assert not Sharing.of(tmp_path / "absent").shared


def test_a_shared_home_accepts_its_group_and_never_others(open_tmp):
    group = _own_group()
    home = open_tmp / "shared"
    sharing = share_home(home, group)
    assert Sharing.of(home) == sharing and sharing.file_mode(0o644) == 0o660 and sharing.folder_mode == 0o2770
    assert _mode(home) == 0o2770 and _mode(home / SHARING_FILE) == 0o640
    record = home / "record"
    record.write_bytes(b"r")
    record.chmod(0o660)
    sharing.check(record)
    record.chmod(0o664)
    with pytest.raises(UnsafeHomeError, match="other users can read it or write it.*chmod 660"):
        sharing.check(record)
    record.chmod(0o606)
    with pytest.raises(UnsafeHomeError, match="other users can read it or write it"):
        sharing.check(record)


def test_a_file_of_another_group_is_refused_in_a_shared_home(open_tmp):
    others = [g for g in grp.getgrall() if g.gr_gid != os.getgid()]
    if os.geteuid() != 0 or not others:
        pytest.skip("giving a file to another group needs root (CI runs as root)")
    home = open_tmp / "shared"
    sharing = share_home(home, _own_group())
    key = home / "key"
    key.write_bytes(b"k")
    key.chmod(0o640)
    os.chown(key, -1, others[0].gr_gid)
    with pytest.raises(UnsafeHomeError, match=f"not the admin group '{_own_group()}'.*chgrp"):
        sharing.check(key)


def test_a_home_that_disagrees_with_its_record_is_refused(open_tmp):
    home = open_tmp / "shared"
    share_home(home, _own_group())
    os.chmod(home, 0o2775)
    with pytest.raises(UnsafeHomeError, match="is shared with group .* but is mode 2775"):
        Sharing.of(home)
    os.chmod(home, 0o2770)
    (home / SHARING_FILE).write_text("[]")
    with pytest.raises(UnsafeHomeError, match=f"{SHARING_FILE} is damaged"):
        Sharing.of(home)
    (home / SHARING_FILE).write_text('{"group": "no-such-group-tuica"}')
    with pytest.raises(UnsafeHomeError, match="'no-such-group-tuica' named in .* does not exist"):
        Sharing.of(home)


def test_an_unknown_group_or_a_used_home_is_refused(tmp_path):
    with pytest.raises(InputError, match="no Unix group named"):
        share_home(tmp_path / "h", "no-such-group-tuica")
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    with pytest.raises(InputError, match="is not empty"):
        share_home(used, _own_group())


def test_a_home_the_group_cannot_reach_is_refused(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(0o700)
    other = [g for g in grp.getgrall() if g.gr_gid != os.stat(closed).st_gid]
    if not other:
        pytest.skip("needs a second group on the machine")
    with pytest.raises(InputError, match=f"cannot reach .*: {closed} is closed to them"):
        share_home(closed / "home", other[0].gr_name)
    assert not (closed / "home").exists()


UMASK_RUN = """
import os, sys
os.umask(int(sys.argv[1], 8))
from tui_ca.engine import CertificateAuthority
from tests.helpers import assert_refused, csr_pem, make_csr, run_cli
ca = CertificateAuthority(sys.argv[2])
ca.approve([ca.submit(csr_pem(make_csr(cn=sys.argv[3]))).request.id])
"""


@pytest.mark.parametrize("umask", ["077", "022", "000"])
def test_files_of_a_shared_home_get_their_modes_whatever_the_umask(open_tmp, umask):
    home = open_tmp / "home"
    CertificateAuthority(home).init(_names(), admin_group=_own_group())
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run([sys.executable, "-c", UMASK_RUN, umask, str(home), f"u{umask}"], check=True, env=env)
    CertificateAuthority(home).submit(csr_pem(make_csr(cn="after")))
    for path in [home, *home.rglob("*")]:
        if path.name == SHARING_FILE:
            continue
        assert os.stat(path).st_gid == os.getgid(), path
        assert _mode(path) == (0o2770 if path.is_dir() else 0o660), (path, oct(_mode(path)))
    assert CertificateAuthority(home).home_permissions_problems() == []
    first = CertificateAuthority(home).audit_records()[0]
    assert (first.action, first.extra.get("admin_group")) == ("init", _own_group())


def test_init_with_an_unknown_admin_group_is_one_line_and_stores_nothing(tmp_path):
    home = tmp_path / "home"
    refused = run_cli(home, "init", "--cn", "No Group CA", "--admin-group", "no-such-group-tuica")
    assert_refused(refused, 2, "no Unix group named 'no-such-group-tuica'")
    assert not home.exists() or not any(home.iterdir())


@pytest.mark.parametrize("umask", ["077", "000"])
def test_a_private_home_keeps_its_modes_whatever_the_umask(tmp_path, umask):
    home = tmp_path / "home"
    CertificateAuthority(home).init(_names())
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run([sys.executable, "-c", UMASK_RUN, umask, str(home), f"u{umask}"], check=True, env=env)
    for path in [home, *home.rglob("*")]:
        if path.is_dir():
            assert _mode(path) == 0o700, path
        else:
            assert _mode(path) & 0o077 in (0, 0o044), path  # certificates and CRLs 0644, the rest 0600
    for key in ("ca/root.key", "ca/issuing.key"):
        assert _mode(home / key) == 0o600


def _names():
    from tui_ca.engine.models import NameFields

    return NameFields(common_name="Sharing Test CA")
