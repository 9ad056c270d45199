"""Modes of a private and of a group-shared home."""

from __future__ import annotations

import grp
import os

import pytest

from tui_ca.engine.errors import InputError, UnsafeHomeError
from tui_ca.engine.sharing import Sharing, share_home


def test_a_plain_home_is_private(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    sharing = Sharing.of(home)
    assert not sharing.shared and sharing.file_mode == 0o600 and sharing.folder_mode == 0o700
    key = home / "key"
    key.write_bytes(b"k")
    key.chmod(0o600)
    sharing.check(key)
    key.chmod(0o640)
    with pytest.raises(UnsafeHomeError, match="its group can access it"):
        sharing.check(key)
    assert not Sharing.of(tmp_path / "absent").shared


def test_a_shared_home_accepts_its_group_and_never_others(tmp_path):
    group = grp.getgrgid(os.getgid()).gr_name
    home = tmp_path / "shared"
    sharing = share_home(home, group)
    assert Sharing.of(home) == sharing and sharing.file_mode == 0o660 and sharing.folder_mode == 0o2770
    assert os.stat(home).st_mode & 0o7777 == 0o2770
    record = home / "record"
    record.write_bytes(b"r")
    record.chmod(0o660)
    sharing.check(record)
    record.chmod(0o664)
    with pytest.raises(UnsafeHomeError, match="other users can access it"):
        sharing.check(record)


def test_a_home_open_to_others_is_not_shared(tmp_path):
    home = tmp_path / "open"
    home.mkdir()
    os.chmod(home, 0o2775)
    assert not Sharing.of(home).shared


def test_an_unknown_group_is_refused(tmp_path):
    with pytest.raises(InputError, match="no Unix group named"):
        share_home(tmp_path / "h", "no-such-group-tuica")
