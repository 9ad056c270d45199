"""Approval figures: bulk approval against ``openssl ca``, and approval latency at scale.

* ``bulk-approve``: N queued CSRs approved by ONE ``tui-ca approve 1 … N``
  process, against the same CSRs issued by N ``openssl ca -batch`` processes
  (how admins script it), same CA key and certificate, interleaved repeats.
* ``approve-latency``: with 1,000 / 10,000 / 100,000 certificates in the
  store, the median time to approve one queued request in a warm process,
  and the wall time of a one-shot ``tui-ca approve ID`` process. Both are
  reported against the smallest size: a flat ratio shows that neither a
  transaction nor a starting process reads the whole store.
"""

from __future__ import annotations

import resource
from pathlib import Path

from cryptography import x509

from bench.common import (
    BENCH_ACTOR,
    SeededHome,
    median,
    new_ca,
    row,
    run_cli,
    setup_row,
    timed,
)
from bench.openssl_baseline import issue_with_openssl_ca, make_csrs, make_openssl_ca_dir
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.reader import ISSUING_CERT, ISSUING_KEY

BULK_GOAL = 5.0
LATENCY_GOAL = 3.0
# A one-shot process should cost the same at any size; 1.5 leaves room for noise.
CLI_GOAL = 1.5


def _children_cpu() -> float:
    """User + system seconds of finished child processes (a load-independent cross-check)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _check_issued(pem: bytes, issuing: x509.Certificate) -> None:
    """A fast figure must come from real certificates."""
    x509.load_pem_x509_certificate(pem).verify_directly_issued_by(issuing)


def bulk_approve(workdir: Path, *, count: int = 200, repeats: int = 3) -> list[dict]:
    """One ``tui-ca approve`` process for ``count`` IDs vs ``count`` openssl processes."""
    home = workdir / "bulk-home"
    ca = new_ca(home)
    issuing = ca.issuing_cert()
    config = make_openssl_ca_dir(workdir / "bulk-openssl", (home / ISSUING_CERT).read_bytes(),
                                 (home / ISSUING_KEY).read_bytes())  # fmt: skip
    csr_paths = make_csrs(workdir / "bulk-csrs", count)
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    for rep in range(repeats):
        # The same CSR bytes each round; a new requester name per round keeps
        # the one-active-certificate-per-requester rule out of the way.
        items = [(path.read_bytes(), f"round{rep}-{path.stem}") for path in csr_paths]
        ids = [r.request.id for r in ca.submit_many(items, source="bench")]
        cpu = _children_cpu()
        seconds, stdout = run_cli(home, "approve", *map(str, ids))
        ours_cpu.append(_children_cpu() - cpu)
        if len(stdout.splitlines()) != count:
            raise RuntimeError(f"tui-ca approve printed {len(stdout.splitlines())} lines, expected {count}")
        _check_issued(ca.certificate_pem(ids[-1]), issuing)
        ours.append(seconds)
        out_dir = workdir / f"bulk-openssl-out-{rep}"
        cpu = _children_cpu()
        theirs.append(issue_with_openssl_ca(config, csr_paths, out_dir))
        theirs_cpu.append(_children_cpu() - cpu)
        issued = sorted(out_dir.glob("*.pem"))
        if len(issued) != count:
            raise RuntimeError(f"openssl issued {len(issued)} certificates, expected {count}")
        _check_issued(issued[-1].read_bytes(), issuing)
    ours_s, theirs_s = median(ours), median(theirs)
    ratio = theirs_s / ours_s
    return [row("bulk-approve", f"Bulk approval, {count} CSRs: 1 `tui-ca approve` process vs {count} `openssl ca -batch`",
                ours_s, theirs_s, ratio, f"≥ {BULK_GOAL:g} (openssl ÷ tui-ca)", ratio >= BULK_GOAL,
                note=f"median of {repeats}; CPU time (less load-sensitive): tui-ca {median(ours_cpu):.2f} s, "
                     f"openssl {median(theirs_cpu):.2f} s, ratio {median(theirs_cpu) / median(ours_cpu):.2f}")]  # fmt: skip


def _in_process_latency(home: Path, seeded: SeededHome, runs: int) -> float:
    """Median seconds of single-ID ``approve`` calls on a fresh, warmed-up CA object."""
    ids = seeded.queue(runs + 1, prefix="lat")
    ca = CertificateAuthority(home, actor=BENCH_ACTOR)
    times = []
    for n, request_id in enumerate(ids):
        seconds, outcomes = timed(lambda request_id=request_id: ca.approve([request_id]))
        if outcomes[0].certificate is None:
            raise RuntimeError(f"approve {request_id} refused: {outcomes[0].error}")
        if n:  # the first call loads the key and the shards it touches
            times.append(seconds)
    seeded.cert_ids.extend(ids)
    return median(times)


def _cli_latency(home: Path, seeded: SeededHome, runs: int) -> float:
    ids = seeded.queue(runs, prefix="cli")
    times = []
    for request_id in ids:
        seconds, stdout = run_cli(home, "approve", str(request_id))
        if not stdout.startswith(f"{request_id} "):
            raise RuntimeError(f"tui-ca approve {request_id} printed {stdout!r}")
        times.append(seconds)
    seeded.cert_ids.extend(ids)
    return median(times)


def approve_latency(seeded: SeededHome, *, sizes=(1_000, 10_000, 100_000), runs: int = 20,
                    cli_runs: int = 5) -> list[dict]:  # fmt: skip
    """Latency rows for each size, each as a ratio against the first size."""
    in_process: dict[int, float] = {}
    cli: dict[int, float] = {}
    setup: list[dict] = []
    for size in sizes:
        before, had = seeded.seed_seconds, len(seeded.cert_ids)
        seeded.grow_to(size)
        grown = len(seeded.cert_ids) - had
        if grown:
            setup.append(setup_row(f"Seed {had:,} → {len(seeded.cert_ids):,} certificates (submit_many + approve, "
                                   f"batches of 5,000)", seeded.seed_seconds - before,
                                   note=f"{(seeded.seed_seconds - before) / grown * 1000:.2f} ms per certificate"))  # fmt: skip
        in_process[size] = _in_process_latency(seeded.home, seeded, runs)
        cli[size] = _cli_latency(seeded.home, seeded, cli_runs)
    base = sizes[0]
    rows = []
    for size in sizes:
        ratio = in_process[size] / in_process[base]
        last = size == sizes[-1]
        rows.append(row("approve-latency", f"Approve one request in-process, {size:,} certificates in store",
                        in_process[size], in_process[base], ratio,
                        f"≤ {LATENCY_GOAL:g} (÷ {base:,} figure)" if last else f"(÷ {base:,} figure)",
                        ratio <= LATENCY_GOAL if last else None, unit="ms",
                        note=f"median of {runs} single-ID calls, warm process"))  # fmt: skip
    for size in sizes:
        ratio = cli[size] / cli[base]
        last = size == sizes[-1]
        rows.append(row("approve-latency", f"One-shot `tui-ca approve ID` process, {size:,} certificates in store",
                        cli[size], cli[base], ratio,
                        f"≤ {CLI_GOAL:g} (÷ {base:,} figure)" if last else f"(÷ {base:,} figure)",
                        ratio <= CLI_GOAL if last else None, unit="ms",
                        note=f"median of {cli_runs} processes, start-up included"))  # fmt: skip
    return rows + setup
