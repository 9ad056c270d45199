"""One admin of the stress run, as its own process with its own CertificateAuthority.

    python stress_worker.py HOME LOG SEED DEADLINE

Until the wall clock passes DEADLINE (seconds since the epoch) it loops:
approve a few queued requests, reject one, revoke an active certificate,
publish the CRL, in a random mix. Each operation is appended to LOG as one
JSON line only *after* the engine reported success, so every logged line is a
promise the store must keep. Losing a race to another admin (a CAError, or an
approve outcome with an error) is counted, not logged as a change. Anything
else is logged as ``{"op": "crash"}`` and the worker exits 3.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback

from tui_ca.engine import (
    Actor,
    CAError,
    CertificateAuthority,
    RequestStatus,
    RevocationReason,
)
from tui_ca.engine.models import CertStatus

# keyCompromise is left out: it bans the key, and the EST clients reuse none anyway.
_REASONS = [RevocationReason.UNSPECIFIED, RevocationReason.SUPERSEDED, RevocationReason.CESSATION_OF_OPERATION]


def _log(fd: int, entry: dict) -> None:
    # One write() per line on an O_APPEND descriptor: lines from the four
    # workers and the test never interleave.
    os.write(fd, (json.dumps(entry) + "\n").encode())


def run(home: str, fd: int, seed: int, deadline: float) -> None:
    rng = random.Random(seed)
    ca = CertificateAuthority(home, actor=Actor(f"admin-{seed}"))
    lost = loops = 0
    while time.time() < deadline:
        loops += 1
        roll = rng.random()
        try:
            if roll < 0.45:
                queued = ca.requests(RequestStatus.QUEUED)
                if queued:
                    chosen = rng.sample(queued, min(len(queued), rng.randint(1, 3)))
                    for outcome in ca.approve([r.id for r in chosen]):
                        if outcome.certificate is not None:
                            _log(fd, {"op": "approve", "id": outcome.id, "serial": outcome.certificate.serial_hex,
                                      "worker": seed})  # fmt: skip
                        else:
                            lost += 1
            elif roll < 0.60:
                queued = ca.requests(RequestStatus.QUEUED)
                if queued:
                    target = rng.choice(queued).id
                    ca.reject(target, f"stress admin {seed}")
                    _log(fd, {"op": "reject", "id": target, "worker": seed})
            elif roll < 0.85:
                valid = ca.certificates(CertStatus.VALID)
                if valid:
                    target = rng.choice(valid).id
                    ca.revoke(target, rng.choice(_REASONS))
                    _log(fd, {"op": "revoke", "id": target, "worker": seed})
            else:
                info = ca.publish_crl()
                _log(fd, {"op": "crl", "number": info.number, "worker": seed})
        except CAError:
            lost += 1  # another admin decided it first
        time.sleep(rng.uniform(0, 0.02))  # admins are not in lockstep
    _log(fd, {"op": "done", "worker": seed, "loops": loops, "lost_races": lost})


def main() -> int:
    home, log, seed, deadline = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        run(home, fd, seed, deadline)
    except BaseException:  # noqa: BLE001 - anything but a CAError is what the stress run hunts for
        _log(fd, {"op": "crash", "worker": seed, "error": traceback.format_exc()})
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
