"""SIGKILL workers at random moments; after every kill the home must be whole.

Two worker processes (crash_worker.py) share one home and do submit /
approve / reject / revoke / CRL publishing as fast as they can; each is
SIGKILLed after a random 0–300 ms. After every round the checker proves:

* the home opens: a new CertificateAuthority lists lock-free, then takes the
  lock and finishes or discards the interrupted commit;
* every operation a worker logged (only after it returned) is in the store;
* Certificate IDs and serials never repeat, counters agree with the records;
* audit ↔ state, both ways: each request, certificate, revocation, rejection
  and CRL number has exactly its audit record, and no record claims a change
  that is not in the store; the hash chain verifies;
* the published CRL carries the meta CRL number and exactly the revoked set.

Default: 200 kills (about a minute). ``TUI_CA_LONG=1``: 2,000.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from hardening_support import LONG, PASSPHRASE, cli, csr_bytes, init_home

from tui_ca.engine import CertificateAuthority, RequestStatus

KILLS = 2000 if LONG else 200
WORKERS = 2
# Each operation takes 40-140 ms on this machine's disk (fsyncs), so a kill
# within 0-80 ms would rarely let one finish; 0-300 ms lands kills all over
# several operations and their commits.
MAX_DELAY = 0.300
CLI_VERIFY_EVERY = 50  # rounds; `tui-ca audit --verify` costs a process start


class Zygote:
    """The forking parent of the workers (see crash_worker.py)."""

    def __init__(self, home: Path, log: Path) -> None:
        script = Path(__file__).with_name("crash_worker.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(home), str(log), PASSPHRASE.hex()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def _ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def spawn(self, seed: int) -> int:
        return int(self._ask(f"spawn {seed}"))

    def reap(self, pid: int) -> int:
        return int(self._ask(f"reap {pid}").split()[1])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _read_log(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def _target_id(record) -> int:
    return int(record.target.split()[-1])


def check_home(home: Path, logged: list[dict]) -> None:
    """Every promise of the module docstring, on the home as the crash left it."""
    # Lock-free readers must cope with whatever the kill left behind.
    CertificateAuthority(home).requests()
    CertificateAuthority(home).certificates()
    ca = CertificateAuthority(home)
    with ca.store.transaction():
        pass  # takes the lock: finishes a journalled commit or drops a prepared one
    assert not (home / "db" / "journal.json").exists()
    assert list((home / ".tmp").iterdir()) == []

    requests = {r.id: r for r in ca.requests()}
    certs = {c.id: c for c in ca.certificates()}
    meta = ca.store.view().meta()
    records = ca.audit_records()

    # IDs and serials never repeat; counters agree with the records.
    assert len(requests) == len(ca.requests())
    assert not requests or max(requests) < meta["next_id"]
    serials = [c.serial for c in certs.values()]
    assert len(serials) == len(set(serials)), "a serial was issued twice"
    assert meta["queued"] == sum(r.status == RequestStatus.QUEUED for r in requests.values())
    approved = {i for i, r in requests.items() if r.status == RequestStatus.APPROVED}
    assert approved == set(certs), "an approved request without its certificate, or the reverse"

    # What the workers were told succeeded is there.
    for entry in logged:
        op = entry["op"]
        assert op != "crash", entry["error"]
        if op == "submit":
            assert requests[entry["id"]].requester == entry["requester"], entry
        elif op == "approve":
            assert certs[entry["id"]].serial_hex == entry["serial"], entry
        elif op == "revoke":
            assert certs[entry["id"]].revoked_at is not None, entry
        elif op == "reject":
            assert requests[entry["id"]].status == RequestStatus.REJECTED, entry
        elif op == "crl":
            assert meta["crl_number"] >= entry["number"], entry

    # Audit ↔ state, both ways.
    assert ca.verify_audit() == []
    assert meta["audit_seq"] == len(records) == records[-1].seq
    by_action: dict[str, list] = {}
    for record in records:
        by_action.setdefault(record.action, []).append(record)
    # server-setup's certificates are on record too, audited by its own records (which name their serials).
    service = {i for i, r in requests.items() if r.source == "server-setup"}
    setup_serials = {value for r in by_action.get("server-setup", []) for key, value in r.extra.items()
                     if key.endswith("serial") and value}  # fmt: skip
    assert {certs[i].serial_hex for i in service} <= setup_serials, "a service certificate without its record"
    submits = [_target_id(r) for r in by_action.get("submit", [])]
    assert sorted(submits) == sorted(set(requests) - service), "submit records and stored requests differ"
    issued = {_target_id(r): int(r.extra["serial"], 16) for r in by_action.get("approve", [])}
    assert len(issued) == len(by_action.get("approve", []))
    assert issued == {i: c.serial for i, c in certs.items() if i not in service}, (
        "approve records and certificates differ"
    )
    revoked = {i for i, c in certs.items() if c.revoked_at is not None}
    revoke_targets = [_target_id(r) for r in by_action.get("revoke", [])]
    assert sorted(revoke_targets) == sorted(revoked), "revoke records and revocations differ"
    rejected = {i for i, r in requests.items() if r.status == RequestStatus.REJECTED}
    reject_targets = [_target_id(r) for r in by_action.get("reject", [])]
    assert sorted(reject_targets) == sorted(rejected), "reject records and rejections differ"
    # The issuing CA's CRLs; the root's own CRL ("root CRL n") has a counter of its own.
    crl_numbers = [_target_id(r) for r in by_action.get("crl", []) if r.target.startswith("CRL ")]
    assert crl_numbers == list(range(1, meta["crl_number"] + 1)), "CRL records and the CRL number differ"

    # The published CRL is the last one recorded and lists exactly the revoked set.
    crl = x509.load_der_x509_crl(ca.published_crl())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == meta["crl_number"]
    assert {entry.serial_number for entry in crl} == {certs[i].serial for i in revoked}
    assert crl.is_signature_valid(ca.issuing_cert().public_key())
    assert x509.load_pem_x509_crl(ca.published_crl(der=False)) == crl


def _every_op_logged(log) -> bool:
    done = {e["op"] for e in _read_log(log)}
    return done >= {"submit", "approve", "reject", "revoke", "crl"}


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_invents_nothing(tmp_path):
    home, log = tmp_path / "home", tmp_path / "ops.log"
    init_home(home, passphrase=PASSPHRASE)
    rng = random.Random(int(os.environ.get("TUI_CA_CRASH_SEED", "5")))
    zygote = Zygote(home, log)
    kills = rounds = journal_found = leftovers_found = 0
    started = time.monotonic()
    try:
        # At least KILLS kills, and on until every kind of operation has been
        # logged at least once: on a loaded machine a worker may do little
        # before its kill, so the number of rounds follows the condition
        # (bounded by a generous deadline), not a fixed count.
        deadline = started + 10 * 60
        while kills < KILLS or (not _every_op_logged(log) and time.monotonic() < deadline):
            rounds += 1
            pids = [zygote.spawn(rounds * WORKERS + i) for i in range(WORKERS)]
            begun = time.monotonic()
            for delay, pid in sorted((rng.uniform(0, MAX_DELAY), pid) for pid in pids):
                time.sleep(max(0.0, begun + delay - time.monotonic()))
                os.kill(pid, signal.SIGKILL)
            for pid in pids:
                code = zygote.reap(pid)
                if code != -signal.SIGKILL:
                    pytest.fail(f"worker {pid} ended by itself ({code}): {_read_log(log)[-1:]}")
                kills += 1
            journal_found += (home / "db" / "journal.json").exists()
            leftovers_found += any((home / ".tmp").iterdir())
            check_home(home, _read_log(log))
            if rounds % CLI_VERIFY_EVERY == 0:
                result = cli(home, "audit", "--verify")
                assert result.returncode == 0, result.stderr.decode()
            if rounds % 20 == 0:  # the checker's own real transaction, through a new CA
                fresh = CertificateAuthority(home, passphrase=PASSPHRASE)
                fresh.submit(csr_bytes(f"checker-{rounds}"), requester=f"checker-{rounds}")
    finally:
        zygote.close()
    logged = _read_log(log)
    counts = {op: sum(e["op"] == op for e in logged) for op in ("submit", "approve", "reject", "revoke", "crl")}
    summary = (f"{kills} kills in {rounds} rounds, {time.monotonic() - started:.0f} s; "
               f"journal found {journal_found}x, prepared leftovers {leftovers_found}x; logged ops {counts}")  # fmt: skip
    print(summary)
    (tmp_path / "summary.txt").write_text(summary)
    result = cli(home, "audit", "--verify")
    assert result.returncode == 0, result.stderr.decode()
    # The harness must actually have interrupted commits, or it proves nothing.
    assert journal_found + leftovers_found > 0, summary
    assert all(counts.values()), summary
