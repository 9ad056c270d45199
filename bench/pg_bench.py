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

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script (``python bench/pg_bench.py``): make ``bench.*`` and ``tests.*`` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    BENCH_ACTOR,
    BENCH_NAMES,
    SEED_BATCH,
    CsrFactory,
    SeededHome,
    median,
    new_ca,
    row,
    run_cli,
    setup_row,
    tui_ca_command,
)
from bench.openssl_baseline import _index_serial, _index_time, issue_with_openssl_ca, make_csrs, make_openssl_ca_dir  # noqa: E402
from bench.pg_nodes import Cpu, est_rows  # noqa: E402
from tests.pg_support import PgCluster, start_cluster  # noqa: E402
from tui_ca.engine import CertificateAuthority  # noqa: E402
from tui_ca.engine.home import ISSUING_CERT, ISSUING_KEY  # noqa: E402
from tui_ca.engine.store import postgresql, selection  # noqa: E402
from tui_ca.engine.store.postgresql import PostgreSQLStore  # noqa: E402

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


class _Existing(SeededHome):
    """A TinyDB or PostgreSQL home that holds ``count`` certificates already, grown through the engine's bulk calls.

    The home may come from another run or object (bench/common.py's SeededHome
    names requesters ``seed-…``/``lat-…``), so new requesters carry a token of
    this object: the one-active-certificate rule must not refuse them.
    """

    def __init__(self, home: Path, count: int) -> None:
        self.home = home
        self.ca = CertificateAuthority(home, actor=BENCH_ACTOR)
        self.csrs = CsrFactory()
        self.count = count
        self.token = secrets.token_hex(4)
        self.cert_ids = []
        self.seed_seconds = 0.0
        self._serial = 0

    def fresh_name(self, prefix: str = "seed") -> str:
        self._serial += 1
        return f"{prefix}-{self.token}-{self._serial:07d}.bench.test"

    def grow_to(self, certificates: int) -> None:
        start = time.perf_counter()
        while self.count < certificates:
            ids = self.queue(min(SEED_BATCH, certificates - self.count))
            failed = [o for o in self.ca.approve(ids) if o.certificate is None]
            if failed:
                raise RuntimeError(f"seeding approval refused: {failed[0].error}")
            self.count += len(ids)
        self.seed_seconds += time.perf_counter() - start


def _copy_home(source: Path, dest: Path) -> None:
    """A copy of a home (a seed home is only read, never written)."""
    shutil.copytree(source, dest, symlinks=True)


def _copy_store(cluster: PgCluster, tiny: Path, pg_home: Path) -> tuple[int, dict]:
    """``tui-ca copy-store`` of a copy of ``tiny`` into a new database: its certificate count and a setup row."""
    _copy_home(tiny, pg_home)
    url = cluster.new_ca_database()  # migrated already: the time is the copy's
    with Cpu(cluster) as cpu:
        proc = subprocess.run([*tui_ca_command(), "--home", str(pg_home), "copy-store", "--to", url],
                              capture_output=True, text=True, check=False)  # fmt: skip
    found = re.search(r"copied (\d+) requests, (\d+) certificates", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"tui-ca copy-store exited {proc.returncode}: {proc.stderr.strip()}")
    count = int(found[2])
    per = 1000 / max(count, 1)
    return count, setup_row(f"PostgreSQL: `tui-ca copy-store` of {int(found[1]):,} requests, {count:,} certificates",
                            cpu.wall, note=f"{cpu.wall * per:.2f} ms per certificate; CPU {cpu.ours * per:.2f} ms "
                                           f"tui-ca + {cpu.server * per:.2f} ms PostgreSQL")  # fmt: skip


def _homes(cluster: PgCluster, workdir: Path, sizes: tuple[int, ...],
           seeds: dict[int, Path]) -> Iterator[tuple[int, _Existing, _Existing, list[dict]]]:  # fmt: skip
    """Per size: a TinyDB home and a PostgreSQL home holding the same records, and the setup rows.

    The TinyDB home is a copy of the seed home given for that size, else of the
    previous size's home (or a new CA) grown through submit_many + approve; the
    PostgreSQL home is ``copy-store`` of it, so both hold the same certificates.
    """
    previous: _Existing | None = None
    for size in sizes:
        tiny_home, setup = workdir / f"tiny-{size}", []
        if size in seeds:
            _copy_home(seeds[size], tiny_home)
            count = None
        elif previous is not None:
            _copy_home(previous.home, tiny_home)
            count = previous.count
        else:
            new_ca(tiny_home)
            count = 0
        if count is not None:
            tiny = _Existing(tiny_home, count)
            with Cpu() as cpu:
                tiny.grow_to(size)
            grown = tiny.count - count
            if grown:
                setup.append(setup_row(f"TinyDB: seed {count:,} → {tiny.count:,} certificates (submit_many + approve)",
                                       cpu.wall, note=f"{cpu.wall / grown * 1000:.2f} ms per certificate; CPU "
                                                      f"{cpu.ours / grown * 1000:.2f} ms"))  # fmt: skip
        copied, copy_row = _copy_store(cluster, tiny_home, workdir / f"pg-{size}")
        setup.append(copy_row)
        if count is not None and copied != tiny.count:
            raise RuntimeError(f"copy-store copied {copied} certificates of {tiny.count}")
        tiny = _Existing(tiny_home, copied)
        pg = _Existing(workdir / f"pg-{size}", copied)
        yield size, tiny, pg, setup
        previous = tiny


def _latencies(pg: _Existing, tiny: _Existing, runs: int,
               cluster: PgCluster) -> dict[str, tuple[float, float, float]]:  # fmt: skip
    """Median seconds and CPU seconds of single-ID approvals on a warm CA object, PostgreSQL and TinyDB in turn.

    Interleaved call by call, so both backends meet the same load. CPU (a mean
    per call) is this process's plus the PostgreSQL server's (also apart: the third figure).
    """
    sides = {"PostgreSQL": (pg, cluster), "TinyDB": (tiny, None)}
    queued = {name: seeded.queue(runs + 1, prefix="lat") for name, (seeded, _) in sides.items()}
    warm = {name: CertificateAuthority(seeded.home, actor=BENCH_ACTOR) for name, (seeded, _) in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    servers: dict[str, list[float]] = {name: [] for name in sides}
    for n in range(runs + 1):
        for name, (_, server) in sides.items():
            request_id = queued[name][n]
            with Cpu(server) as cpu:
                start = time.perf_counter()  # inside: reading the server's CPU from /proc is not timed
                outcomes = warm[name].approve([request_id])
                seconds = time.perf_counter() - start
            if outcomes[0].certificate is None:
                raise RuntimeError(f"{name}: approve {request_id} refused: {outcomes[0].error}")
            if n:  # the first call loads the key
                times[name].append(seconds)
                cpus[name].append(cpu.ours + cpu.server)
                servers[name].append(cpu.server)
    for seeded, _ in sides.values():
        seeded.count += runs + 1
    # CPU as a mean: the server's is read from /proc in 10 ms ticks, which a median of single calls rounds away.
    return {name: (median(times[name]), statistics.fmean(cpus[name]), statistics.fmean(servers[name]))
            for name in sides}  # fmt: skip


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


def latency_rows(cluster: PgCluster, workdir: Path, sizes: tuple[int, ...], runs: int, openssl_runs: int,
                 seeds: dict[int, Path] | None = None) -> list[dict]:  # fmt: skip
    """Approve latency per size on PostgreSQL and TinyDB (the same records) and ``openssl ca``, same run."""
    figures: dict[int, dict[str, tuple[float, float, float]]] = {}
    counts: dict[int, int] = {}
    setup: list[dict] = []
    for size, tiny, pg, made in _homes(cluster, workdir, sizes, seeds or {}):
        setup += made
        counts[size] = pg.count
        figures[size] = _latencies(pg, tiny, runs, cluster)
        config = make_openssl_ca_dir(workdir / f"latency-openssl-{size}", (pg.home / ISSUING_CERT).read_bytes(),
                                     (pg.home / ISSUING_KEY).read_bytes())  # fmt: skip
        figures[size]["openssl"] = (*_openssl_latency(config, workdir, counts[size], openssl_runs), 0.0)
        print(f"bench: approve latency at {counts[size]:,} certificates done, {_load()}", file=sys.stderr, flush=True)
    rows = []
    base = sizes[0]
    for size in sizes:
        (pg_s, pg_cpu, pg_server), (tiny_s, tiny_cpu, _) = figures[size]["PostgreSQL"], figures[size]["TinyDB"]
        openssl_s, openssl_cpu, _ = figures[size]["openssl"]
        base_pg, base_tiny = figures[base]["PostgreSQL"], figures[base]["TinyDB"]
        cpu = (f"CPU per approval: PostgreSQL {pg_cpu * 1000:.1f} ms (ours + database, the database's "
               f"{pg_server * 1000:.1f} ms; ÷ {counts[base]:,} figure "
               f"{pg_cpu / base_pg[1]:.2f}), TinyDB {tiny_cpu * 1000:.1f} ms (÷ {counts[base]:,} figure "
               f"{tiny_cpu / base_tiny[1]:.2f}), openssl ca {openssl_cpu * 1000:.1f} ms")  # fmt: skip
        at = f"{counts[size]:,} certificates"
        rows.append(row("pg", f"Approve one request in-process, PostgreSQL, {at}", pg_s, base_pg[0],
                        pg_s / base_pg[0], f"(÷ {counts[base]:,} figure)", None, unit="ms",
                        note=f"TinyDB same records: {tiny_s * 1000:.1f} ms; PostgreSQL ÷ TinyDB {pg_s / tiny_s:.2f} "
                             f"wall, {pg_cpu / tiny_cpu:.2f} CPU; {cpu}"))  # fmt: skip
        rows.append(row("pg", f"Approve one request in-process, TinyDB, {at}", tiny_s, base_tiny[0],
                        tiny_s / base_tiny[0], f"(÷ {counts[base]:,} figure)", None, unit="ms",
                        note=f"median of {runs} single-ID calls (CPU: their mean), interleaved with PostgreSQL's; {cpu}"))  # fmt: skip
        rows.append(row("pg", f"Approve one request, {at}: PostgreSQL in-process vs one `openssl ca -batch` over "
                        "an index.txt of that size", pg_s, openssl_s, openssl_s / pg_s, "(openssl ÷ tui-ca)", None,
                        unit="ms", note=f"openssl start-up included (an admin script pays it); TinyDB ÷ openssl "
                                        f"{tiny_s / openssl_s:.2f}; median of {openssl_runs} openssl runs"))  # fmt: skip
    return rows + setup


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} CPUs at {datetime.now(UTC):%H:%M} UTC"


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


PARTS = ("seed", "bulk", "est", "latency")


def measure(quick: bool = False, *, sizes: dict | None = None, seeds: dict[int, Path] | None = None,
            parts: tuple[str, ...] = PARTS, workdir: Path | None = None) -> list[dict]:  # fmt: skip
    """Every PostgreSQL row (or those of ``parts``) on a throwaway cluster; ``seeds``: TinyDB homes by size."""
    sizes = sizes or (QUICK if quick else FULL)
    cluster = start_cluster(fsync=True)
    rows: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tui-ca-pg-bench-", dir=workdir) as folder:
            work = Path(folder)
            if "seed" in parts:
                rows += seed_rows(cluster, work, sizes["seed"])
            if "bulk" in parts:
                rows += bulk_rows(cluster, work, sizes["bulk"], sizes["repeats"])
            if "est" in parts:
                rows += est_rows(cluster, work, sizes["est"], sizes["clients"], sizes["est_repeats"])
            if "latency" in parts:
                rows += latency_rows(cluster, work, sizes["sizes"], sizes["runs"], sizes["openssl_runs"], seeds)
            return rows
    finally:
        cluster.remove()


def _seed_arg(text: str) -> tuple[int, Path]:
    size, _, path = text.partition("=")
    if not size.isdigit() or not path or not Path(path, "db").is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: want SIZE=HOME, HOME a TinyDB home (with a db/ folder)")
    return int(size), Path(path)


def main(argv: list[str] | None = None) -> int:
    from bench.run import render

    parser = argparse.ArgumentParser(description="PostgreSQL beside TinyDB and openssl ca (see bench/README.md)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of: {', '.join(PARTS)}")
    parser.add_argument("--sizes", default="1000,10000,100000", help="store sizes for the approve latency")
    parser.add_argument("--seed-from", type=_seed_arg, action="append", default=[], metavar="SIZE=HOME",
                        help="start that size from a copy of this TinyDB home (never written), not by seeding "
                             "through the engine; repeatable")  # fmt: skip
    parser.add_argument("--runs", type=int, default=FULL["runs"], help="approvals per size and backend")
    parser.add_argument("--openssl-runs", type=int, default=FULL["openssl_runs"])
    parser.add_argument("--bulk", type=int, default=FULL["bulk"], help="CSRs in the bulk approval")
    parser.add_argument("--repeats", type=int, default=FULL["repeats"], help="rounds of the bulk approval")
    parser.add_argument("--workdir", type=Path, help="the temporary folder goes here")
    args = parser.parse_args(argv)
    parts = tuple(part for part in args.only.split(",") if part)
    if not set(parts) <= set(PARTS):
        parser.error(f"--only takes {', '.join(PARTS)}")
    sizes = {**FULL, "sizes": tuple(int(n) for n in args.sizes.split(",")), "runs": args.runs,
             "openssl_runs": args.openssl_runs, "bulk": args.bulk, "repeats": args.repeats}  # fmt: skip
    started, load = time.perf_counter(), _load()
    rows = measure(sizes=sizes, seeds=dict(args.seed_from), parts=parts, workdir=args.workdir)
    print(render(rows))
    print(f"\nStarted at {load}; ended at {_load()}; total {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
