"""Command-line conventions: --version, help everywhere, did-you-mean, completion, colour, lazy start-up."""

from __future__ import annotations

import argparse
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CA_NAMES, TUI_CA, csr_pem, make_csr, run_cli

from tui_ca import __version__
from tui_ca.cli import SPECS, build_parser
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.models import Actor

ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("cli-conventions") / "home"
    ca = CertificateAuthority(home, actor=Actor("setup"))
    ca.init(CA_NAMES)
    for name in ("kept", "waiting"):
        ca.submit(csr_pem(make_csr(cn=f"{name}.example")), requester=name)
    ca.approve([1])
    return home


def _plain(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TUI_CA, *args], capture_output=True, text=True, timeout=120)


def test_version():
    result = _plain("--version")
    assert (result.returncode, result.stdout) == (0, f"tui-ca {__version__}\n")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_argument_of_every_command_has_help():
    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) == set(SPECS)
    missing = [
        f"{name} {action.dest}"
        for name, command in [("tui-ca", parser), *commands.items()]
        for action in command._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert missing == []


def test_only_the_chosen_commands_parser_is_built():
    commands = _subparsers(build_parser(only=["show"]))
    assert list(commands) == ["show"]
    assert {a.dest for a in commands["show"]._actions} >= {"id", "json"}
    assert _subparsers(build_parser(only=())) == {}


@pytest.mark.parametrize("args", [["help", "approve"], ["approve", "--help"]])
def test_help_for_one_command(args):
    result = _plain(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: tui-ca approve") and "--days" in result.stdout


def test_top_level_help_lists_commands_and_exit_codes():
    result = _plain("help")
    assert result.returncode == 0
    assert all(name in result.stdout for name in SPECS)
    assert re.search(r"^  3 +approve issued some of the IDs and refused others$", result.stdout, re.M)


def _complete(line: str, tmp_path: Path, shell: str = "bash") -> list[str]:
    """Ask tui-ca for completions the way the shell code from `tui-ca completion` does."""
    out = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": shell, "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"}  # fmt: skip
    result = subprocess.run(TUI_CA, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out.read_text().split("\n")


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_and_completions(shell, tmp_path):
    script = _plain("completion", shell)
    assert script.returncode == 0 and "tui-ca" in script.stdout and "_ARGCOMPLETE" in script.stdout
    assert [c.split(":")[0].strip() for c in _complete("tui-ca appr", tmp_path, shell)] == ["approve"]
    assert {c.split(":")[0].strip() for c in _complete("tui-ca list ", tmp_path, shell)} >= {"requests", "certs"}
    assert "--reason" in {c.split(":")[0].strip() for c in _complete("tui-ca revoke 1 --r", tmp_path, shell)}


def _on_a_terminal(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """stdout of tui-ca run on a real pseudo-terminal."""
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    environment.update({"TERM": "xterm-256color", **(env or {})})
    with subprocess.Popen([*TUI_CA, "--home", str(home), *args], stdout=terminal, stderr=subprocess.PIPE,
                          env=environment) as proc:  # fmt: skip
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    os.close(controller)
    return b"".join(chunks).decode()


def test_statuses_are_coloured_on_a_terminal_only(home):
    for args in (["list", "certs"], ["list"], ["show", "1"]):
        coloured = _on_a_terminal(home, *args)
        assert "\x1b[32m" in coloured, args  # valid / approved in green
        assert ESCAPE.sub("", coloured).replace("\r\n", "\n") == run_cli(home, *args, check=True).stdout.decode()
        assert ESCAPE.search(_on_a_terminal(home, *args, env={"NO_COLOR": "1"})) is None, args
        assert ESCAPE.search(run_cli(home, *args).stdout.decode()) is None, args
    assert "\x1b[33mqueued\x1b[0m" in _on_a_terminal(home, "list")


def test_a_command_that_signs_nothing_loads_no_signing_code():
    probe = (
        "import sys\n"
        "from tui_ca import cli\n"
        "sys.argv = ['tui-ca', '--help']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('cryptography', 'tinydb', 'textual', 'tui_ca.engine.ca') if m in sys.modules]\n"
        "print(heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_show_does_not_load_the_signing_code(home):
    probe = (
        "import sys\n"
        "from tui_ca import cli\n"
        f"code = cli.main(['--home', {str(home)!r}, 'show', '1'])\n"
        "print(code, 'tui_ca.engine.ca' in sys.modules, 'tui_ca.engine.profile' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "0 False False"
