"""The stylesheet ships: build the wheel, install it in a fresh venv, start the UI from there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path

    import tui_ca
    from tui_ca.demo import create_demo_home
    from tui_ca.tui.app import CAApp, stylesheet

    # The code and the stylesheet come from the installed wheel, not the source tree.
    assert Path(tui_ca.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), tui_ca.__file__
    assert stylesheet().is_file() and stylesheet().resolve().is_relative_to(Path(sys.prefix).resolve())

    async def main():
        app = CAApp(create_demo_home(Path(sys.argv[1])))
        async with app.run_test(size=(80, 24)) as pilot:
            await app.ready_event.wait()
            await pilot.pause()
            # Rules that exist only in styles/app.tcss:
            assert app.screen.query_one("#queued-pane").styles.min_height.value == 4
            assert app.screen.query_one("#ca-header").styles.max_height.value == 8
            print("styled", len(app.screen.query_one("#queued").keys()))

    asyncio.run(main())
    """
)


def test_installed_wheel_starts_with_its_stylesheet(tmp_path):
    # Built from a copy of the files the wheel is made of, so nothing left in the
    # checkout (build/, *.egg-info, another test's build) can slip into it.
    source = tmp_path / "source"
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("tui_ca", "styles"):
        shutil.copytree(ROOT / name, source / name, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    # An isolated build gets the setuptools that pyproject.toml asks for (the
    # running interpreter's may be older than the bdist_wheel it needs).
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
                   check=True, timeout=600)  # fmt: skip
    wheel = next(dist.glob("tui_ca-*.whl"))
    # A venv that sees neither the test venv nor the base Python's packages: the
    # wheel's declared dependencies must be enough. pip takes them from its cache
    # (filled by the README's install) or the index that install used.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=600)
    script = tmp_path / "check.py"
    script.write_text(CHECK)
    # Run from an empty folder with isolated paths, so the source checkout cannot be imported by accident.
    result = subprocess.run([str(python), "-I", str(script), str(tmp_path / "home")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "styled 3"
