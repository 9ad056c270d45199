"""Two `tui-ca serve` nodes on one PostgreSQL database, with an admin CLI (issue 9, "Two nodes").

Real processes and clients throughout: requests queued through node 1 are
approved on the admin home and collected through node 2; OCSP on both nodes
turns to revoked after a revocation; both publish the same CRL; node 1
killed with SIGKILL while many enrollments are in flight loses none that it
acknowledged, and node 2 keeps serving; a database restart under load
costs a one-line 503 at most, and both servers go on without a restart.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import run_cli
from tests.pg.two_nodes import TwoNodes, make_two_nodes, new_csr, queued_id, wait_until
from tests.pg_support import PgCluster

pytestmark = pytest.mark.postgresql


@pytest.fixture(scope="module")
def two_nodes(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    setup = make_two_nodes(pg_cluster, tmp_path_factory.mktemp("two-nodes"))
    try:
        yield setup
    finally:
        setup.close()


@pytest.fixture
def nodes(two_nodes: TwoNodes) -> TwoNodes:
    """The two nodes, both running (a test may have killed one)."""
    two_nodes.running()
    return two_nodes


def _queued(setup: TwoNodes, node_index: int, cn: str) -> tuple[int, bytes]:
    der = new_csr(cn)
    status, body = setup.nodes[node_index].curl_enroll(der, setup.chain)
    request_id = queued_id(body)
    assert status == 202 and request_id is not None, (status, body)
    return request_id, der


def test_queued_on_node_1_approved_by_the_admin_collected_on_node_2(nodes: TwoNodes) -> None:
    node1, node2 = nodes.nodes
    queued = [_queued(nodes, 0, f"collect-{n}") for n in range(3)]
    # Node 2 knows them at once: the same CSR there is a poll of the same request.
    for request_id, der in queued:
        status, body = node2.curl_enroll(der, nodes.chain)
        assert (status, queued_id(body)) == (202, request_id), body
    # What stays single: the joined node holds no CA key and cannot approve.
    refused = run_cli(nodes.joined, "approve", str(queued[0][0]))
    assert refused.returncode != 0 and refused.stderr.count(b"\n") == 1 and b"Traceback" not in refused.stderr
    assert nodes.stored_status(queued[0][0]) == "queued"
    nodes.cli("approve", *(str(request_id) for request_id, _ in queued))
    for request_id, der in queued:
        status, body = node2.curl_enroll(der, nodes.chain)
        assert status == 200, body
        exported = nodes.export(request_id).read_bytes()
        # The PKCS#7 node 2 hands out holds exactly the certificate the admin issued.
        p7 = nodes.work / f"collected-{request_id}.p7"
        p7.write_bytes(body)
        printed = _openssl("base64", "-d", "-A", "-in", str(p7), binary=True)
        pem = _openssl("pkcs7", "-inform", "DER", "-print_certs", input=printed)
        assert _body_of(pem) == _body_of(exported.decode())
    assert node1.alive and node2.alive


def test_ocsp_on_both_nodes_turns_revoked_and_both_publish_the_same_crl(nodes: TwoNodes) -> None:
    node1, node2 = nodes.nodes
    request_id, der = _queued(nodes, 1, "ocsp-device")
    nodes.cli("approve", str(request_id))
    cert = nodes.export(request_id)
    # Both nodes answer (and may cache) "good" first, so the change must reach their caches.
    assert node1.ocsp(nodes.work, cert) == "good"
    assert node2.ocsp(nodes.work, cert) == "good"
    nodes.cli("revoke", str(request_id), "--reason", "keyCompromise")
    for node in (node1, node2):
        wait_until(lambda node=node: node.ocsp(nodes.work, cert) == "revoked", f"{node.name} says revoked")
    published = nodes.cli("crl", "--der").stdout
    assert node1.crl() == node2.crl() == published
    listed = _openssl("crl", "-inform", "DER", "-noout", "-text", input=published)
    serial = _openssl("x509", "-noout", "-serial", "-in", str(cert)).strip().split("=", 1)[1]
    assert f"Serial Number: {serial}" in listed


def test_node_1_killed_mid_enrollment_loses_nothing_acknowledged(nodes: TwoNodes) -> None:
    node1, node2 = nodes.nodes
    acknowledged: dict[int, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    statuses: list[int] = []

    def device(worker: int) -> int:
        sent = 0
        while not stop.is_set():
            cn = f"kill-{worker}-{sent}"
            try:
                status, body, _ = node1.est(new_csr(cn), nodes.chain, timeout=60)
            except (OSError, http.client.HTTPException):
                return sent  # node 1 is gone (reset, refused, cut short): what it acknowledged is what counts
            sent += 1
            with lock:
                statuses.append(status)
                request_id = queued_id(body)
                if status == 202 and request_id is not None:
                    acknowledged[request_id] = cn
        return sent

    with ThreadPoolExecutor(16) as pool:
        sent = [pool.submit(device, worker) for worker in range(16)]
        wait_until(lambda: len(acknowledged) >= 40, "40 enrollments acknowledged by node 1")
        node1.kill()
        stop.set()
        total = sum(future.result(timeout=120) for future in sent)
    assert set(statuses) == {202}, statuses
    assert total >= len(acknowledged) >= 40
    stored = nodes.stored_requests()
    missing = {request_id: cn for request_id, cn in acknowledged.items() if stored.get(request_id) != cn}
    assert missing == {}, f"acknowledged by node 1 but not stored: {missing}"
    nodes.check_store()
    # Node 2 keeps serving: polls of node 1's requests, new ones, approval and collection.
    assert node2.alive
    some = sorted(acknowledged)[:3]
    for request_id in some:
        status, body = node2.curl_enroll(_resend(nodes, request_id), nodes.chain)
        assert (status, queued_id(body)) == (202, request_id), body
    request_id, der = _queued(nodes, 1, "after-the-kill")
    nodes.cli("approve", str(request_id))
    assert node2.curl_enroll(der, nodes.chain)[0] == 200
    assert node2.ocsp(nodes.work, nodes.export(request_id)) == "good"


def test_a_database_restart_under_load_costs_one_line_and_both_nodes_go_on(nodes: TwoNodes) -> None:
    node1, node2 = nodes.nodes
    starts = [node.starts for node in nodes.nodes]
    acknowledged: dict[int, str] = {}
    refused: list[tuple[int, bytes, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def device(worker: int) -> None:
        node = nodes.nodes[worker % 2]
        sent = 0
        while not stop.is_set():
            cn = f"restart-{worker}-{sent}"
            sent += 1
            status, body, headers = node.est(new_csr(cn), nodes.chain)
            with lock:
                request_id = queued_id(body)
                if status == 202 and request_id is not None:
                    acknowledged[request_id] = cn
                else:
                    refused.append((status, body, headers.get("retry-after", "")))

    with ThreadPoolExecutor(6) as pool:
        streams = [pool.submit(device, worker) for worker in range(6)]
        try:
            wait_until(lambda: len(acknowledged) >= 10, "10 enrollments before the restart")
            nodes.cluster.restart()
            after = len(acknowledged)
            wait_until(lambda: len(acknowledged) >= after + 10 or any(s.done() for s in streams),
                       "enrollments again after the restart")  # fmt: skip
        finally:
            stop.set()
            for stream in streams:
                stream.result(timeout=180)  # a client error (a dropped connection) fails the test here
    # What failed was told so in one line, to come back later; nothing else.
    for status, body, retry_after in refused:
        assert status == 503 and body.count(b"\n") == 1 and retry_after, (status, body)
    stored = nodes.stored_requests()
    assert {i: stored.get(i) for i in acknowledged} == acknowledged
    nodes.check_store()
    # While the database is down the admin gets one line and nothing changes.
    some = min(acknowledged)
    nodes.cluster.stop()
    try:
        down = nodes.cli("approve", str(some), check=False)
        assert down.returncode != 0 and down.stderr.count(b"\n") == 1 and not down.stdout, down
        assert b"Traceback" not in down.stderr
    finally:
        nodes.cluster.start()
    # The very next requests succeed on both nodes, which were never restarted.
    assert [node.starts for node in nodes.nodes] == starts and node1.alive and node2.alive
    fresh = [_queued(nodes, index, f"back-{index}")[0] for index in (0, 1)]
    nodes.cli("approve", str(some), *map(str, fresh))
    for node in (node1, node2):
        assert node.ocsp(nodes.work, nodes.export(some)) == "good"
    assert node1.crl() == node2.crl()
    nodes.check_store()


def _resend(nodes: TwoNodes, request_id: int) -> bytes:
    """The CSR stored for a request, as DER (what the device would send again)."""
    pem = nodes.cluster.psql(f"SELECT pem FROM csr_pems WHERE id = {request_id}", nodes.db)
    return _openssl("req", "-inform", "PEM", "-outform", "DER", input=pem.encode() + b"\n", binary=True)


def _body_of(pem: str) -> str:
    """The base64 body of the first certificate in PEM text."""
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", start)
    return "".join(pem[start:end].splitlines()[1:])


def _openssl(*args: str, input: bytes | None = None, binary: bool = False):
    import subprocess

    result = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout if binary else result.stdout.decode()
