"""Accepting connections: many queued at once, and a server out of file descriptors that recovers.

The listener takes what is queued on its socket in batches from a reader that
stays registered; these hold that it neither stops after one batch nor stays
deaf after the process ran out of descriptors.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.server.support import serving

# More than one accept batch (listener._ACCEPT_BATCH).
MANY = 150
_DEADLINE = 60.0


def _ask(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return sock


def _answer(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def test_connections_queued_past_one_batch_are_all_answered(live_ca):
    with serving(live_ca, max_per_address=MANY + 10) as client:
        socks = [_ask(client.running.http_port) for _ in range(MANY)]
        answers = [_answer(sock) for sock in socks]
    assert all(answer.startswith(b"HTTP/1.1 404 ") for answer in answers)


def test_accepting_resumes_after_the_process_runs_out_of_descriptors(live_ca, tmp_path: Path):
    log = tmp_path / "serve.log"
    args = ["prlimit", "--nofile=96:96", "tui-ca", "--home", str(live_ca.home), "serve", "--port", "0",
            "--http-port", "0", "--max-per-address", "1000"]  # fmt: skip
    # The access log goes to a file: a pipe nobody reads would fill and stall the server.
    with log.open("wb") as stderr:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        found = re.search(r":(\d+)/", process.stdout.readline().decode())
        assert found, log.read_text()
        port = int(found.group(1))
        assert _answer(_ask(port)).startswith(b"HTTP/1.1 404 ")
        # Held open without a request: each one the server accepts costs it a descriptor.
        held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(150)]
        deadline = time.monotonic() + _DEADLINE
        while '"accept failed"' not in log.read_text():
            assert time.monotonic() < deadline, "the server never ran out of descriptors"
            time.sleep(0.05)
        for sock in held:
            sock.close()
        # Answered once the closed connections gave their descriptors back.
        assert _answer(_ask(port)).startswith(b"HTTP/1.1 404 ")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
