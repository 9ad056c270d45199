"""Only the PostgreSQL backend imports psycopg; nothing else loads it unless a database is named."""

from __future__ import annotations

import subprocess
import sys

from tests.test_layering import PACKAGE, imported_modules

BACKEND = PACKAGE / "engine" / "store" / "postgresql.py"


def test_only_the_postgresql_backend_imports_psycopg() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != BACKEND
        for name in imported_modules(path)
        if name == "psycopg" or name.startswith("psycopg.") or name.startswith("psycopg_")
    ]
    assert offenders == []
    assert "psycopg" in imported_modules(BACKEND)


def test_the_cli_and_the_engine_load_no_psycopg_without_a_database() -> None:
    probe = (
        "import sys, tui_ca.cli, tui_ca.engine, tui_ca.engine.store, tui_ca.cli_database\n"
        "print(sorted(m for m in sys.modules if m == 'psycopg' or m.startswith('psycopg.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
