"""Start-up stays lazy: a command that signs nothing loads no x509, and only its own parser is built.

The modules a real process imports are read from its ``-X importtime``
output, so the probe runs the command exactly as an admin does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CA_NAMES, csr_pem, make_csr

from tui_ca import cli
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.models import Actor, RevocationReason

# What signing, CSR checking and key handling need; none of it when nothing is signed.
SIGNING_MODULES = ("cryptography.x509", "tui_ca.engine.ca", "tui_ca.engine.csr_policy", "tui_ca.engine.keys")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("cli-startup") / "home"
    ca = CertificateAuthority(home, actor=Actor("setup"))
    ca.init(CA_NAMES)
    ca.submit(csr_pem(make_csr(cn="kept.example")), requester="kept")
    ca.submit(csr_pem(make_csr(cn="waiting.example")), requester="waiting")
    ca.approve([1])
    ca.revoke(1, RevocationReason.SUPERSEDED)
    return home


def imported(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``tui-ca ARGS`` in a fresh interpreter; its result and every module it imported."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "tui_ca", *args], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "tui_ca.cli" in modules, result.stderr[-2000:]  # the probe saw the imports at all
    return result, modules


def serial_of(home: Path) -> str:
    return cli.serial_text(CertificateAuthority(home).certificate(1).serial)


@pytest.mark.parametrize(
    "args",
    [
        ["show", "1"],
        ["show", "2"],
        ["show", "1", "--json"],
        ["list"],
        ["list", "certs"],
        ["list", "certs", "--json"],
        ["export", "1"],
        ["ca-cert"],
    ],
)
def test_a_command_that_signs_nothing_does_not_import_x509(home, args):
    result, modules = imported("--home", str(home), *args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(modules & set(SIGNING_MODULES)) == []


def test_show_by_serial_does_not_import_x509(home):
    result, modules = imported("--home", str(home), "show", serial_of(home))
    assert result.returncode == 0 and "Certificate ID   1" in result.stdout
    assert sorted(modules & set(SIGNING_MODULES)) == []


def test_help_imports_neither_cryptography_nor_the_store(home):
    for args in (["--help"], ["help", "show"], ["show", "--help"]):
        result, modules = imported(*args)
        assert result.returncode == 0, args
        loaded = {m for m in modules if m.split(".")[0] in ("cryptography", "tinydb", "textual")}
        assert loaded == set(), args


def test_show_under_an_approval_policy_checks_its_signature_without_x509(home, tmp_path):
    policed = tmp_path / "policed"
    ca = CertificateAuthority(policed, actor=Actor("setup"))
    ca.init(CA_NAMES)
    ca.submit(csr_pem(make_csr(cn="two.example")), requester="two")
    assert cli.main(["--home", str(policed), "policy", "set", "--approvals", "2"]) == 0
    result, modules = imported("--home", str(policed), "show", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Approvals        0 of 2 (none yet)" in result.stdout
    assert "cryptography.x509" not in modules


def test_only_the_chosen_commands_arguments_are_added(monkeypatch):
    called: list[str] = []
    for name, spec in cli.SPECS.items():
        monkeypatch.setitem(cli.SPECS, name, spec._replace(arguments=lambda p, n=name, f=spec.arguments: (
            called.append(n), f(p))))  # fmt: skip
    args = cli.parse(["--home", "/nonexistent", "show", "7"])
    assert (args.command, args.id, called) == ("show", "7", ["show"])


def test_show_builds_no_dataclass_models(home):
    # show works on stored fields; dataclasses (and the inspect module it loads) cost it ~14 ms of start-up.
    result, modules = imported("--home", str(home), "show", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dataclasses" not in modules and "tui_ca.engine.models" not in modules


def _queued_home(root: Path, count: int) -> Path:
    home = root / "queued"
    ca = CertificateAuthority(home, actor=Actor("setup"))
    ca.init(CA_NAMES)
    for n in range(count):
        ca.submit(csr_pem(make_csr(cn=f"q{n}.example")), requester=f"q{n}")
    return home


def test_an_approve_loads_neither_the_outbox_nor_concurrent_futures(tmp_path):
    # Without notify settings no event is wanted; the commit's fsync threads need no executor (and its logging).
    home = _queued_home(tmp_path, 1)
    result, modules = imported("--home", str(home), "approve", "1")
    assert result.returncode == 0 and result.stdout.startswith("1 "), result.stderr[-2000:]
    assert sorted(m for m in modules if m.startswith(("tui_ca.engine.notify.", "concurrent", "logging"))) == []
    assert CertificateAuthority(home).certificate(1) is not None


def test_a_one_shot_command_writes_all_its_output_before_its_quick_exit(tmp_path):
    # The console script leaves with os._exit: block-buffered output to a file must be flushed first,
    # and the exit code (3: partial success) must be main's.
    home = _queued_home(tmp_path, 2)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        code = subprocess.run([sys.executable, "-m", "tui_ca", "--home", str(home), "approve", "1", "99", "2"],
                              stdout=stdout, stderr=stderr, timeout=120).returncode  # fmt: skip
    assert code == cli.EXIT_PARTIAL
    lines = out.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2"] and all(len(line.split()) == 2 for line in lines)
    assert err.read_text() == "tui-ca: request 99: no request with Certificate ID 99\n"
    ca = CertificateAuthority(home)
    assert [cli.serial_text(ca.certificate(n).serial) for n in (1, 2)] == [line.split()[1] for line in lines]


def test_a_one_shot_command_into_a_closed_pipe_exits_as_before(tmp_path):
    # A reader that went away: quiet, as before the quick exit (main treats a broken pipe as success).
    home = _queued_home(tmp_path, 1)
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run([sys.executable, "-m", "tui_ca", "--home", str(home), "show", "1"], stdout=writer,
                                stderr=subprocess.PIPE, timeout=120)  # fmt: skip
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (cli.EXIT_OK, b"")
