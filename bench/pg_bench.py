"""PostgreSQL beside TinyDB and `openssl ca`, in the same run.

* Bulk approval: one ``tui-ca approve`` process for 200 IDs on a PostgreSQL
  home and on a TinyDB home, against 200 ``openssl ca -batch`` processes on
  the same CSRs and CA key.
* Approve latency in-process at 1,000 / 10,000 / 100,000 certificates, on
  both backends: each size against the 1,000 figure of its backend, and
  PostgreSQL against TinyDB and against one ``openssl ca -batch`` over an
  index.txt of that size.
* Seeding through the public bulk calls (``submit_many`` + ``approve``) on
  PostgreSQL with the writer's cache (one round trip per window of records)
  against the same calls without it (one round trip per read), same run.
* EST enrollments/s with two ``serve`` nodes on one database against one
  node, the same clients (bench/pg_nodes.py).

Every row's note gives CPU seconds beside the wall time: this process and its
children (the CLI, openssl) and the PostgreSQL server's processes, because
wall time on a shared machine is inflated by other work.

The server is a throwaway cluster (tests/pg_support.py) with ``fsync=on``, so
a commit is as durable as TinyDB's (which fsyncs every file it renames).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
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
from bench.openssl_baseline import _index_serial, _index_time, issue_with_openssl_ca, make_csrs, make_openssl_ca_dir
from bench.pg_nodes import Cpu, est_rows
from tests.pg_support import PgCluster, start_cluster
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.home import ISSUING_CERT, ISSUING_KEY
from tui_ca.engine.store import postgresql, selection
from tui_ca.engine.store.postgresql import PostgreSQLStore

FULL = {"bulk": 200, "repeats": 3, "sizes": (1_000, 10_000, 100_000), "runs": 20, "openssl_runs": 5,
        "seed": 2_000, "est": 192, "clients": 8, "est_repeats": 3}  # fmt: skip
QUICK = {"bulk": 5, "repeats": 1, "sizes": (20, 40), "runs": 3, "openssl_runs": 1, "seed": 20, "est": 8,
         "clients": 2, "est_repeats": 1}  # fmt: skip


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


def _bulk(ca: CertificateAuthority, csr_paths: list[Path], rep: int, cpu: Cpu) -> float:
    items = [(path.read_bytes(), f"round{rep}-{path.stem}") for path in csr_paths]
    ids = [r.request.id for r in ca.submit_many(items, source="bench")]
    with cpu:
        seconds, stdout = run_cli(ca.home, "approve", *map(str, ids))
    if len(stdout.splitlines()) != len(ids):
        raise RuntimeError(f"tui-ca approve printed {len(stdout.splitlines())} lines, expected {len(ids)}")
    return seconds


def _cpu_text(cpus: list[Cpu], server: bool = True) -> str:
    text = f"CPU {median([c.ours for c in cpus]):.2f} s"
    return text + (f" + PostgreSQL {median([c.server for c in cpus]):.2f} s" if server else "")


def bulk_rows(cluster: PgCluster, workdir: Path, count: int, repeats: int) -> list[dict]:
    pg = _pg_ca(cluster, workdir / "pg-bulk")
    tiny = _tinydb_ca(workdir / "tiny-bulk")
    config = make_openssl_ca_dir(workdir / "pg-bulk-openssl", (pg.home / ISSUING_CERT).read_bytes(),
                                 (pg.home / ISSUING_KEY).read_bytes())  # fmt: skip
    csr_paths = make_csrs(workdir / "pg-bulk-csrs", count)
    ours_pg, ours_tiny, theirs = [], [], []
    cpu_pg, cpu_tiny, cpu_openssl = [], [], []
    for rep in range(repeats):
        cpu_pg.append(Cpu(cluster))
        ours_pg.append(_bulk(pg, csr_paths, rep, cpu_pg[-1]))
        cpu_tiny.append(Cpu())
        ours_tiny.append(_bulk(tiny, csr_paths, rep, cpu_tiny[-1]))
        with Cpu() as spent:
            theirs.append(issue_with_openssl_ca(config, csr_paths, workdir / f"pg-bulk-openssl-out-{rep}"))
        cpu_openssl.append(spent)
    pg_s, tiny_s, openssl_s = median(ours_pg), median(ours_tiny), median(theirs)
    note = (f"median of {repeats}; same run: TinyDB {tiny_s:.2f} s, openssl {openssl_s:.2f} s; PostgreSQL "
            f"{_cpu_text(cpu_pg)}, TinyDB {_cpu_text(cpu_tiny, False)}, openssl {_cpu_text(cpu_openssl, False)}")  # fmt: skip
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


def _latency(seeded: SeededHome, runs: int, cluster: PgCluster | None) -> tuple[float, float]:
    """Median seconds and CPU seconds (ours + the database's) of single-ID approvals on a warm CA object."""
    ids = seeded.queue(runs + 1, prefix="lat")
    ca = CertificateAuthority(seeded.home, actor=BENCH_ACTOR, store=seeded.ca.store)
    times, cpus = [], []
    for n, request_id in enumerate(ids):
        with Cpu(cluster) as cpu:
            seconds, outcomes = timed(lambda request_id=request_id: ca.approve([request_id]))
        if outcomes[0].certificate is None:
            raise RuntimeError(f"approve {request_id} refused: {outcomes[0].error}")
        if n:  # the first call loads the key
            times.append(seconds)
            cpus.append(cpu.ours + cpu.server)
    seeded.cert_ids.extend(ids)
    return median(times), median(cpus)


def _openssl_latency(config: Path, workdir: Path, size: int, runs: int) -> tuple[float, float]:
    """Median seconds (and CPU) of one ``openssl ca -batch`` over an index.txt of ``size`` valid entries."""
    expiry = _index_time(datetime.now(UTC) + timedelta(days=365), utc_only=False)
    lines = [f"V\t{expiry}\t\t{_index_serial(0x1000 + n)}\tunknown\t/CN=seed-{n}\n" for n in range(size)]
    (config.parent / "index.txt").write_text("".join(lines))
    csr_paths = make_csrs(workdir / f"openssl-lat-csrs-{size}", runs)
    times, cpus = [], []
    for n, path in enumerate(csr_paths):
        with Cpu() as cpu:
            times.append(issue_with_openssl_ca(config, [path], workdir / f"openssl-lat-out-{size}-{n}"))
        cpus.append(cpu.ours)
    return median(times), median(cpus)


def latency_rows(cluster: PgCluster, workdir: Path, sizes: tuple[int, ...], runs: int,
                 openssl_runs: int) -> list[dict]:  # fmt: skip
    pg = _PgSeeded(cluster, workdir / "pg-scale")
    tiny = SeededHome(workdir / "tiny-scale")
    config = make_openssl_ca_dir(workdir / "latency-openssl", (pg.home / ISSUING_CERT).read_bytes(),
                                 (pg.home / ISSUING_KEY).read_bytes())  # fmt: skip
    figures: dict[str, dict[int, tuple[float, float]]] = {"PostgreSQL": {}, "TinyDB": {}, "openssl": {}}
    setup = []
    for size in sizes:
        for name, seeded in (("PostgreSQL", pg), ("TinyDB", tiny)):
            before, had = seeded.seed_seconds, len(seeded.cert_ids)
            with Cpu(cluster if seeded is pg else None) as cpu:
                seeded.grow_to(size)
            if len(seeded.cert_ids) > had:
                spent, grown = seeded.seed_seconds - before, len(seeded.cert_ids) - had
                setup.append(setup_row(f"{name}: seed {had:,} → {len(seeded.cert_ids):,} certificates", spent,
                                       note=f"{spent / grown * 1000:.2f} ms per certificate; CPU "
                                            f"{cpu.ours / grown * 1000:.2f} ms"
                                            + (f" + database {cpu.server / grown * 1000:.2f} ms" if seeded is pg else "")))  # fmt: skip
            figures[name][size] = _latency(seeded, runs, cluster if seeded is pg else None)
        figures["openssl"][size] = _openssl_latency(config, workdir, size, openssl_runs)
    rows = []
    base = sizes[0]
    for size in sizes:
        (pg_s, pg_cpu), (tiny_s, tiny_cpu) = figures["PostgreSQL"][size], figures["TinyDB"][size]
        openssl_s, openssl_cpu = figures["openssl"][size]
        cpu = (f"CPU per approval: PostgreSQL {pg_cpu * 1000:.1f} ms (ours + database), TinyDB {tiny_cpu * 1000:.1f} ms, "
               f"openssl ca {openssl_cpu * 1000:.1f} ms")  # fmt: skip
        rows.append(row("pg", f"Approve one request in-process, PostgreSQL, {size:,} certificates",
                        pg_s, figures["PostgreSQL"][base][0], pg_s / figures["PostgreSQL"][base][0],
                        f"(÷ {base:,} figure)", None, unit="ms",
                        note=f"TinyDB same size: {tiny_s * 1000:.1f} ms; PostgreSQL ÷ TinyDB {pg_s / tiny_s:.2f}; {cpu}"))  # fmt: skip
        rows.append(row("pg", f"Approve one request in-process, TinyDB, {size:,} certificates",
                        tiny_s, figures["TinyDB"][base][0], tiny_s / figures["TinyDB"][base][0],
                        f"(÷ {base:,} figure)", None, unit="ms", note=f"median of {runs} single-ID calls; {cpu}"))  # fmt: skip
        rows.append(row("pg", f"Approve one request, {size:,} certificates: PostgreSQL in-process vs one "
                        "`openssl ca -batch` over an index.txt of that size", pg_s, openssl_s, openssl_s / pg_s,
                        "(openssl ÷ tui-ca)", None, unit="ms",
                        note=f"openssl start-up included (an admin script pays it); TinyDB ÷ openssl "
                             f"{tiny_s / openssl_s:.2f}; median of {openssl_runs} openssl runs"))  # fmt: skip
    return rows + setup


@contextmanager
def _without_writer_cache() -> Iterator[None]:
    """The PostgreSQL writer as it was before its cache: every keyed read is a round trip of its own."""
    transaction, view = postgresql._Transaction, postgresql._View
    names = ("get_request", "get_csr_pem", "find_requester", "find_serial", "find_csr", "find_compromised")
    saved = {name: transaction.__dict__[name] for name in names}
    prefetch = transaction.__dict__["prefetch_intake"]
    try:
        for name in names:
            setattr(transaction, name, view.__dict__[name])
        del transaction.prefetch_intake
        yield
    finally:
        for name, method in saved.items():
            setattr(transaction, name, method)
        transaction.prefetch_intake = prefetch  # type: ignore[attr-defined]


def seed_rows(cluster: PgCluster, workdir: Path, count: int) -> list[dict]:
    """Seeding ``count`` certificates through submit_many + approve: with the writer's cache against without it."""
    spent: dict[bool, Cpu] = {}
    for cached in (False, True):
        seeded = _PgSeeded(cluster, workdir / f"pg-seed-{'cached' if cached else 'plain'}")
        with Cpu(cluster) as cpu:
            if cached:
                seeded.grow_to(count)
            else:
                with _without_writer_cache():
                    seeded.grow_to(count)
        spent[cached] = cpu
    new, old = spent[True], spent[False]
    per = 1000 / count
    note = (f"per certificate: {new.wall * per:.2f} ms vs {old.wall * per:.2f} ms wall; CPU {new.ours * per:.2f} ms vs "
            f"{old.ours * per:.2f} ms here, {new.server * per:.2f} ms vs {old.server * per:.2f} ms in PostgreSQL")  # fmt: skip
    return [row("pg", f"Seed {count:,} certificates on PostgreSQL (submit_many + approve): writer cache vs one "
                "round trip per read", new.wall, old.wall, old.wall / new.wall, "(before ÷ after)", None, note=note)]  # fmt: skip


def measure(quick: bool = False) -> list[dict]:
    sizes = QUICK if quick else FULL
    cluster = start_cluster(fsync=True)
    try:
        with tempfile.TemporaryDirectory(prefix="tui-ca-pg-bench-") as folder:
            workdir = Path(folder)
            rows = seed_rows(cluster, workdir, sizes["seed"])
            rows += bulk_rows(cluster, workdir, sizes["bulk"], sizes["repeats"])
            rows += est_rows(cluster, workdir, sizes["est"], sizes["clients"], sizes["est_repeats"])
            rows += latency_rows(cluster, workdir, sizes["sizes"], sizes["runs"], sizes["openssl_runs"])
            return rows
    finally:
        cluster.remove()
