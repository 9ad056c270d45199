"""CA keys at rest: encrypted under a passphrase, private file modes, and the
CLI's behaviour with a passphrase file, a terminal prompt, or neither."""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hardening_support import (
    PASSPHRASE,
    TUI_CA,
    cli,
    csr_bytes,
    init_home,
    one_line_error,
    snapshot,
    write_passphrase_file,
)

from tui_ca.engine import keys
from tui_ca.engine.reader import ISSUING_CERT, ISSUING_KEY, ROOT_KEY


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def locked(tmp_path: Path) -> tuple[Path, Path]:
    """(home, passphrase file): an encrypted CA with request 1 queued."""
    home = tmp_path / "home"
    ca = init_home(home, passphrase=PASSPHRASE)
    ca.submit(csr_bytes("queued-one"))
    return home, write_passphrase_file(tmp_path)


def test_init_with_passphrase_file_encrypts_both_keys_at_production_cost(tmp_path):
    home = tmp_path / "home"
    secret = write_passphrase_file(tmp_path)
    result = cli(home, "--passphrase-file", str(secret), "init", "--cn", "Locked CA")
    assert result.returncode == 0, result.stderr.decode()
    assert _mode(home) == 0o700
    issuing_public = x509.load_pem_x509_certificate((home / ISSUING_CERT).read_bytes()).public_key()
    for rel in (ISSUING_KEY, ROOT_KEY):
        data = (home / rel).read_bytes()
        assert _mode(home / rel) == 0o600
        # Standard encrypted PKCS#8 (openssl pkey opens it: tests/trust), never readable without the passphrase.
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(data, password=None)
        assert keys.kdf_iterations(data) == keys.PBKDF2_ITERATIONS >= 600_000
        if rel == ISSUING_KEY:  # each unlock costs a full KDF run: check one key
            with pytest.raises(keys.KeyLockedError, match="wrong passphrase"):
                keys.load_key(data, b"not it")
            assert keys.load_key(data, PASSPHRASE).public_key() == issuing_public
    for folder in ("ca", "db", "crl"):
        assert _mode(home / folder) == 0o700


def test_unlock_costs_under_a_second_of_cpu():
    """The production KDF cost keeps an admin's unlock under a second. CPU time,
    not wall time: the test machine is shared, and waiting for a core is not
    what the KDF costs. (Wall-clock figures: bench/kdf.py, SECURITY.md.)"""
    from cryptography.hazmat.primitives.asymmetric import ec

    envelope = keys.dump_key(ec.generate_private_key(ec.SECP256R1()), PASSPHRASE)
    assert keys.kdf_iterations(envelope) == keys.PBKDF2_ITERATIONS
    start = time.process_time()
    keys.load_key(envelope, PASSPHRASE)
    assert time.process_time() - start < 1.0


def test_signing_works_with_the_file_or_the_environment_variable(locked):
    home, secret = locked
    approved = cli(home, "--passphrase-file", str(secret), "approve", "1")
    assert approved.returncode == 0, approved.stderr.decode()
    revoked = cli(home, "revoke", "1", env={"TUI_CA_PASSPHRASE_FILE": str(secret)})
    assert revoked.returncode == 0, revoked.stderr.decode()
    assert b"revoked" in revoked.stdout


@pytest.mark.parametrize(
    "command", [["approve", "1"], ["revoke", "1"], ["crl", "--publish"], ["reject", "1", "--reason", "x"]]
)
def test_wrong_passphrase_is_one_line_and_changes_nothing(locked, tmp_path, command):
    home, secret = locked
    if command[0] == "revoke":  # needs a certificate first
        assert cli(home, "--passphrase-file", str(secret), "approve", "1").returncode == 0
    wrong = write_passphrase_file(tmp_path / "..", b"wrong passphrase")
    before = snapshot(home)
    result = cli(home, "--passphrase-file", str(wrong), *command)
    if command[0] == "reject":  # rejecting signs nothing: no key is asked for
        assert result.returncode == 0, result.stderr.decode()
        return
    one_line_error(result, 1, "wrong passphrase")
    assert snapshot(home) == before


@pytest.mark.parametrize("command", [["approve", "1"], ["revoke", "1"], ["crl", "--publish"]])
def test_signing_without_passphrase_or_terminal_fails_in_one_line(locked, command):
    home, secret = locked
    if command[0] == "revoke":
        assert cli(home, "--passphrase-file", str(secret), "approve", "1").returncode == 0
    before = snapshot(home)
    one_line_error(cli(home, *command), 1, "encrypted", "--passphrase-file")
    assert snapshot(home) == before


def test_non_signing_commands_need_no_passphrase(locked):
    home, _ = locked
    listed = cli(home, "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["requester"] == "queued-one"
    assert cli(home, "show", "1").returncode == 0
    submitted = cli(home, "submit", "-", input=csr_bytes("second"))
    assert submitted.returncode == 0 and submitted.stdout.strip() == b"2"
    assert cli(home, "audit", "--verify").returncode == 0
    assert cli(home, "ca-cert").returncode == 0


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_key_others_can_read_is_refused(locked, mode):
    home, secret = locked
    (home / ISSUING_KEY).chmod(mode)
    before = snapshot(home)
    one_line_error(cli(home, "--passphrase-file", str(secret), "approve", "1"), 1, "chmod 600", ISSUING_KEY)
    assert snapshot(home) == before
    (home / ISSUING_KEY).chmod(0o600)
    assert cli(home, "--passphrase-file", str(secret), "approve", "1").returncode == 0


def test_an_unencrypted_key_others_can_read_is_refused_too(tmp_path):
    home = tmp_path / "home"
    ca = init_home(home)
    ca.submit(csr_bytes("plain"))
    (home / ISSUING_KEY).chmod(0o644)
    before = snapshot(home)
    one_line_error(cli(home, "approve", "1"), 1, "chmod 600")
    assert snapshot(home) == before


@pytest.mark.parametrize("content", [
    b'{"format": 1}', b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    b'{"kdf":{"n":1073741824,"r":8,"p":1,"salt":"AAAA"},"cipher":{"nonce":"AAAA"},"ciphertext":"AAAA"}',
    b'{"kdf":{"n":16,"r":8,"p":1,"salt":"AAAA"},"cipher":{"nonce":"AAAA"},"ciphertext":"AAAA"}',
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
], ids=["no-kdf", "bad-pem", "absurd-scrypt-n", "short-nonce", "bad-pkcs8"])  # fmt: skip
def test_a_damaged_key_file_is_one_line(locked, content):
    home, secret = locked
    (home / ISSUING_KEY).write_bytes(content)
    before = snapshot(home)
    one_line_error(cli(home, "--passphrase-file", str(secret), "approve", "1"), 1, "damaged", "backup")
    assert snapshot(home) == before


def _drive_pty(argv: list[str], answers: list[tuple[bytes, bytes]], timeout: float = 60) -> tuple[int, bytes]:
    """Run argv on a real pseudo-terminal; on seeing each prompt, type its answer."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvpe(argv[0], argv, {k: v for k, v in os.environ.items() if not k.startswith("TUI_CA_")})
    seen = b""
    deadline = time.monotonic() + timeout
    pending = list(answers)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if pending and pending[0][0] in seen:
                prompt, answer = pending.pop(0)
                seen = seen.replace(prompt, b"<" + prompt + b">", 1)  # each prompt answered once
                os.write(fd, answer)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


def test_terminal_prompt_unlocks_the_key(locked):
    home, _ = locked
    code, output = _drive_pty([*TUI_CA, "--home", str(home), "approve", "1"],
                              [(b"CA key passphrase: ", PASSPHRASE + b"\n")])  # fmt: skip
    assert code == 0, output
    assert PASSPHRASE not in output  # getpass turned echo off
    assert cli(home, "show", "1", "--json").stdout.count(b'"serial"') >= 1


def test_terminal_prompt_wrong_passphrase(locked):
    home, _ = locked
    before = snapshot(home)
    code, output = _drive_pty([*TUI_CA, "--home", str(home), "approve", "1"],
                              [(b"CA key passphrase: ", b"guess\n")])  # fmt: skip
    assert code == 1 and b"wrong passphrase" in output and b"Traceback" not in output
    assert snapshot(home) == before


def test_terminal_init_asks_twice_and_encrypts(tmp_path):
    home = tmp_path / "home"
    code, output = _drive_pty(
        [*TUI_CA, "--home", str(home), "init", "--cn", "Prompted CA"],
        [(b"CA key passphrase: ", b"typed secret\n"), (b"Repeat the passphrase: ", b"typed secret\n")],
    )
    assert code == 0, output
    assert keys.load_key((home / ISSUING_KEY).read_bytes(), b"typed secret") is not None


def test_terminal_init_mismatch_stores_nothing(tmp_path):
    home = tmp_path / "home"
    code, output = _drive_pty(
        [*TUI_CA, "--home", str(home), "init", "--cn", "Prompted CA"],
        [(b"CA key passphrase: ", b"one\n"), (b"Repeat the passphrase: ", b"two\n")],
    )
    assert code == 2 and b"do not match" in output and b"Traceback" not in output
    assert not (home / ISSUING_KEY).exists()
