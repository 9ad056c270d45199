"""Server throughput and memory: EST and OCSP against baselines measured in the same run.

* EST enrollments/s at 1, 8 and 32 clients against bare TLS handshakes/s on
  the same ``tui-ca serve`` (each operation opens its own connection, as
  devices do); at one client also the time of one enrollment against one
  handshake plus one small request (GET csrattrs).
* OCSP answers/s at 1, 8 and 32 clients against ``openssl ocsp -index … -port``
  (OpenSSL's own responder, one process) over the same certificates, asked
  by the same client code about random serials; and the peak RSS of both.

    python bench/server_bench.py            # 100,000 certificates
    python bench/server_bench.py --quick    # tiny sizes: checks the machinery only
    python bench/server_bench.py --home H   # a copy (cp -a) of an already seeded home H instead of seeding
    python bench/server_bench.py --only est # only the EST figures (no openssl responder, no OCSP)
    python bench/server_bench.py --only ocsp

Each note also gives the CPU seconds (user + system, from /proc) that each
server spent on the figure, ours beside the baseline's: wall time on a busy
shared machine is inflated, CPU time much less.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402

from bench.common import BENCH_ACTOR, CsrFactory, SeededHome, cpu_seconds, free_port, tui_ca_command  # noqa: E402
from bench.openssl_baseline import OPENSSL, _index_serial, _index_time  # noqa: E402
from tui_ca.engine import CertificateAuthority  # noqa: E402
from tui_ca.engine.home import OCSP_CERT, OCSP_KEY  # noqa: E402
from tui_ca.engine.service_certs import setup_service_certs  # noqa: E402

FULL = {"certs": 100_000, "clients": (1, 8, 32), "enrollments": 192, "queries": 1200}
QUICK = {"certs": 50, "clients": (1, 8), "enrollments": 8, "queries": 40}


class _Cpu:
    """CPU seconds of each server process, accumulated per figure."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}

    def rate(self, count: int, clients: int, job, who: str) -> tuple[float, float]:
        """(operations/s, CPU seconds the server ``who`` spent on them)."""
        before = cpu_seconds(self.pids[who])
        rate = _rate(count, clients, job)
        return rate, cpu_seconds(self.pids[who]) - before


CPU = _Cpu()


def _rate(count: int, clients: int, job) -> float:
    """Operations per second for ``count`` calls of ``job(i)`` over ``clients`` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for outcome in pool.map(job, range(count)):
            assert outcome, "an operation failed"
    return count / (time.perf_counter() - start)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_ready(process: subprocess.Popen) -> None:
    """Until openssl says it listens; a probe connection closed without a request makes it spin."""
    assert process.stderr is not None
    for line in process.stderr:
        if b"waiting for OCSP client connections" in line:
            # Its log goes on to the pipe; drain it so that openssl never blocks on a full pipe.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return
    raise RuntimeError("the baseline responder did not start")


def _ocsp_queries(seeded: SeededHome, count: int) -> list[bytes]:
    ca = seeded.ca
    issuing = ca.issuing_cert()
    picks = random.Random(7).choices(sorted(seeded.cert_ids), k=count)
    queries = []
    for cert_id in picks:
        cert = x509.load_pem_x509_certificate(ca.certificate_pem(cert_id))
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuing, hashes.SHA1()).build()
        queries.append(request.public_bytes(serialization.Encoding.DER))
    return queries


def _asker(port: int, queries: list[bytes]):
    def ask(i: int) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("POST", "/ocsp", queries[i % len(queries)], {"Content-Type": "application/ocsp-request"})
            response = conn.getresponse()
            body = response.read()
            answer = ocsp.load_der_ocsp_response(body)
            return response.status == 200 and answer.certificate_status == ocsp.OCSPCertStatus.GOOD
        finally:
            conn.close()

    return ask


def _openssl_index(seeded: SeededHome, folder: Path) -> Path:
    """index.txt listing every issued certificate as valid, as ``openssl ca`` would have written it."""
    lines = []
    for cert in seeded.ca.iter_certificates():
        expiry = _index_time(cert.not_after, utc_only=False)
        lines.append(f"V\t{expiry}\t\t{_index_serial(cert.serial)}\tunknown\t/CN={cert.id}\n")
    index = folder / "index.txt"
    index.write_text("".join(lines))
    (folder / "index.txt.attr").write_text("unique_subject = no\n")
    return index


def _est(https: int, context: ssl.SSLContext, sizes: dict) -> list[dict]:
    csrs = CsrFactory()

    def handshake(_: int) -> bool:
        with socket.create_connection(("127.0.0.1", https)) as sock:
            with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                return True

    def handshake_and_request(_: int) -> bool:
        conn = http.client.HTTPSConnection("127.0.0.1", https, context=context, timeout=60)
        try:
            conn.request("GET", "/.well-known/est/csrattrs")
            response = conn.getresponse()
            response.read()
            return response.status == 204
        finally:
            conn.close()

    def enroll_once(body: bytes) -> bool:
        conn = http.client.HTTPSConnection("127.0.0.1", https, context=context, timeout=60)
        try:
            conn.request("POST", "/.well-known/est/simpleenroll", body, {"Content-Type": "application/pkcs10"})
            response = conn.getresponse()
            response.read()
            return response.status == 202
        finally:
            conn.close()

    # One enrollment before the clock starts: the first one loads the writer
    # and the engine's CSR and signing code (~0.3 s of CPU, once per server),
    # which the handshakes it is compared with never load.
    assert enroll_once(base64.b64encode(csrs.csr("bench-warm-up.example"))), "the warm-up enrollment failed"
    rows = []
    count = sizes["enrollments"]
    for clients in sizes["clients"]:
        bodies = [base64.b64encode(csrs.csr(f"bench-{clients}-{i}.example")) for i in range(count)]

        def enroll(i: int, bodies: list[bytes] = bodies) -> bool:
            return enroll_once(bodies[i])

        base, base_cpu = CPU.rate(count, clients, handshake, "ours")
        rate, cpu = CPU.rate(count, clients, enroll, "ours")
        goal = "≥ 0.8 (enrollments/s ÷ handshakes/s)" if clients == 8 else ""
        rows.append({"figure": f"EST simpleenroll (202), {clients} client(s), vs bare TLS handshakes/s",
                     "ours_s": 1 / rate, "baseline_s": 1 / base, "ratio": round(rate / base, 2), "goal": goal,
                     "unit": "ms", "note": f"{rate:.1f} enrollments/s, {base:.1f} handshakes/s; server CPU {cpu:.2f} s vs "
                     f"{base_cpu:.2f} s"})  # fmt: skip
        if clients == 1:
            floor, floor_cpu = CPU.rate(count, 1, handshake_and_request, "ours")
            rows.append({"figure": "EST simpleenroll at 1 client vs one handshake plus one request",
                         "ours_s": 1 / rate, "baseline_s": 1 / floor, "ratio": round(floor / rate, 2),
                         "goal": "≤ 2 (time per enrollment ÷ handshake + request)", "unit": "ms",
                         "note": f"{1000 / rate:.1f} ms vs {1000 / floor:.1f} ms; server CPU {1000 * cpu / count:.1f} ms "
                         f"vs {1000 * floor_cpu / count:.1f} ms each"})  # fmt: skip
    return rows


def _ocsp_rows(plain: int, baseline_port: int, queries: list[bytes], sizes: dict, certs: int) -> list[dict]:
    rows = []
    for clients in sizes["clients"]:
        ours, ours_cpu = CPU.rate(sizes["queries"], clients, _asker(plain, queries), "ours")
        theirs, theirs_cpu = CPU.rate(sizes["queries"], clients, _asker(baseline_port, queries), "openssl")
        goal = "≥ 1.0 (answers/s ÷ openssl ocsp's)" if clients == 8 else ""
        rows.append({"figure": f"OCSP POST, random serials of {certs:,}, {clients} client(s), vs openssl ocsp -port",
                     "ours_s": 1 / ours, "baseline_s": 1 / theirs, "ratio": round(ours / theirs, 2), "goal": goal,
                     "unit": "ms", "note": f"{ours:.0f}/s vs {theirs:.0f}/s; server CPU {ours_cpu:.2f} s vs {theirs_cpu:.2f} s"})  # fmt: skip
    return rows


class _CopiedHome:
    """A seeded home copied from elsewhere, with what the figures read of a SeededHome."""

    def __init__(self, source: Path, home: Path) -> None:
        subprocess.run(["cp", "-a", str(source), str(home)], check=True)
        self.home = home
        self.ca = CertificateAuthority(home, actor=BENCH_ACTOR)
        self.cert_ids = [cert.id for cert in self.ca.iter_certificates()]


def measure(quick: bool = False, home: Path | None = None, only: str | None = None) -> list[dict]:
    """The rows; ``only`` is ``"est"`` or ``"ocsp"`` for one part (OCSP includes the peak RSS row)."""
    sizes = dict(QUICK if quick else FULL)
    ocsp_part, est_part = only in (None, "ocsp"), only in (None, "est")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if home is not None:
            seeded: SeededHome | _CopiedHome = _CopiedHome(home, root / "home")
            sizes["certs"] = len(seeded.cert_ids)
        else:
            seeded = SeededHome(root / "home")
            seeded.grow_to(sizes["certs"])
        if not (seeded.home / OCSP_CERT).exists():
            setup_service_certs(seeded.ca)
        home = seeded.home
        context = ssl.create_default_context(cadata=seeded.ca.ca_cert_pem(chain=True).decode())
        baseline: subprocess.Popen | None = None
        if ocsp_part:
            queries = _ocsp_queries(seeded, min(sizes["queries"], 2000))
            folder = root / "openssl"
            folder.mkdir()
            index = _openssl_index(seeded, folder)
            (folder / "issuing.pem").write_bytes(seeded.ca.ca_cert_pem())
            baseline_port = free_port()
            baseline = subprocess.Popen(
                [OPENSSL, "ocsp", "-index", str(index), "-port", str(baseline_port), "-rsigner",
                 str(home / OCSP_CERT), "-rkey", str(home / OCSP_KEY), "-CA", str(folder / "issuing.pem"),
                 "-ndays", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        server = subprocess.Popen(
            [*tui_ca_command(), "--home", str(home), "serve", "--port", "0", "--http-port", "0", "--rate", "0",
             "--max-queued", "1000000", "--max-per-address", "256"],
            stdout=subprocess.PIPE, stderr=open(os.environ.get("TUI_CA_BENCH_SERVER_LOG", os.devnull), "wb"),
            start_new_session=True)  # fmt: skip
        CPU.pids = {"ours": server.pid}
        try:
            https = int(re.search(rb":(\d+)/", server.stdout.readline()).group(1))
            plain = int(re.search(rb":(\d+)/", server.stdout.readline()).group(1))
            rows = []
            if baseline is not None:
                CPU.pids["openssl"] = baseline.pid
                _wait_ready(baseline)
                rows.extend(_ocsp_rows(plain, baseline_port, queries, sizes, sizes["certs"]))
                ours_rss, theirs_rss = _peak_rss_mib(server.pid), _peak_rss_mib(baseline.pid)
                rows.append({"figure": f"`serve` peak RSS after OCSP over {sizes['certs']:,} certificates vs openssl ocsp",
                             "ours_s": None, "baseline_s": None, "ratio": round(ours_rss / theirs_rss, 1),
                             "goal": "≤ 4 (RSS ÷ openssl ocsp's)",
                             "note": f"{ours_rss:.0f} MiB vs {theirs_rss:.0f} MiB"})  # fmt: skip
            if est_part:
                rows.extend(_est(https, context, sizes))
            return rows
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
            if baseline is not None:
                baseline.send_signal(signal.SIGTERM)
                baseline.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery only")
    parser.add_argument("--home", type=Path, help="serve a copy of this already seeded home instead of seeding one")
    parser.add_argument("--only", choices=("est", "ocsp"), help="only one part of the figures")
    args = parser.parse_args()
    rows = measure(quick=args.quick, home=args.home, only=args.only)
    print(f"{'figure':88} {'ratio':>6}  note")
    for row in rows:
        print(f"{row['figure']:88} {row['ratio']:>6}  {row.get('note', '')}  {row.get('goal', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
