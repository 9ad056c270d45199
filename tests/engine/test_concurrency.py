"""Several real processes on one home at once (DESIGN §3).

Workers are started with ``spawn`` (a fresh interpreter, nothing inherited
from the test process but the arguments) and released together by a barrier
so that they really contend for the lock in every round.
"""

from __future__ import annotations

import multiprocessing
import subprocess

import pytest
from helpers import TUI_CA, csr_pem, make_csr

from tui_ca.cli import serial_text
from tui_ca.engine import CertificateAuthority, RequestStatus, RuleError

ROUNDS = 25
APPROVERS = 4
SUBMITTERS = 2
PER_SUBMITTER = 100
CTX = multiprocessing.get_context("spawn")

# Several processes share one home: the TinyDB files are what is tested.
pytestmark = pytest.mark.tinydb_only


def _approver(home: str, barrier, jobs, results) -> None:
    """Each round: take a request ID, wait for the others, approve it."""
    ca = CertificateAuthority(home)
    while (request_id := jobs.get()) is not None:
        barrier.wait()
        outcome = ca.approve([request_id])[0]
        results.put((request_id, outcome.certificate.serial if outcome.certificate else None, outcome.error))


def _submitter(home: str, tag: str, barrier, results) -> None:
    ca = CertificateAuthority(home)
    payloads = [csr_pem(make_csr("ec-p256", cn=f"{tag}-{n}")) for n in range(PER_SUBMITTER)]
    barrier.wait()
    results.put([ca.submit(p).request.id for p in payloads])


def _same_requester(home: str, tag: str, barrier, jobs, results) -> None:
    """Each round: submit a CSR of its own under the shared requester name."""
    ca = CertificateAuthority(home)
    while (round_no := jobs.get()) is not None:
        payload = csr_pem(make_csr("ec-p256", cn=f"{tag}-{round_no}"))
        barrier.wait()
        try:
            results.put((tag, ca.submit(payload, requester=f"shared-{round_no}").request.id))
        except RuleError as exc:
            results.put((tag, str(exc)))


def _reader(home: str, stop, results) -> None:
    """Lock-free reads while others write: never an error, never going back."""
    ca, seen, reads = CertificateAuthority(home), 0, 0
    while not stop.is_set():
        count = len(ca.requests())
        assert count >= seen, (count, seen)
        seen, reads = count, reads + 1
    results.put(reads)


def test_four_processes_approving_the_same_request_issue_once(ca, home):
    barrier, results = CTX.Barrier(APPROVERS), CTX.Queue()
    jobs = [CTX.Queue() for _ in range(APPROVERS)]
    workers = [CTX.Process(target=_approver, args=(str(home), barrier, q, results)) for q in jobs]
    for w in workers:
        w.start()
    try:
        for round_no in range(ROUNDS):
            request_id = ca.submit(csr_pem(make_csr(cn=f"race-{round_no}"))).request.id
            for q in jobs:
                q.put(request_id)
            outcomes = [results.get(timeout=60) for _ in range(APPROVERS)]
            assert {o[0] for o in outcomes} == {request_id}
            issued = [o for o in outcomes if o[1] is not None]
            refused = [o for o in outcomes if o[1] is None]
            assert len(issued) == 1, outcomes
            assert len(refused) == APPROVERS - 1
            assert all(f"request {request_id} is approved, not queued" in o[2] for o in refused)
            assert ca.certificate(request_id).serial == issued[0][1]
    finally:
        for q in jobs:
            q.put(None)
        for w in workers:
            w.join(timeout=30)
    assert all(w.exitcode == 0 for w in workers)
    certs = ca.certificates()
    assert [c.id for c in certs] == list(range(1, ROUNDS + 1))
    assert len({c.serial for c in certs}) == ROUNDS
    assert [r.action for r in ca.audit_records()].count("approve") == ROUNDS
    assert ca.verify_audit() == []


def test_concurrent_cli_approvals_one_wins_three_refused(ca, home):
    """The same race through the real command: one line on stdout, three one-line refusals."""
    for round_no in range(3):
        request_id = str(ca.submit(csr_pem(make_csr(cn=f"cli-race-{round_no}"))).request.id)
        procs = [subprocess.Popen([*TUI_CA, "--home", str(home), "approve", request_id],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(APPROVERS)]  # fmt: skip
        done = [(p.wait(timeout=60), p.stdout.read().decode(), p.stderr.read().decode()) for p in procs]
        winners = [d for d in done if d[0] == 0]
        losers = [d for d in done if d[0] != 0]
        assert len(winners) == 1, done
        assert winners[0][1] == f"{request_id} {serial_text(ca.certificate(int(request_id)).serial)}\n"
        for code, out, err in losers:
            assert code == 1 and out == "" and "Traceback" not in err
            assert (
                err
                == f"tui-ca: request {request_id}: request {request_id} is approved, not queued; nothing to approve\n"
            )
    assert len(ca.certificates()) == 3


def test_two_processes_submitting_at_once_lose_nothing(ca, home):
    barrier, results, stop = CTX.Barrier(SUBMITTERS), CTX.Queue(), CTX.Event()
    reader_results = CTX.Queue()
    reader = CTX.Process(target=_reader, args=(str(home), stop, reader_results))
    reader.start()
    workers = [CTX.Process(target=_submitter, args=(str(home), f"p{n}", barrier, results))
               for n in range(SUBMITTERS)]  # fmt: skip
    for w in workers:
        w.start()
    try:
        batches = [results.get(timeout=120) for _ in workers]
    finally:
        stop.set()
        for w in [*workers, reader]:
            w.join(timeout=30)
    assert [w.exitcode for w in [*workers, reader]] == [0] * (SUBMITTERS + 1)
    assert reader_results.get(timeout=5) > 0
    ids = [i for batch in batches for i in batch]
    assert len(ids) == len(set(ids)) == SUBMITTERS * PER_SUBMITTER
    assert sorted(ids) == list(range(1, SUBMITTERS * PER_SUBMITTER + 1))
    # Each process saw its own IDs rise; interleaving is expected between them.
    assert all(batch == sorted(batch) for batch in batches)
    queued = CertificateAuthority(home).requests(RequestStatus.QUEUED)
    assert sorted(r.requester for r in queued) == sorted(f"p{p}-{n}" for p in range(SUBMITTERS)
                                                          for n in range(PER_SUBMITTER))  # fmt: skip
    assert ca.verify_audit() == []
    assert [r.action for r in ca.audit_records()].count("submit") == SUBMITTERS * PER_SUBMITTER


def test_one_requester_from_two_processes_at_once_gets_one_queued_request(ca, home):
    """The one-queued-request rule is checked inside the lock, not before it."""
    rounds, barrier, results = 10, CTX.Barrier(2), CTX.Queue()
    jobs = [CTX.Queue(), CTX.Queue()]
    workers = [CTX.Process(target=_same_requester, args=(str(home), tag, barrier, q, results))
               for tag, q in zip(("a", "b"), jobs, strict=True)]  # fmt: skip
    for w in workers:
        w.start()
    try:
        for round_no in range(rounds):
            for q in jobs:
                q.put(round_no)
            outcomes = [results.get(timeout=60) for _ in workers]
            accepted = [o for o in outcomes if isinstance(o[1], int)]
            refused = [o for o in outcomes if isinstance(o[1], str)]
            assert len(accepted) == 1 and len(refused) == 1, outcomes
            assert f"already has request {accepted[0][1]} in the queue" in refused[0][1]
    finally:
        for q in jobs:
            q.put(None)
        for w in workers:
            w.join(timeout=30)
    assert [w.exitcode for w in workers] == [0, 0]
    assert len(ca.requests(RequestStatus.QUEUED)) == rounds
    assert [r.id for r in ca.requests()] == list(range(1, rounds + 1))
