"""Small shared pieces for the hardening tests: homes, CSRs, store snapshots.

Homes with an encrypted key are made in-process with a cheap PBKDF2 count:
the PKCS#8 structure records its own parameters, so the real ``tui-ca`` child
processes unlock them with the production code path in milliseconds instead of
half a second each (which is longer than the crash harness lets a worker live).
One test (test_key_protection) runs ``init`` at the production cost.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import TUI_CA, snapshot_home, state_files  # tests/ is on sys.path (rootdir conftest)

from tui_ca.engine import Actor, CertificateAuthority, NameFields, keys

PASSPHRASE = b"hardening passphrase \xc3\xa9"
# 2,000 iterations cost ~1 ms: the format and code path are the production ones.
TEST_PBKDF2_ITERATIONS = 2_000
NAMES = NameFields(country="GB", organization="Hardening Ltd", common_name="Hardening Issuing CA")
LONG = os.environ.get("TUI_CA_LONG") == "1"
# A fixed instant (as in tests/conftest.py, which is not imported here: a
# second conftest.py under tests/server makes `import conftest` ambiguous).
FIXED_NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


class Clock:
    """A settable clock for the engine."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def init_home(home: Path, *, passphrase: bytes | None = None, clock=None, crl_days: int = 7,
              iterations: int = TEST_PBKDF2_ITERATIONS) -> CertificateAuthority:  # fmt: skip
    """An initialised CA home (EC P-256); encrypted when a passphrase is given."""
    saved = keys.PBKDF2_ITERATIONS
    keys.PBKDF2_ITERATIONS = iterations
    try:
        ca = CertificateAuthority(home, clock=clock, actor=Actor("tester"), passphrase=passphrase)
        ca.init(NAMES, crl_days=crl_days)
    finally:
        keys.PBKDF2_ITERATIONS = saved
    return ca


def write_passphrase_file(directory: Path, secret: bytes = PASSPHRASE) -> Path:
    path = directory / "passphrase"
    path.write_bytes(secret + b"\n")
    path.chmod(0o600)
    return path


_EC_KEY = ec.generate_private_key(ec.SECP256R1())


def csr_bytes(cn: str | None = "client", *, sans: tuple[str, ...] = (), key=None, der: bool = False) -> bytes:
    """A valid EC P-256 CSR (PEM unless ``der``); one key reused unless given."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    csr = builder.sign(key or _EC_KEY, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def snapshot(home: Path) -> dict[str, bytes]:
    """Every state file under the home with its bytes and mode (tests/helpers.py's state_files).

    The store's shards are as the store reads them, the change log laid over
    them (helpers.snapshot_home), and the log's own mode is kept.
    """
    contents = snapshot_home(home)
    return {name: contents.get(name, b"") + oct((home / name).stat().st_mode).encode()
            for name in (str(p.relative_to(home)) for p in state_files(home))}  # fmt: skip


def cli(home: Path, *args: str, input: bytes | None = None, env: dict | None = None, timeout: float = 120):
    """The real ``tui-ca`` as cron would run it: no terminal (stdin from /dev/null
    unless ``input``, own session so /dev/tty is unreachable), clean environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "TUI_CA_"))}
    environment.update(env or {})
    return subprocess.run(
        [*TUI_CA, "--home", str(home), *args], input=input, stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True, env=environment, timeout=timeout, start_new_session=True, check=False,
    )  # fmt: skip


def one_line_error(result, code: int, *fragments: str) -> str:
    """A user error: exit ``code``, exactly one line on stderr, no traceback."""
    err = result.stderr.decode(errors="replace")
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err and err.startswith("tui-ca: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err
