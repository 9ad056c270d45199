"""The UI in a real terminal (tmux): 16 and 256 colours, truecolor, NO_COLOR.

Textual picks its colour system from TERM/COLORTERM; these tests read back
the escape codes the app really sent (tmux capture-pane -e) to prove it
stays within what each terminal can show, and that q leaves cleanly.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

SGR = re.compile(r"\x1b\[([0-9;]*)m")
TUI_CA = [sys.executable, "-m", "tui_ca"]


def colour_codes(screen: str) -> list[str]:
    """Colour parameters of every SGR sequence on the captured screen."""
    found = []
    for params in SGR.findall(screen):
        parts = params.split(";")
        i = 0
        while i < len(parts):
            if parts[i] in ("38", "48") and i + 1 < len(parts):
                width = 5 if parts[i + 1] == "2" else 3
                found.append(";".join(parts[i : i + width]))
                i += width
            else:
                i += 1
    return found


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("terminal") / "demo"
    subprocess.run([*TUI_CA, "--home", str(home), "demo", "--no-ui"], check=True, capture_output=True)
    return home


class Tmux:
    """One private tmux server running one command at 80x24."""

    def __init__(self) -> None:
        assert shutil.which("tmux"), "tmux is required (installed by .ci/run)"
        self.socket = f"tui-ca-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True)

    def start(self, command: str) -> None:
        # remain-on-exit keeps the pane so the test can see the command ended.
        result = self.run("new-session", "-d", "-x", "80", "-y", "24", "-s", "ui", command)
        assert result.returncode == 0, result.stderr
        self.run("set-option", "-t", "ui", "remain-on-exit", "on")

    def screen(self, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "ui").stdout

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (screen := self.screen()):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; screen was:\n{self.screen()}")

    def pane_dead(self) -> bool:
        return self.run("display-message", "-p", "-t", "ui", "#{pane_dead}").stdout.strip() == "1"

    def close(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux():
    session = Tmux()
    yield session
    session.close()


def start_ui(tmux: Tmux, home: Path, env: str) -> str:
    tmux.start(f"env {env} {' '.join(TUI_CA)} --home {home}")
    tmux.wait_for("Approved Certificates")
    # The first paint has settled once two captures a moment apart agree.
    deadline = time.monotonic() + 60
    previous = tmux.screen(escapes=True)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if (current := tmux.screen(escapes=True)) == previous:
            return current
        previous = current
    raise AssertionError(f"the screen never settled:\n{previous}")


def quit_ui(tmux: Tmux) -> None:
    tmux.run("send-keys", "-t", "ui", "q")
    deadline = time.monotonic() + 60
    while not tmux.pane_dead() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tmux.pane_dead(), "q did not end the UI"


def test_sixteen_colour_terminal_gets_only_palette_colours(tmux, demo_home):
    screen = start_ui(tmux, demo_home, "TERM=xterm-16color COLORTERM=")
    assert "Queued CSRs" in screen
    assert colour_codes(screen) == [], "256-colour or RGB codes sent to a 16-colour terminal"
    assert re.search(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|4[0-7]|10[0-7])[;m]", screen), "no palette colours at all"
    quit_ui(tmux)


def test_256_colour_terminal_gets_no_truecolor(tmux, demo_home):
    codes = colour_codes(start_ui(tmux, demo_home, "TERM=xterm-256color COLORTERM="))
    assert codes and all(code.split(";")[1] == "5" for code in codes), codes
    quit_ui(tmux)


def test_no_color_leaves_only_greys(tmux, demo_home):
    plain = colour_codes(start_ui(tmux, demo_home, "TERM=xterm-256color COLORTERM=truecolor"))
    quit_ui(tmux)

    def chromatic(codes):
        return [c for c in codes if c.split(";")[1] == "2" and len(set(c.split(";")[2:])) > 1]

    assert chromatic(plain), "the normal screen should use colour, or this test proves nothing"
    tmux.close()
    tmux.__init__()
    monochrome = colour_codes(start_ui(tmux, demo_home, "TERM=xterm-256color COLORTERM=truecolor NO_COLOR=1"))
    assert chromatic(monochrome) == []
    quit_ui(tmux)
