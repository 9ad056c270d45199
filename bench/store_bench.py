"""Store figures at scale: listing against awk over `openssl ca`'s index.txt, approve latency, serve start.

    python bench/store_bench.py HOME [--small HOME_1K]

``HOME`` is a seeded home (bench/common.py's SeededHome; 100,000 certificates
for the issue's figures). Every ratio is against a baseline taken in the same
run on the same machine:

* ``list --json`` / ``list`` (the requests) and ``list certs --json`` / ``list
  certs`` (one ``tui-ca`` process, start-up included) against ``awk`` printing
  the certificates from an ``openssl ca`` index.txt written from the same
  store (a request per certificate, give or take the queued and rejected);
  peak RSS of the ``tui-ca`` process.
* approve latency in a warm process on HOME ÷ on a 1,000-certificate home.
* ``serve`` start: CPU seconds the server process spends before it answers
  its first CRL request, on HOME ÷ on the small home.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_ACTOR, SeededHome, cpu_seconds, free_port, median, row, tui_ca_command  # noqa: E402
from bench.engine_bench import _in_process_latency  # noqa: E402
from tui_ca.engine import CertificateAuthority  # noqa: E402

JSON_GOAL, LIST_GOAL, LATENCY_GOAL, RSS_GOAL_MIB, SERVE_GOAL_S = 25, 15, 1.5, 200, 0.5
AWK_JSON = (
    'BEGIN{FS="\\t"}{printf "{\\"serial\\": \\"%s\\", \\"status\\": \\"%s\\", \\"not_after\\": \\"%s\\", '
    '\\"subject\\": \\"%s\\"}\\n", $4, $1, $2, $6}'
)
AWK_TEXT = 'BEGIN{FS="\\t"}{printf "%-6s %-16s %s\\n", $1, substr($4, 1, 16), $2}'
# `list` and `list --json` list the requests (the default); the same goals hold for the certificates.
LISTINGS = (("list-json", ["list", "--json"], AWK_JSON, JSON_GOAL), ("list", ["list"], AWK_TEXT, LIST_GOAL),
            ("list-certs-json", ["list", "certs", "--json"], AWK_JSON, JSON_GOAL),
            ("list-certs", ["list", "certs"], AWK_TEXT, LIST_GOAL))  # fmt: skip


def _openssl_time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%y%m%d%H%M%SZ")


def write_index(home: Path, index: Path) -> int:
    """An `openssl ca` index.txt of every certificate in the home (V / R lines, as openssl writes them)."""
    ca = CertificateAuthority(home)
    count = 0
    with open(index, "w") as out:
        for doc in ca.iter_certificate_dicts():
            revoked = doc["revoked_at"]
            flag = "R" if revoked else "V"
            when = f"{_openssl_time(revoked)},{doc['revocation_reason']}" if revoked else ""
            out.write(f"{flag}\t{_openssl_time(doc['not_after'])}\t{when}\t{doc['serial'].upper()}\tunknown\t"
                      f"/{doc['subject'].replace(',', '/')}\n")  # fmt: skip
            count += 1
    return count


def _run(cmd: list[str], workdir: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of one process writing to /dev/null.

    Measured by /usr/bin/time around the process: a child forked from this
    (large) interpreter would count the parent's pages in its own peak RSS
    until it execs. CPU seconds are less sensitive to a loaded machine.
    """
    report = workdir / "time.out"
    with open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-o", str(report), "-f", "%U %S %M", *cmd], stdout=sink,
                              stderr=subprocess.PIPE, check=False)  # fmt: skip
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {proc.stderr.decode()}")
    user, system, peak = report.read_text().split()[-3:]
    return elapsed, float(user) + float(system), int(peak)


def listing(home: Path, workdir: Path, runs: int = 3) -> list[dict]:
    index = workdir / "index.txt"
    count = write_index(home, index)
    ca = CertificateAuthority(home)
    size = {"certificates": count, "requests": sum(1 for _ in ca.iter_request_rows())}
    rows = []
    for name, args, awk, goal in LISTINGS:
        ours, theirs, ours_cpu, theirs_cpu, rss = [], [], [], [], []
        for _ in range(runs):
            seconds, cpu, peak = _run([*tui_ca_command(), "--home", str(home), *args], workdir)
            ours.append(seconds)
            ours_cpu.append(cpu)
            rss.append(peak)
            seconds, cpu, _ = _run(["awk", awk, str(index)], workdir)
            theirs.append(seconds)
            theirs_cpu.append(max(cpu, 0.01))  # /usr/bin/time counts in hundredths
        ratio = median(ours) / median(theirs)
        cpu_ratio = median(ours_cpu) / median(theirs_cpu)
        what = "requests" if "certs" not in args else "certificates"
        rows.append(row(name, f"`tui-ca {' '.join(args)}`, {size[what]:,} {what}, vs awk over index.txt of {count:,}",
                        median(ours), median(theirs), ratio, f"≤ {goal} (tui-ca ÷ awk)", ratio <= goal,
                        note=f"median of {runs}; CPU {median(ours_cpu):.2f} s vs {median(theirs_cpu):.2f} s "
                             f"({cpu_ratio:.1f}x); peak RSS {max(rss) / 1024:.0f} MiB (goal ≤ {RSS_GOAL_MIB})"))  # fmt: skip
    return rows


def _first_ocsp_and_est(home: Path, http: int, https: int) -> None:
    """One OCSP POST (about the OCSP signer's own certificate) and one EST /cacerts, both answered 200."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from tui_ca.engine.home import ISSUING_CERT, OCSP_CERT

    signer = x509.load_pem_x509_certificate((home / OCSP_CERT).read_bytes())
    issuer = x509.load_pem_x509_certificate((home / ISSUING_CERT).read_bytes())
    body = ocsp.OCSPRequestBuilder().add_certificate(signer, issuer, hashes.SHA1()).build()
    request = urllib.request.Request(f"http://127.0.0.1:{http}/ocsp", data=body.public_bytes(serialization.Encoding.DER),
                                     headers={"Content-Type": "application/ocsp-request"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and ocsp.load_der_ocsp_response(response.read()).certificate_status is not None
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # loopback, only the answer's cost matters
    url = f"https://127.0.0.1:{https}/.well-known/est/cacerts"
    with urllib.request.urlopen(url, context=tls, timeout=30) as answer:
        assert answer.status == 200


def serve_start(home: Path, *, warm: bool = False) -> tuple[float, float]:
    """CPU seconds `tui-ca serve` spends until it answers its first CRL request, and (``warm``)
    until it has also answered its first OCSP and EST requests (0.0 when not asked)."""
    if not (home / "server" / "tls.crt").exists():
        subprocess.run([*tui_ca_command(), "--home", str(home), "server-setup"], check=True, capture_output=True)
    http, https = free_port(), free_port()
    proc = subprocess.Popen([*tui_ca_command(), "--home", str(home), "serve", "--port", str(https),
                             "--http-port", str(http)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/ca.crl", timeout=5) as response:
                    if response.status == 200:
                        first = cpu_seconds(proc.pid)
                        if warm:
                            _first_ocsp_and_est(home, http, https)
                        return first, cpu_seconds(proc.pid) if warm else 0.0
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("serve did not answer within 120 s")
    finally:
        proc.terminate()
        proc.wait(30)


def _child_cpu(cmd: list[str]) -> float:
    """User + system CPU seconds of one child process run to its end."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed")
    return usage.ru_utime + usage.ru_stime


def serve_rows(big: Path, small: Path, runs: int) -> list[dict]:
    """`serve` start on both homes, alternated, beside the interpreter and aiohttp import floors."""
    python = sys.executable
    floors = {"pass": [python, "-c", "pass"], "aiohttp": [python, "-c", "import aiohttp.web"],
              "crypto": [python, "-c", "import cryptography.x509"]}  # fmt: skip
    cpu: dict[str, list[float]] = {name: [] for name in ("big", "small", "warm", *floors)}
    for _ in range(runs):
        first, warm = serve_start(big, warm=True)
        cpu["big"].append(first)
        cpu["warm"].append(warm)
        cpu["small"].append(serve_start(small)[0])
        for name, cmd in floors.items():
            cpu[name].append(_child_cpu(cmd))
    size = sum(1 for _ in CertificateAuthority(big).iter_certificate_rows())
    big_cpu, small_cpu = median(cpu["big"]), median(cpu["small"])
    floor = ", ".join(f"{name} {median(values):.2f} s" for name, values in cpu.items() if name in floors)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return [row("serve-start", f"`tui-ca serve` CPU until the first answer, {size:,} certificates", big_cpu,
                small_cpu, big_cpu / small_cpu, f"≤ {SERVE_GOAL_S} s busy", big_cpu <= SERVE_GOAL_S,
                note=f"median of {runs}, baseline the 1,000-certificate home; CPU once it has also answered "
                     f"one OCSP and one EST request: {median(cpu['warm']):.2f} s; python -c (CPU): {floor}; "
                     f"load {load}")]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only-listing", action="store_true")
    parser.add_argument("--only-serve", action="store_true", help="only the serve start-up row")
    parser.add_argument("--only-latency", action="store_true", help="only the in-process approve latency row")
    parser.add_argument("--runs", type=int, default=5, help="serve start-ups per home (median)")
    parser.add_argument("home", type=Path)
    parser.add_argument("--small", type=Path, help="a 1,000-certificate home (made if missing)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/store-bench-work"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    small = args.small or args.workdir / "small"
    if not small.exists():
        seeded_small = SeededHome(small)
        seeded_small.grow_to(1_000)
    if args.only_serve:
        _print(serve_rows(args.home, small, args.runs))
        return 0
    size = len(CertificateAuthority(args.home).certificates())
    rows = [] if args.only_latency else listing(args.home, args.workdir)
    if args.only_listing:
        _print(rows)
        return 0
    big_lat = _in_process_latency(args.home, _Queue(args.home), 20)
    small_lat = _in_process_latency(small, _Queue(small), 20)
    ratio = big_lat / small_lat
    rows.append(row("approve-latency", f"Approve one request in-process, {size:,} ÷ 1,000 certificates", big_lat,
                    small_lat, ratio, f"≤ {LATENCY_GOAL}", ratio <= LATENCY_GOAL, unit="ms",
                    note="median of 20 single-ID calls, warm process"))  # fmt: skip
    if not args.only_latency:
        rows.extend(serve_rows(args.home, small, args.runs))
    _print(rows)
    return 0


def _print(rows: list[dict]) -> None:
    for r in rows:
        unit = 1000 if r["unit"] == "ms" else 1
        print(
            f"| {r['figure']} | {r['ours_s'] * unit:.3f} | {r['baseline_s'] * unit:.3f} | {r['ratio']:.2f} | "
            f"{r['goal']} | {'yes' if r['met'] else 'NO'} | {r['note']} |"
        )


class _Queue:
    """What _in_process_latency needs from a SeededHome, over an existing home."""

    def __init__(self, home: Path) -> None:
        from bench.common import CsrFactory

        self.home = home
        self.ca = CertificateAuthority(home, actor=BENCH_ACTOR)
        self.csrs = CsrFactory()
        self.cert_ids: list[int] = []
        self._n = 0

    def queue(self, count: int, prefix: str = "lat") -> list[int]:
        items = []
        for _ in range(count):
            self._n += 1
            items.append((self.csrs.csr(f"{prefix}-{os.getpid()}-{time.time_ns()}-{self._n}.bench.test"), None))
        return [r.request.id for r in self.ca.submit_many(items, source="bench")]


if __name__ == "__main__":
    raise SystemExit(main())
