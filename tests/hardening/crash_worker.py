"""Worker processes for the crash-safety harness, forked from one zygote.

    python crash_worker.py HOME LOG PASSPHRASE_HEX

The zygote imports the engine once, then obeys lines on stdin:

* ``spawn SEED`` forks a worker and prints its pid once the worker has opened
  the home and unlocked the CA key, so that the harness's kill clock measures
  operations, not start-up (an unlock costs what the home's KDF costs). The
  worker loops forever
  doing random submit / approve / reject / revoke / CRL-publish operations on
  HOME through the engine, and appends one JSON line to LOG for each operation
  only *after* it returned success. It never exits on its own: the harness
  SIGKILLs it at a random moment.
* ``reap PID`` waits for that worker and prints ``PID CODE`` (-9 for SIGKILL).

Forking from a zygote instead of starting ``python`` each time puts hundreds
of kills in a minute, and each worker is still a real, separate process.
An exception that is not a CAError is logged as ``{"op": "crash"}`` and the
worker exits 3, so the harness sees it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import traceback

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import (
    Actor,
    CAError,
    CertificateAuthority,
    RequestStatus,
    RevocationReason,
)
from tui_ca.engine.models import CertStatus

# Reasons the worker revokes with; keyCompromise is left out because it also
# bans the key from future requests, which is another test's subject.
_REASONS = [RevocationReason.UNSPECIFIED, RevocationReason.SUPERSEDED, RevocationReason.CESSATION_OF_OPERATION,
            RevocationReason.AFFILIATION_CHANGED]  # fmt: skip


def _log(fd: int, entry: dict) -> None:
    # One write() per line on an O_APPEND descriptor: lines from concurrent
    # workers never interleave, and a kill loses a whole line or nothing.
    os.write(fd, (json.dumps(entry) + "\n").encode())


def _csr(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))  # fmt: skip
    return csr.public_bytes(serialization.Encoding.PEM)


def work(home: str, log_fd: int, passphrase: bytes, seed: int, ready_fd: int) -> None:
    """Random operations forever; log each one after it succeeded."""
    rng = random.Random(seed)
    ca = CertificateAuthority(home, actor=Actor(f"worker-{seed}"), passphrase=passphrase)
    ca.unlock()
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    counter = 0
    while True:
        roll = rng.random()
        try:
            if roll < 0.40:
                counter += 1
                name = f"w{seed}-{counter}"
                result = ca.submit(_csr(name), requester=name)
                _log(log_fd, {"op": "submit", "id": result.request.id, "requester": name})
            elif roll < 0.65:
                queued = ca.requests(RequestStatus.QUEUED)
                if queued:
                    target = rng.choice(queued[-20:]).id
                    for outcome in ca.approve([target]):
                        if outcome.certificate is not None:
                            _log(log_fd, {"op": "approve", "id": target, "serial": outcome.certificate.serial_hex})
            elif roll < 0.72:
                queued = ca.requests(RequestStatus.QUEUED)
                if queued:
                    target = rng.choice(queued).id
                    ca.reject(target, "crash harness")
                    _log(log_fd, {"op": "reject", "id": target})
            elif roll < 0.90:
                valid = ca.certificates(CertStatus.VALID)
                if valid:
                    target = rng.choice(valid).id
                    ca.revoke(target, rng.choice(_REASONS))
                    _log(log_fd, {"op": "revoke", "id": target})
            else:
                info = ca.publish_crl()
                _log(log_fd, {"op": "crl", "number": info.number})
        except CAError:
            pass  # another worker got there first (e.g. both approved one request)
        except BaseException:  # noqa: BLE001 - anything else is what the harness hunts for
            _log(log_fd, {"op": "crash", "error": traceback.format_exc()})
            os._exit(3)


def main() -> None:
    home, log_path, passphrase = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for line in sys.stdin:
        command, argument = line.split()
        if command == "spawn":
            ready_read, ready_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(ready_read)
                    work(home, log_fd, passphrase, int(argument), ready_write)
                finally:
                    os._exit(4)
            os.close(ready_write)
            # One byte once the worker is ready, or end of file if it died first
            # (the harness then sees its exit code at reap).
            os.read(ready_read, 1)
            os.close(ready_read)
            print(pid, flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(argument), 0)
            print(argument, os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    main()
