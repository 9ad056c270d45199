"""The engine and the server are libraries with no knowledge of screens.

Two checks: statically, no module under tui_ca/engine or tui_ca/server names
textual in an import; dynamically, importing them (and the CLI, whose
non-UI commands must start fast) in a fresh interpreter loads no textual.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tui_ca"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_engine_and_server_sources_never_import_textual():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for layer in ("engine", "server")
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in imported_modules(path)
        if name == "textual" or name.startswith("textual.") or name.startswith("tui_ca.tui")
    ]
    assert offenders == []


def test_importing_engine_server_and_cli_loads_no_textual():
    probe = (
        "import sys, importlib, pkgutil, tui_ca.engine, tui_ca.server, tui_ca.cli\n"
        "for pkg in (tui_ca.engine, tui_ca.server):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_only_the_tinydb_backend_imports_tinydb():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in imported_modules(path)
        if (name == "tinydb" or name.startswith("tinydb."))
        and path.relative_to(PACKAGE).as_posix() != "engine/store/tinydb.py"
    ]
    assert offenders == []
    assert "tinydb" in imported_modules(PACKAGE / "engine" / "store" / "tinydb.py")  # the check can fail


def test_engine_operations_know_no_backend_files_or_shards():
    # Only the store package knows how records are kept; the engine speaks the protocol.
    engine = PACKAGE / "engine"
    operations = [engine / name for name in ("ca.py", "reader.py", "listing.py", "setup.py", "intake.py",
                                             "decisions.py", "publishing.py", "operation.py", "authority.py",
                                             "checking.py")]  # fmt: skip
    problems = []
    for path in operations:
        for name in imported_modules(path):
            if name.startswith("tui_ca.engine.store.") and name != "tui_ca.engine.store.protocol":
                problems.append(f"{path.name} imports {name}")
        text = path.read_text().lower()
        for word in ("shard", "tinydb", "doc_id", "db/", ".json"):
            if word in text:
                problems.append(f"{path.name} names {word!r}")
    assert problems == []


def test_the_memory_backend_runs_without_loading_tinydb():
    probe = (
        "import sys\n"
        "from tui_ca.engine import CertificateAuthority\n"
        "from tui_ca.engine.store import open_store\n"
        "open_store(sys.argv[1], 'memory')\n"
        "print('tinydb' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, "/nonexistent-home"], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert result.stdout.strip() == "False"
