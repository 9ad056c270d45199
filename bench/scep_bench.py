"""SCEP's cost per message, in-process, beside the engine intake and the RSA work it cannot avoid.

    python bench/scep_bench.py [--n 30] [--workdir DIR]

Rows (medians of N, both sides measured in the same run):
* PKCSReq through ``ScepService.handle`` (parse, verify, decrypt, submit,
  record, sign PENDING) against ``CertificateAuthority.submit`` of an
  equivalent CSR on a twin home: the SCEP envelope's overhead on intake;
* CertPoll answered PENDING against the crypto floor of one RSA-2048
  decryption plus one RSA-2048 signature (what any SCEP answer needs).
Standalone: it prints its own table and is not part of bench/run.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "scep"))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from scep_support import Remote, ScepClient, csr_der, rsa_key, scep_ca  # noqa: E402

from tui_ca.server.scep import messages as msg  # noqa: E402
from tui_ca.server.scep.service import ScepService  # noqa: E402


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        scep_home, twin_home = Path(work) / "scep", Path(work) / "twin"
        scep_home.mkdir()
        twin_home.mkdir()
        ca, twin = scep_ca(scep_home), scep_ca(twin_home)
        service = ScepService(ca, max_queued=None, log=lambda line: None)
        remote = Remote(0, service.ra.cert)
        clients = [ScepClient.new(remote, f"bench-{i}", key=rsa_key(i)) for i in range(args.n)]
        requests = [c.message(msg.MessageType.PKCS_REQ, csr_der(c.key, f"bench-{i}")) for i, c in enumerate(clients)]
        twins = [csr_der(c.key, f"bench-{i}") for i, c in enumerate(clients)]
        scep = [timed(lambda der=der: service.handle("PKIOperation", der)) for der in requests]
        intake = [timed(lambda der=der: twin.submit(der, source="scep")) for der in twins]
        issuer = ca.issuing_cert().subject
        polls = [c.message(msg.MessageType.CERT_POLL, msg.issuer_and_subject_der(issuer, c.cert.subject))
                 for c in clients]  # fmt: skip
        poll = [timed(lambda der=der: service.handle("PKIOperation", der)) for der in polls]
        key = service.ra.key
        blob = key.public_key().encrypt(b"k" * 16, padding.PKCS1v15())
        floor = [timed(lambda: (key.decrypt(blob, padding.PKCS1v15()),
                                key.sign(b"x", padding.PKCS1v15(), hashes.SHA256()))) for _ in range(args.n)]  # fmt: skip
        # A broken answer must not look fast: every request queued, every poll PENDING.
        assert len(ca.requests()) == len(twin.requests()) == args.n
        for der in polls[:3]:
            _, signer, _ = msg.read_header(service.handle("PKIOperation", der).body)
            assert msg._attribute(signer["signed_attrs"], "scep_pki_status") == msg.PkiStatus.PENDING
    rows = [("PKCSReq → PENDING", statistics.median(scep), "engine submit", statistics.median(intake)),
            ("CertPoll → PENDING", statistics.median(poll), "RSA decrypt + sign", statistics.median(floor))]  # fmt: skip
    print("| SCEP message | ms | baseline | ms | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, ours, base_name, base in rows:
        print(f"| {name} | {ours * 1000:.2f} | {base_name} | {base * 1000:.2f} | {ours / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
