"""How long unlocking the CA key takes, against cryptography's own encryption.

    python bench/kdf.py [--rounds N]

Prints one line per scheme: the median wall time to load an encrypted EC
P-256 key. tui-ca's key files (PKCS#8 PBES2, PBKDF2-HMAC-SHA256 at
keys.PBKDF2_ITERATIONS) are meant to be slow for someone guessing passphrases
and still well under a second for an admin; ``BestAvailableEncryption``
(the same structure, 2,048 iterations) is the cheap baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tui_ca.engine import keys

PASSPHRASE = b"correct horse battery staple"


def _median_seconds(action, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rounds: int = 5) -> dict[str, float]:
    """Median load time in seconds for each scheme."""
    key = ec.generate_private_key(ec.SECP256R1())
    standard = keys.dump_key(key, PASSPHRASE)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )
    return {
        f"tui-ca PKCS#8, PBKDF2-SHA256 x {keys.PBKDF2_ITERATIONS:,}":
            _median_seconds(lambda: keys.load_key(standard, PASSPHRASE), rounds),
        "cryptography BestAvailableEncryption (PKCS#8 PEM)":
            _median_seconds(lambda: serialization.load_pem_private_key(pkcs8, PASSPHRASE), rounds),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name, seconds in measure(args.rounds).items():
        print(f"{seconds * 1000:10.1f} ms  {name}")


if __name__ == "__main__":
    main()
