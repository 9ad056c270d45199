"""A separate process serving the SCEP routes on a home, with the CA keys made unopenable first.

Usage: python scep_serve_worker.py HOME PORTFILE. Prints nothing; writes the
port to PORTFILE once listening; stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from scep_support import serving  # noqa: E402

from tui_ca.engine import CertificateAuthority  # noqa: E402
from tui_ca.server.main import guard_ca_keys  # noqa: E402
from tui_ca.server.scep.service import ScepService  # noqa: E402


def main() -> None:
    home, port_file = Path(sys.argv[1]), Path(sys.argv[2])
    guard_ca_keys(home)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with serving(ScepService(CertificateAuthority(home))) as served:
        port_file.write_text(str(served.port))
        stop.wait()


if __name__ == "__main__":
    main()
