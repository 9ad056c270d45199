"""Group commit of EST intake: many clients share a commit, and a 202 is a promise kept.

A real ``tui-ca serve`` takes enrollments from several clients at once and is
killed with SIGKILL in the middle of them. Every request it had answered 202
must be in the store afterwards, queued, under its own CSR, and the store must
pass ``check``. Requests it never answered may or may not be there (the client
re-sends the same CSR and gets the same request).
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

from tests.server.live import run
from tests.server.support import make_csr
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.models import RequestStatus

CLIENTS = 6
# Acknowledged requests to collect before the kill: several group commits' worth.
BEFORE_KILL = 30


def _start(home: Path, log: Path) -> tuple[subprocess.Popen, int]:
    args = ["tui-ca", "--home", str(home), "serve", "--port", "0", "--http-port", "0", "--rate", "0",
            "--max-queued", "100000", "--max-per-address", "64"]  # fmt: skip
    # The access log goes to a file: a pipe nobody reads would fill and stall the server.
    with log.open("wb") as stderr:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    line = process.stdout.readline().decode()
    found = re.search(r"https://127\.0\.0\.1:(\d+)/", line)
    assert found, f"serve did not start: {line!r} {log.read_text()}"
    return process, int(found.group(1))


def test_every_acknowledged_enrollment_survives_sigkill_under_load(live_ca, tmp_path):
    process, port = _start(live_ca.home, tmp_path / "serve.log")
    context = ssl.create_default_context(cadata=live_ca.ca_cert_pem(chain=True).decode())
    acknowledged: dict[int, tuple[str, bytes]] = {}
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def enroll_forever(worker: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            cn = f"gc-{worker}-{number}.example"
            der = make_csr(cn)[0]
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
            try:
                conn.request("POST", "/.well-known/est/simpleenroll", base64.b64encode(der),
                             {"Content-Type": "application/pkcs10"})  # fmt: skip
                response = conn.getresponse()
                body = response.read().decode()
            except (OSError, http.client.HTTPException):
                return  # the server is gone
            finally:
                conn.close()
            if response.status != 202:
                refused.append(f"{response.status} {body}")
                return
            request_id = int(re.search(r"request (\d+) waits", body).group(1))
            with lock:
                acknowledged[request_id] = (cn, der)

    threads = [threading.Thread(target=enroll_forever, args=(i,), daemon=True) for i in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 180
        while len(acknowledged) < BEFORE_KILL and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        assert len(acknowledged) >= BEFORE_KILL, f"only {len(acknowledged)} enrollments answered"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        stop.set()
        for thread in threads:
            thread.join(60)
    assert process.returncode == -signal.SIGKILL
    assert refused == []

    with lock:
        promised = dict(acknowledged)
    after = CertificateAuthority(live_ca.home)
    for request_id, (cn, der) in promised.items():
        request = after.request(request_id)
        assert request.status == RequestStatus.QUEUED and request.requester == cn
        assert after.find_by_csr(der).id == request_id
    assert len({cn for cn, _ in promised.values()}) == len(promised)
    checked = run(["tui-ca", "--home", str(live_ca.home), "check"], check=False)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
