"""PostgreSQL beside TinyDB and `openssl ca`, in the same run.

* Bulk approval: one ``tui-ca approve`` process for 200 IDs on a PostgreSQL
  home and on a TinyDB home, against 200 ``openssl ca -batch`` processes on
  the same CSRs and CA key.
* Approve latency in-process at 1,000 / 10,000 / 100,000 certificates, on
  both backends: each size against the 1,000 figure of its backend, and
  PostgreSQL against TinyDB at that size.

The server is a throwaway cluster (tests/pg_support.py) with ``fsync=on``, so
a commit is as durable as TinyDB's (which fsyncs every file it renames).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import (
    BENCH_ACTOR,
    BENCH_NAMES,
    CsrFactory,
    SeededHome,
    median,
    row,
    run_cli,
    setup_row,
    timed,
)
from bench.openssl_baseline import issue_with_openssl_ca, make_csrs, make_openssl_ca_dir
from tests.pg_support import PgCluster, start_cluster
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.home import ISSUING_CERT, ISSUING_KEY
from tui_ca.engine.store import selection
from tui_ca.engine.store.postgresql import PostgreSQLStore

FULL = {"bulk": 200, "repeats": 3, "sizes": (1_000, 10_000, 100_000), "runs": 20}
QUICK = {"bulk": 5, "repeats": 1, "sizes": (20, 40), "runs": 3}


def _pg_ca(cluster: PgCluster, home: Path) -> CertificateAuthority:
    url = cluster.new_database("bench")
    store = PostgreSQLStore(url, check_schema=False)
    store.migrate()
    ca = CertificateAuthority(home, store=store, actor=BENCH_ACTOR)
    ca.init(BENCH_NAMES, key_type="ec-p256")
    selection.record(home, selection.DatabaseChoice(url))
    return ca


def _tinydb_ca(home: Path) -> CertificateAuthority:
    ca = CertificateAuthority(home, actor=BENCH_ACTOR, store="tinydb")
    ca.init(BENCH_NAMES, key_type="ec-p256")
    return ca


def _bulk(ca: CertificateAuthority, csr_paths: list[Path], rep: int) -> float:
    items = [(path.read_bytes(), f"round{rep}-{path.stem}") for path in csr_paths]
    ids = [r.request.id for r in ca.submit_many(items, source="bench")]
    seconds, stdout = run_cli(ca.home, "approve", *map(str, ids))
    if len(stdout.splitlines()) != len(ids):
        raise RuntimeError(f"tui-ca approve printed {len(stdout.splitlines())} lines, expected {len(ids)}")
    return seconds


def bulk_rows(cluster: PgCluster, workdir: Path, count: int, repeats: int) -> list[dict]:
    pg = _pg_ca(cluster, workdir / "pg-bulk")
    tiny = _tinydb_ca(workdir / "tiny-bulk")
    config = make_openssl_ca_dir(workdir / "pg-bulk-openssl", (pg.home / ISSUING_CERT).read_bytes(),
                                 (pg.home / ISSUING_KEY).read_bytes())  # fmt: skip
    csr_paths = make_csrs(workdir / "pg-bulk-csrs", count)
    ours_pg, ours_tiny, theirs = [], [], []
    for rep in range(repeats):
        ours_pg.append(_bulk(pg, csr_paths, rep))
        ours_tiny.append(_bulk(tiny, csr_paths, rep))
        theirs.append(issue_with_openssl_ca(config, csr_paths, workdir / f"pg-bulk-openssl-out-{rep}"))
    pg_s, tiny_s, openssl_s = median(ours_pg), median(ours_tiny), median(theirs)
    note = f"median of {repeats}; same run: TinyDB {tiny_s:.2f} s, openssl {openssl_s:.2f} s"
    return [
        row("pg", f"Bulk approval, {count} CSRs, PostgreSQL: 1 `tui-ca approve` vs {count} `openssl ca -batch`",
            pg_s, openssl_s, openssl_s / pg_s, "(openssl ÷ tui-ca)", None, note=note),
        row("pg", f"Bulk approval, {count} CSRs, TinyDB: 1 `tui-ca approve` vs {count} `openssl ca -batch`",
            tiny_s, openssl_s, openssl_s / tiny_s, "(openssl ÷ tui-ca)", None, note=note),
        row("pg", f"Bulk approval, {count} CSRs: PostgreSQL vs TinyDB", pg_s, tiny_s, pg_s / tiny_s,
            "(PostgreSQL ÷ TinyDB)", None, note=note),
    ]  # fmt: skip


class _PgSeeded(SeededHome):
    """SeededHome on a PostgreSQL database."""

    def __init__(self, cluster: PgCluster, home: Path) -> None:
        self.home = home
        self.ca = _pg_ca(cluster, home)
        self.csrs = CsrFactory()
        self.cert_ids = []
        self.seed_seconds = 0.0
        self._serial = 0


def _latency(seeded: SeededHome, runs: int) -> float:
    """Median seconds of single-ID approvals on a warm CA object (the first call loads the key)."""
    ids = seeded.queue(runs + 1, prefix="lat")
    ca = CertificateAuthority(seeded.home, actor=BENCH_ACTOR, store=seeded.ca.store)
    times = []
    for n, request_id in enumerate(ids):
        seconds, outcomes = timed(lambda request_id=request_id: ca.approve([request_id]))
        if outcomes[0].certificate is None:
            raise RuntimeError(f"approve {request_id} refused: {outcomes[0].error}")
        if n:
            times.append(seconds)
    seeded.cert_ids.extend(ids)
    return median(times)


def latency_rows(cluster: PgCluster, workdir: Path, sizes: tuple[int, ...], runs: int) -> list[dict]:
    pg = _PgSeeded(cluster, workdir / "pg-scale")
    tiny = SeededHome(workdir / "tiny-scale")
    figures: dict[str, dict[int, float]] = {"PostgreSQL": {}, "TinyDB": {}}
    setup = []
    for size in sizes:
        for name, seeded in (("PostgreSQL", pg), ("TinyDB", tiny)):
            before, had = seeded.seed_seconds, len(seeded.cert_ids)
            seeded.grow_to(size)
            if len(seeded.cert_ids) > had:
                spent = seeded.seed_seconds - before
                setup.append(setup_row(f"{name}: seed {had:,} → {len(seeded.cert_ids):,} certificates", spent,
                                       note=f"{spent / (len(seeded.cert_ids) - had) * 1000:.2f} ms per certificate"))  # fmt: skip
            figures[name][size] = _latency(seeded, runs)
    rows = []
    base = sizes[0]
    for size in sizes:
        pg_s, tiny_s = figures["PostgreSQL"][size], figures["TinyDB"][size]
        rows.append(row("pg", f"Approve one request in-process, PostgreSQL, {size:,} certificates",
                        pg_s, figures["PostgreSQL"][base], pg_s / figures["PostgreSQL"][base],
                        f"(÷ {base:,} figure)", None, unit="ms",
                        note=f"TinyDB same size: {tiny_s * 1000:.1f} ms; PostgreSQL ÷ TinyDB {pg_s / tiny_s:.2f}"))  # fmt: skip
        rows.append(row("pg", f"Approve one request in-process, TinyDB, {size:,} certificates",
                        tiny_s, figures["TinyDB"][base], tiny_s / figures["TinyDB"][base],
                        f"(÷ {base:,} figure)", None, unit="ms", note=f"median of {runs} single-ID calls"))  # fmt: skip
    return rows + setup


def measure(quick: bool = False) -> list[dict]:
    sizes = QUICK if quick else FULL
    cluster = start_cluster(fsync=True)
    try:
        with tempfile.TemporaryDirectory(prefix="tui-ca-pg-bench-") as folder:
            workdir = Path(folder)
            rows = bulk_rows(cluster, workdir, sizes["bulk"], sizes["repeats"])
            rows += latency_rows(cluster, workdir, sizes["sizes"], sizes["runs"])
            return rows
    finally:
        cluster.remove()
