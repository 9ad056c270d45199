"""Command-line start-up against openssl's own commands, measured in the same run.

Admins script ``tui-ca`` the way they script openssl, so a command's start-up
is part of its cost. Three rows, each interleaving the two sides run by run so
that load drift hits both alike:

* ``cli-show``: ``tui-ca show ID`` vs ``openssl x509 -noout -text`` on the
  same issued certificate (both read and print one certificate).
* ``cli-approve``: a one-shot ``tui-ca approve ID`` on a home holding 1,000
  certificates vs one ``openssl ca -batch`` issuing one certificate from the
  same CA key (a fresh openssl CA directory for each run, as a script would
  keep one index: its cost at 1,000 lines is a re-read of a small file).
* ``cli-help``: ``tui-ca --help`` vs ``tui-ca show ID``: help must not cost
  more than a command that reads the store.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

# Run as a script too (python bench/cli_startup.py): make ``bench.*`` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CsrFactory, median, new_ca, row, tui_ca_command  # noqa: E402
from bench.openssl_baseline import OPENSSL, issue_with_openssl_ca, make_csrs, make_openssl_ca_dir  # noqa: E402
from tui_ca.engine.reader import ISSUING_CERT, ISSUING_KEY  # noqa: E402

SHOW_GOAL = 2.5
APPROVE_GOAL = 6.0
HELP_GOAL = 1.0


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {proc.stderr.decode().strip()}")
    return elapsed


def measure(quick: bool = False, workdir: Path | None = None) -> list[dict]:
    import tempfile

    runs = 2 if quick else 15
    seeded = 20 if quick else 1_000
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        root = Path(workdir or tmp)
        return _measure(root, runs=runs, seeded=seeded)


def _measure(root: Path, *, runs: int, seeded: int) -> list[dict]:
    home = root / "home"
    ca = new_ca(home)
    factory = CsrFactory()
    items = [(factory.csr(f"seed-{n}"), f"seed-{n}") for n in range(seeded)]
    ids = [r.request.id for r in ca.submit_many(items, source="bench")]
    ca.approve(ids)
    queued = [r.request.id for r in ca.submit_many([(factory.csr(f"one-{n}"), f"one-{n}") for n in range(runs)])]
    shown = str(ids[0])
    cert_pem = root / "shown.pem"
    cert_pem.write_bytes(ca.certificate_pem(ids[0]))
    tui_ca = [*tui_ca_command(), "--home", str(home)]
    csr_paths = make_csrs(root / "openssl-csrs", runs)
    issuing_pem, key_pem = (home / ISSUING_CERT).read_bytes(), (home / ISSUING_KEY).read_bytes()

    show, openssl_show, approve, openssl_ca, helps = [], [], [], [], []
    _wall([*tui_ca, "show", shown])  # one warm-up each: the first run pays for the page cache
    _wall([OPENSSL, "x509", "-noout", "-text", "-in", str(cert_pem)])
    for n in range(runs):
        show.append(_wall([*tui_ca, "show", shown]))
        openssl_show.append(_wall([OPENSSL, "x509", "-noout", "-text", "-in", str(cert_pem)]))
        helps.append(_wall([*tui_ca, "--help"]))
        approve.append(_wall([*tui_ca, "approve", str(queued[n])]))
        config = make_openssl_ca_dir(root / f"openssl-ca-{n}", issuing_pem, key_pem)
        openssl_ca.append(issue_with_openssl_ca(config, [csr_paths[n]], root / f"openssl-out-{n}"))
    if len(ca.certificates()) != seeded + runs:
        raise RuntimeError("the one-shot approvals did not all issue")

    ours, theirs = median(show), median(openssl_show)
    rows = [row("cli-show", "`tui-ca show ID` vs `openssl x509 -noout -text` (one certificate)", ours, theirs,
                ours / theirs, f"≤ {SHOW_GOAL} (tui-ca ÷ openssl)", ours / theirs <= SHOW_GOAL, "ms",
                f"median of {runs}")]  # fmt: skip
    ours, theirs = median(approve), median(openssl_ca)
    rows.append(row("cli-approve", f"one-shot `tui-ca approve ID` at {seeded:,} certificates vs one "
                    "`openssl ca -batch`", ours, theirs, ours / theirs, f"≤ {APPROVE_GOAL} (tui-ca ÷ openssl)",
                    ours / theirs <= APPROVE_GOAL, "ms", f"median of {runs}"))  # fmt: skip
    ours, theirs = median(helps), median(show)
    rows.append(row("cli-help", "`tui-ca --help` vs `tui-ca show ID`", ours, theirs, ours / theirs,
                    f"≤ {HELP_GOAL} (help ÷ show)", ours / theirs <= HELP_GOAL, "ms", f"median of {runs}"))  # fmt: skip
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery, not the speed")
    for r in measure(quick=parser.parse_args().quick):
        print(
            f"{r['name']:12} {r['ours_s'] * 1000:8.1f} ms  vs {r['baseline_s'] * 1000:8.1f} ms  "
            f"ratio {r['ratio']:.2f}  goal {r['goal']}"
        )
