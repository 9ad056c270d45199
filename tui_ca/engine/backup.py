"""``backup`` and ``restore``: a consistent online copy of a CA home, and putting one back.

A backup is a home of its own (keys, certificates, configuration and the
records as a TinyDB store), so that ``tui-ca --home BACKUP check`` and
``list`` work on it as they are. It is taken inside one store transaction:
writers wait for the few seconds it takes, and the copy is of one committed
generation whatever they were doing. ``restore`` goes only onto an empty
home, checks the backup first, and records itself in the restored audit log.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from tui_ca.engine.errors import InputError, RuleError
from tui_ca.engine.home import ISSUING_CERT, ISSUING_CSR


def _empty_target(path: Path, what: str) -> None:
    if path.is_symlink() or (path.exists() and (not path.is_dir() or any(path.iterdir()))):
        raise RuleError(f"{path} is not empty; {what} goes only into a new or empty folder")


def _home_files(home: Path, skip: frozenset[str]) -> Iterator[Path]:
    """Files of the home outside the store, never through a symlink."""
    for folder, subfolders, names in os.walk(home, followlinks=False):
        here = Path(folder)
        if here == home:
            subfolders[:] = [n for n in subfolders if n not in skip]
            names = [n for n in names if n not in skip]
        for name in subfolders + names:
            if (here / name).is_symlink():
                raise RuleError(f"{here / name} is a symbolic link; a backup never follows one out of the home")
        for name in names:
            yield here / name


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(os.lstat(source).st_mode)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with open(source, "rb") as handle:
            while chunk := handle.read(1 << 20):
                os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_home_files(source: Path, dest: Path, skip: frozenset[str]) -> int:
    count = 0
    for path in _home_files(source, skip):
        _copy_file(path, dest / path.relative_to(source))
        count += 1
    return count


def backup(reader, dest: Path | str) -> Path:
    """Copy ``reader``'s home and records into ``dest`` (new or empty); the path of the copy."""
    dest = Path(dest).absolute()
    home = reader.home.absolute()
    if dest == home or dest.is_relative_to(home):
        raise InputError(f"the backup {dest} cannot be inside the home it copies ({home})")
    _empty_target(dest, "a backup")
    reader.require_ca()
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with reader.store.transaction():
            copy_home_files(home, dest, reader.store.home_entries)
            reader.store.backup_to(dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def restore(source: Path | str, home: Path | str, *, store=None, actor=None) -> list[str]:
    """Put the backup ``source`` onto the empty ``home``; the check of the result (empty when sound)."""
    from tui_ca.engine.ca import CertificateAuthority
    from tui_ca.engine.reader import CAReader
    from tui_ca.engine.store.copying import copy_records
    from tui_ca.engine.store.tinydb import TinyDBStore

    source, home = Path(source).absolute(), Path(home).absolute()
    if not ((source / ISSUING_CERT).exists() or (source / ISSUING_CSR).exists()) or not (source / "db").is_dir():
        raise InputError(f"{source} is not a tui-ca backup (no CA certificate or records in it)")
    _empty_target(home, "a restore")
    problems = CAReader(source, store=TinyDBStore(source)).check()
    if problems:
        raise RuleError(f"the backup {source} fails its check ({len(problems)} problems, first: {problems[0]}); "
                        "run 'tui-ca --home SOURCE check' to see them all")  # fmt: skip
    backup_store = TinyDBStore(source)
    target_store = CertificateAuthority(home, store=store).store
    if not isinstance(target_store, TinyDBStore):
        # Records first: a store that is not files of the home (memory, a database) is filled through the protocol.
        copy_records(backup_store.view(keep=False), target_store)
    staging = home.parent / f".{home.name}.restoring-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700, parents=True)
    try:
        copy_home_files(source, staging, backup_store.home_entries)
        if isinstance(target_store, TinyDBStore):
            backup_store.backup_to(staging)
        if home.exists():
            home.rmdir()
        os.replace(staging, home)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    restored = CertificateAuthority(home, store=store, actor=actor)
    with restored._operation() as op:
        op.audit("restore", "home", "restored from a backup", source=str(source))
    return restored.check()
