"""Start-up stays lazy: a command that signs nothing loads no x509, and only its own parser is built.

The modules a real process imports are read from its ``-X importtime``
output, so the probe runs the command exactly as an admin does.
"""

from __future__ import annotations

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
