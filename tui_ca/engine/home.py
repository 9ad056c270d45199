"""The files of a CA home that are not records: keys and certificates.

Keys (``ca/*.key``) and CA certificates (``ca/*.crt.pem``) stay plain files in
the home on every store backend: they are local to the machine that holds the
key, and standard tools (openssl) open them as they are. Each is written
atomically (temporary file, fsync, rename, fsync of the folder), never through
a symlink.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from tui_ca.engine.errors import RuleError, UnsafeHomeError
from tui_ca.engine.folders import make_private_dirs
from tui_ca.engine.sharing import Sharing

ROOT_CERT = "ca/root.crt.pem"
ROOT_KEY = "ca/root.key"
ISSUING_CERT = "ca/issuing.crt.pem"
ISSUING_KEY = "ca/issuing.key"
ISSUING_CSR = "ca/issuing.csr.pem"
# What server-setup writes for tui-ca serve (engine/service_certs.py makes them).
SERVER_DIR = "server"
TLS_KEY = f"{SERVER_DIR}/tls.key"
TLS_CERT = f"{SERVER_DIR}/tls.crt"
OCSP_KEY = f"{SERVER_DIR}/ocsp.key"
OCSP_CERT = f"{SERVER_DIR}/ocsp.crt"
SCEP_RA_KEY = f"{SERVER_DIR}/scep-ra.key"
SCEP_RA_CERT = f"{SERVER_DIR}/scep-ra.crt"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse_links(home: Path, folder: Path) -> None:
    current = home
    for part in folder.relative_to(home).parts:
        current = current / part
        if current.is_symlink():
            raise UnsafeHomeError(f"{current} is a symbolic link; refusing to follow it out of the home")


def read_file(home: Path, relpath: str) -> bytes:
    """The bytes of ``home/relpath``, never through a symlink (FileNotFoundError if absent)."""
    path = home / relpath
    _refuse_links(home, path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeHomeError(f"{path} is a symbolic link; refusing to follow it out of the home") from None
        if exc.errno == errno.EACCES:
            # Another admin's file that is not group-readable (made by hand, or before the home was shared).
            raise RuleError(f"cannot read {path}: permission denied; its owner (or root) must make it readable "
                            "by the home's admins (chmod 660, with the admin group)") from None  # fmt: skip
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def ensure_folder(home: Path, relpath: str, sharing: Sharing | None = None) -> Path:
    """Create ``home/relpath`` and its parents under the home (0700, or 2770 in a shared home, whatever
    the umask); refuse a symlink on the way."""
    make_private_dirs(home)
    sharing = sharing or Sharing.of(home)
    folder = home
    for part in Path(relpath).parts:
        folder = folder / part
        if folder.is_symlink():
            raise UnsafeHomeError(f"{folder} is a symbolic link; refusing to follow it out of the home")
        if sharing.new_folder(folder):
            _fsync_dir(folder.parent)
    return folder


def write_file(home: Path, relpath: str, data: bytes, mode: int = 0o644, *, exclusive: bool = False) -> None:
    """Replace (or, ``exclusive``, create) ``home/relpath`` atomically and durably.

    ``mode`` is set whatever the umask; in a shared home every file is 0660 (sharing.py).
    """
    target = home / relpath
    sharing = Sharing.of(home)
    folder = ensure_folder(home, str(Path(relpath).parent), sharing)
    if exclusive and (target.exists() or target.is_symlink()):
        raise FileExistsError(f"{target} exists already; refusing to overwrite it")
    import secrets

    staging = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
    fd = sharing.create(staging, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        staging.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def remove_file(home: Path, relpath: str) -> None:
    (home / relpath).unlink(missing_ok=True)
    _fsync_dir((home / relpath).parent)
