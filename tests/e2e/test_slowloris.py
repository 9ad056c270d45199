"""Slow clients from many loopback addresses do not starve curl enrolling and openssl asking OCSP.

Two hundred sockets from fifty addresses (127.0.0.2-51) trickle a request
head one byte at a time to both listeners, more than --max-connections
allows. On the http.server plumbing they held every slot and EST and OCSP
answered 503 to everyone; here the longest-waiting of them make room.
"""

from __future__ import annotations

import socket
import threading

from tests.server.live import curl_enroll, make_home, openssl_csr, pkcs7_to_pem, run, serve, wait_for

ADDRESSES = 50
PER_ADDRESS = 4
_HEAD = b"GET /ca.crt HTTP/1.1\r\nHost: slow.example\r\nX-Padding: " + b"a" * 4000


class Trickle:
    """Hostile clients: connect from many addresses and send a head that never ends, a byte at a time."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.stop = threading.Event()
        self.connected = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self._thread.join(30)

    def _open(self, index: int) -> socket.socket | None:
        address = f"127.0.0.{2 + index % ADDRESSES}"
        try:
            sock = socket.create_connection(("127.0.0.1", self.ports[index % len(self.ports)]), timeout=2,
                                            source_address=(address, 0))  # fmt: skip
        except OSError:
            return None
        sock.setblocking(False)
        self.connected += 1
        return sock

    def _run(self) -> None:
        total = ADDRESSES * PER_ADDRESS
        socks: list[socket.socket | None] = [self._open(i) for i in range(total)]
        sent = [0] * total
        while not self.stop.is_set():
            for i in range(total):
                sock = socks[i]
                if sock is None:
                    socks[i], sent[i] = self._open(i), 0  # closed by the server: come back, as an attacker does
                    continue
                try:
                    sock.send(_HEAD[sent[i] : sent[i] + 1])
                    sent[i] = (sent[i] + 1) % len(_HEAD)
                except OSError:
                    sock.close()
                    socks[i] = None
            self.stop.wait(0.5)  # the attack's pace, not a wait for the server
        for sock in socks:
            if sock is not None:
                sock.close()


def test_real_clients_are_served_during_a_slowloris_from_many_addresses(tmp_path):
    home = make_home(tmp_path)
    with serve(home, "--max-connections", "100", "--timeout", "30", "--rate", "0") as serving:
        with Trickle([serving.https_port, serving.http_port]) as attack:
            wait_for(lambda: attack.connected >= ADDRESSES * PER_ADDRESS)  # all of them in before the real clients
            key, csr = openssl_csr(tmp_path, "phone-under-attack")
            status, _ = curl_enroll(serving, home, csr, tmp_path / "q.txt", extra=("--max-time", "20"))
            assert status == 202, (tmp_path / "q.txt").read_text()
            home.cli("approve", home.request_id(1))
            assert curl_enroll(serving, home, csr, tmp_path / "c.b64", extra=("--max-time", "20"))[0] == 200
            leaf = tmp_path / "leaf.pem"
            pkcs7_to_pem(home, tmp_path / "c.b64", leaf)
            result = run(["openssl", "ocsp", "-issuer", str(home.issuing), "-cert", str(leaf), "-url",
                          f"{serving.http}/ocsp", "-CAfile", str(home.chain), "-timeout", "20"])  # fmt: skip
            assert f"{leaf}: good" in result.stdout.decode()
            crl = run(
                ["curl", "-sS", "-f", "--max-time", "20", "-o", str(tmp_path / "crl.der"), f"{serving.http}/ca.crl"]
            )
            assert crl.returncode == 0
