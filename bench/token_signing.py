"""What signing through a PKCS#11 token costs, against the same key type in a file.

    python bench/token_signing.py [--count N]

Initialises a SoftHSM2 token in a temporary folder, makes one CA with file
keys and one with keys in the token (same key type), queues the same number
of CSRs in each and times one bulk ``approve`` of them. Prints the seconds
for each and the ratio token/file: the baseline is measured in the same run.
SoftHSM2 signs in software, so the ratio is the cost of the PKCS#11 path
(sessions, the stand-in draft, re-assembly), not of a hardware device.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import CA_NAMES, csr_pem, make_csr  # noqa: E402

from tests.hsm.softhsm import USER_PIN, make_token  # noqa: E402
from tui_ca.engine import CertificateAuthority  # noqa: E402
from tui_ca.engine.token_keys import TokenConfig  # noqa: E402


def _approve_seconds(ca: CertificateAuthority, count: int) -> float:
    for n in range(count):
        ca.submit(csr_pem(make_csr("ec-p256", cn=f"host-{n}.example.net", sans=[f"DNS:host-{n}.example.net"])))
    ca.unlock()
    start = time.perf_counter()
    outcomes = ca.approve(range(1, count + 1))
    elapsed = time.perf_counter() - start
    assert all(o.certificate for o in outcomes)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--key-type", default="ec-p256")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        token = make_token(Path(folder) / "hsm")
        os.environ["SOFTHSM2_CONF"] = str(token.conf)
        files = CertificateAuthority(Path(folder) / "file-home")
        files.init(CA_NAMES, key_type=args.key_type)
        in_token = CertificateAuthority(Path(folder) / "token-home", pin=USER_PIN.encode())
        in_token.init(CA_NAMES, key_type=args.key_type, pkcs11=TokenConfig(token.module, token.label))
        file_s = _approve_seconds(files, args.count)
        token_s = _approve_seconds(in_token, args.count)
    print(f"approve {args.count} ({args.key_type}): file key {file_s:.2f} s, token key {token_s:.2f} s, "
          f"ratio {token_s / file_s:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
