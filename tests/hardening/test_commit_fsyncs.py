"""The order of a commit's fsyncs, read from a real approve process under strace.

What a power loss may not undo once ``approve`` printed its serial: every
record file's data is synced before the journal is placed, the journal is,
and every folder a record file was renamed into is synced before the journal
goes. The generation file (a seqlock for lock-free readers of one boot) and the
listing bodies (each fingerprints the shard it was made from and itself, so
one a power loss tore is made again) are the files neither synced nor waited for.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from helpers import CA_NAMES, TUI_CA, csr_pem, make_csr

from tests.server.live import require
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.models import Actor

# A call's first line, finished or not: the threads' calls interleave ("<unfinished ...>").
_CALL = re.compile(r'^\d+\s+(fsync|rename|unlink)\((?:\d+<([^>]*)>|"([^"]*)", "([^"]*)"|"([^"]*)")')


def _traced_approve(tmp_path: Path) -> tuple[Path, list[tuple[str, ...]]]:
    home = tmp_path / "home"
    ca = CertificateAuthority(home, actor=Actor("setup"))
    ca.init(CA_NAMES)
    ca.submit(csr_pem(make_csr(cn="traced.example")), requester="traced")
    trace = tmp_path / "trace.txt"
    result = subprocess.run(["strace", "-f", "-y", "-e", "trace=fsync,rename,unlink", "-o", str(trace), *TUI_CA,
                             "--home", str(home), "approve", "1"], capture_output=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    calls = []
    for line in trace.read_text().splitlines():
        match = _CALL.match(line)
        if match:
            name, synced, source, dest, removed = match.groups()
            calls.append((name, synced or source or removed, *([dest] if dest else [])))
    return home.resolve(), calls


@pytest.mark.journal_commits  # a commit through the journal (test_change_log.py traces one through the log)
def test_a_commit_syncs_what_a_power_loss_could_undo_and_not_the_generation(tmp_path):
    require("strace")
    home, calls = _traced_approve(tmp_path)
    db, tmp = str(home / "db"), str(home / ".tmp")
    placed = next(i for i, call in enumerate(calls) if call[:1] == ("rename",) and call[2] == f"{db}/journal.json")
    removed = next(i for i, call in enumerate(calls) if call == ("unlink", f"{db}/journal.json"))
    synced_before = {call[1] for call in calls[:placed] if call[0] == "fsync"}
    renames = {call[1]: call[2] for call in calls[placed + 1 : removed] if call[0] == "rename"}
    listing = f"{db}/listing/"
    bodies = {src: dest for src, dest in renames.items() if dest.startswith(listing)}
    records = {src: dest for src, dest in renames.items() if dest != f"{db}/generation" and src not in bodies}
    assert len(records) >= 5 and len(renames) == len(records) + len(bodies) + 1, renames  # request, indexes...
    # The listing bodies prove themselves against their shards (listing_files.py): neither their data
    # nor their folders are synced.
    assert len(bodies) == 2 and not set(bodies) & {call[1] for call in calls if call[0] == "fsync"}
    bodies_folders = {f"{db}/listing", f"{db}/listing/requests"}
    assert not {call[1] for call in calls[placed:removed] if call[0] == "fsync"} & bodies_folders
    assert set(records) <= synced_before and f"{tmp}/journal" in synced_before and tmp in synced_before
    generation_tmp = next(src for src, dest in renames.items() if dest == f"{db}/generation")
    assert generation_tmp not in {call[1] for call in calls if call[0] == "fsync"}
    # The journal's rename into db/ is durable before any record file is renamed into place.
    db_synced = next(i for i, call in enumerate(calls) if call == ("fsync", db) and i > placed)
    assert db_synced < min(i for i, call in enumerate(calls) if call[0] == "rename" and i > placed)
    # Every folder a record file landed in is synced after that file's rename, before the journal goes.
    renamed_at = {call[2]: i for i, call in enumerate(calls[:removed]) if call[0] == "rename" and i > placed}
    for dest in records.values():
        folder = str(Path(dest).parent)
        assert any(call == ("fsync", folder) for call in calls[renamed_at[dest] + 1 : removed]), dest
    assert ("fsync", db) not in calls[db_synced + 1 : removed]  # only the generation landed in db/ itself
