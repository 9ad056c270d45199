"""Command-line start-up against openssl's own commands, measured in the same run.

Admins script ``tui-ca`` the way they script openssl, so a command's start-up
is part of its cost. Three rows, each interleaving the two sides run by run so
that load drift hits both alike:

* ``cli-show``: ``tui-ca show ID`` vs ``openssl x509 -noout -text`` on the
  same issued certificate (both read and print one certificate).
* ``cli-approve``: a one-shot ``tui-ca approve ID`` on a home holding 1,000
  certificates, handed to a running ``tui-ca command-server`` as the console
  script does when one listens, vs one ``openssl ca -batch`` issuing one
  certificate from the same CA key (a fresh openssl CA directory for each
  run, as a script would keep one index: its cost at 1,000 lines is a
  re-read of a small file). Its CPU is the client's plus the server's
  worker's.
* ``cli-approve-cold``: the same approve in a process of its own
  (``TUI_CA_COMMAND_SERVER=off``): starting Python and importing
  ``cryptography`` alone cost several ``openssl ca`` runs.
* ``cli-approve-encrypted``: the same one-shot approve with the CA key
  encrypted (tui-ca's own key file, standard PKCS#8 with PBKDF2-HMAC-SHA256,
  600,000 iterations) vs ``openssl ca -batch -passin file:`` opening that very
  file: a real approve unlocks the key, and both sides pay the same KDF.
* ``cli-help``: ``tui-ca --help`` vs ``tui-ca show ID``: help must not cost
  more than a command that reads the store.

The children run with bytecode caching on (``PYTHONDONTWRITEBYTECODE``
dropped from their environment, one warm-up each): an installed tui-ca has
its ``.pyc`` files compiled by pip, so recompiling the package on every run
would time a development checkout, not the command.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Run as a script too (python bench/cli_startup.py): make ``bench.*`` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_ACTOR, CsrFactory, median, new_ca, row, tui_ca_command  # noqa: E402
from bench.openssl_baseline import OPENSSL, issue_with_openssl_ca, make_csrs, make_openssl_ca_dir  # noqa: E402
from tui_ca.engine.reader import ISSUING_CERT, ISSUING_KEY  # noqa: E402

SHOW_GOAL = 2.5
APPROVE_GOAL = 6.0
HELP_GOAL = 1.0
PASSPHRASE = b"bench cli-startup passphrase"
# What an installed package runs with: bytecode cached (see the module docstring).
# Every row but the command server's runs each command in its own process.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"TUI_CA_COMMAND_SERVER": "off"}


def _children_cpu() -> float:
    """User + system seconds of finished children: a busy machine distorts them much less than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(cmd: list[str], cpu: list[float] | None = None, server: CommandServerProcess | None = None) -> float:
    before = _children_cpu() + (server.cpu() if server else 0.0)
    workers = server.children() if server else set()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False, env=server.env if server else _ENV)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {proc.stderr.decode().strip()}")
    if cpu is not None:
        if server:
            server.reaped(workers)
        cpu.append(_children_cpu() + (server.cpu() if server else 0.0) - before)
    return elapsed


class CommandServerProcess:
    """A ``tui-ca command-server`` on a socket of its own, and the environment that finds it."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700)
        socket = folder / "commands.sock"
        self.env = {k: v for k, v in _ENV.items() if k != "TUI_CA_COMMAND_SERVER"} | {
            "TUI_CA_COMMAND_SOCKET": str(socket)}  # fmt: skip
        self.process = subprocess.Popen([*tui_ca_command(), "command-server"], env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert self.process.stdout is not None
        if b"command server on" not in self.process.stdout.readline():
            raise RuntimeError(f"the command server did not start: {self.process.stderr.read().decode()}")

    def cpu(self) -> float:
        """The server's CPU seconds and its finished workers' (user + system, from /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def children(self) -> set[str]:
        """The server's children now: the spare that takes the next command among them."""
        return set(Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split())

    def reaped(self, workers: set[str], deadline: float = 30.0) -> None:
        """Until none of ``workers`` is still a child: a worker's CPU counts in /proc once the server reaped it.

        (A worker tells its client the exit code just before it exits, so the
        client may end before the server has waited for the worker.)
        """
        end = time.monotonic() + deadline
        while self.children() & workers:
            if time.monotonic() > end:
                raise RuntimeError("the command server did not reap its worker")
            time.sleep(0.001)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def _note(runs: int, ours_cpu: list[float], theirs_cpu: list[float]) -> str:
    ours, theirs = median(ours_cpu), median(theirs_cpu)
    return f"median of {runs}; CPU {ours * 1000:.0f} ms vs {theirs * 1000:.0f} ms, ratio {ours / theirs:.2f}"


def measure(quick: bool = False, workdir: Path | None = None) -> list[dict]:
    import tempfile

    runs = 2 if quick else 15
    seeded = 20 if quick else 1_000
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        root = Path(workdir or tmp)
        return _measure(root, runs=runs, seeded=seeded)


def _encrypted_copy(home: Path, copy: Path, factory: CsrFactory, runs: int) -> list[int]:
    """The seeded home again, its keys rewritten as encrypted PKCS#8, with ``runs`` new requests queued."""
    from tui_ca.engine import CertificateAuthority
    from tui_ca.engine.key_files import rekey_files

    shutil.copytree(home, copy, symlinks=True)
    ca = CertificateAuthority(copy, actor=BENCH_ACTOR)
    rekey_files(ca, PASSPHRASE)
    return [r.request.id for r in ca.submit_many([(factory.csr(f"enc-{n}"), f"enc-{n}") for n in range(runs)])]


def _measure(root: Path, *, runs: int, seeded: int) -> list[dict]:
    home = root / "home"
    ca = new_ca(home)
    factory = CsrFactory()
    items = [(factory.csr(f"seed-{n}"), f"seed-{n}") for n in range(seeded)]
    ids = [r.request.id for r in ca.submit_many(items, source="bench")]
    ca.approve(ids)
    encrypted = root / "home-encrypted"
    queued_encrypted = _encrypted_copy(home, encrypted, factory, runs)
    queued = [r.request.id for r in ca.submit_many([(factory.csr(f"one-{n}"), f"one-{n}") for n in range(runs)])]
    queued_cold = [r.request.id for r in ca.submit_many([(factory.csr(f"cold-{n}"), f"cold-{n}")
                                                         for n in range(runs)])]  # fmt: skip
    shown = str(ids[0])
    cert_pem = root / "shown.pem"
    cert_pem.write_bytes(ca.certificate_pem(ids[0]))
    tui_ca = [*tui_ca_command(), "--home", str(home)]
    passphrase_file = root / "passphrase"
    passphrase_file.write_bytes(PASSPHRASE)
    passphrase_file.chmod(0o600)
    tui_ca_encrypted = [*tui_ca_command(), "--home", str(encrypted), "--passphrase-file", str(passphrase_file)]
    csr_paths = make_csrs(root / "openssl-csrs", 2 * runs)
    issuing_pem, key_pem = (home / ISSUING_CERT).read_bytes(), (home / ISSUING_KEY).read_bytes()
    encrypted_key_pem = (encrypted / ISSUING_KEY).read_bytes()

    show, openssl_show, approve, openssl_ca, helps, approve_enc, openssl_enc = [], [], [], [], [], [], []
    approve_cold: list[float] = []
    cpu: dict[str, list[float]] = {name: [] for name in ("show", "openssl_show", "help", "approve", "openssl_ca",
                                                         "approve_enc", "openssl_enc", "approve_cold")}  # fmt: skip
    # One warm-up each: the first run pays for the page cache and writes the bytecode.
    _wall([*tui_ca, "show", shown])
    _wall([*tui_ca, "--help"])
    _wall([OPENSSL, "x509", "-noout", "-text", "-in", str(cert_pem)])
    server = CommandServerProcess(root / "command-server")
    try:
        _wall([*tui_ca, "--version"], server=server)
        for n in range(runs):
            show.append(_wall([*tui_ca, "show", shown], cpu["show"]))
            openssl_show.append(_wall([OPENSSL, "x509", "-noout", "-text", "-in", str(cert_pem)],
                                      cpu["openssl_show"]))  # fmt: skip
            helps.append(_wall([*tui_ca, "--help"], cpu["help"]))
            approve.append(_wall([*tui_ca, "approve", str(queued[n])], cpu["approve"], server=server))
            approve_cold.append(_wall([*tui_ca, "approve", str(queued_cold[n])], cpu["approve_cold"]))
            config = make_openssl_ca_dir(root / f"openssl-ca-{n}", issuing_pem, key_pem)
            before = _children_cpu()
            openssl_ca.append(issue_with_openssl_ca(config, [csr_paths[n]], root / f"openssl-out-{n}"))
            cpu["openssl_ca"].append(_children_cpu() - before)
            approve_enc.append(_wall([*tui_ca_encrypted, "approve", str(queued_encrypted[n])], cpu["approve_enc"]))
            config = make_openssl_ca_dir(root / f"openssl-ca-enc-{n}", issuing_pem, encrypted_key_pem)
            openssl_enc.append(_wall([OPENSSL, "ca", "-batch", "-config", str(config), "-passin",
                                      f"file:{passphrase_file}", "-in", str(csr_paths[runs + n]), "-out",
                                      str(root / f"openssl-enc-{n}.pem"), "-notext"], cpu["openssl_enc"]))  # fmt: skip
    finally:
        server.stop()
    if len(ca.certificates()) != seeded + 2 * runs:
        raise RuntimeError("the one-shot approvals did not all issue")
    from tui_ca.engine import CertificateAuthority

    if len(CertificateAuthority(encrypted).certificates()) != seeded + runs:
        raise RuntimeError("the one-shot approvals with the encrypted key did not all issue")

    ours, theirs = median(show), median(openssl_show)
    rows = [row("cli-show", "`tui-ca show ID` vs `openssl x509 -noout -text` (one certificate)", ours, theirs,
                ours / theirs, f"≤ {SHOW_GOAL} (tui-ca ÷ openssl)", ours / theirs <= SHOW_GOAL, "ms",
                _note(runs, cpu["show"], cpu["openssl_show"]))]  # fmt: skip
    ours, theirs = median(approve), median(openssl_ca)
    rows.append(row("cli-approve", f"one-shot `tui-ca approve ID` at {seeded:,} certificates, with a "
                    "`tui-ca command-server` running, vs one `openssl ca -batch`", ours, theirs, ours / theirs,
                    f"≤ {APPROVE_GOAL} (tui-ca ÷ openssl)", ours / theirs <= APPROVE_GOAL, "ms",
                    _note(runs, cpu["approve"], cpu["openssl_ca"])))  # fmt: skip
    ours = median(approve_cold)
    rows.append(row("cli-approve-cold", "the same approve in a process of its own (no command server)", ours,
                    theirs, ours / theirs, "— (Python and cryptography's imports, reported apart)", None, "ms",
                    _note(runs, cpu["approve_cold"], cpu["openssl_ca"])))  # fmt: skip
    ours, theirs = median(approve_enc), median(openssl_enc)
    rows.append(row("cli-approve-encrypted", "the same with the CA key encrypted (PBKDF2, 600,000 iterations), "
                    "vs `openssl ca -batch -passin` on the same key file", ours, theirs, ours / theirs,
                    "— (the key decrypt, reported apart)", None, "ms",
                    _note(runs, cpu["approve_enc"], cpu["openssl_enc"])))  # fmt: skip
    ours, theirs = median(helps), median(show)
    rows.append(row("cli-help", "`tui-ca --help` vs `tui-ca show ID`", ours, theirs, ours / theirs,
                    f"≤ {HELP_GOAL} (help ÷ show)", ours / theirs <= HELP_GOAL, "ms",
                    _note(runs, cpu["help"], cpu["show"])))  # fmt: skip
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery, not the speed")
    for r in measure(quick=parser.parse_args().quick):
        print(
            f"{r['name']:12} {r['ours_s'] * 1000:8.1f} ms  vs {r['baseline_s'] * 1000:8.1f} ms  "
            f"ratio {r['ratio']:.2f}  goal {r['goal']}  ({r['note']})"
        )
