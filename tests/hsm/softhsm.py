"""A real software token for the tests: SoftHSM2 initialised in a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
USER_PIN = "314159"
SO_PIN = "271828"


@dataclass(frozen=True)
class SoftToken:
    """One initialised token and the environment that finds it."""

    module: str
    label: str
    conf: Path
    pin_file: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}


def softhsm_module() -> str:
    for candidate in _MODULE_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise RuntimeError("SoftHSM2 is not installed: apt-get install softhsm2 (scripts/install-test-deps.sh does)")


def make_token(folder: Path, label: str = "tui-ca-test") -> SoftToken:
    """Initialise a fresh token under ``folder``; SOFTHSM2_CONF must point at it for every user."""
    if shutil.which("softhsm2-util") is None:
        raise RuntimeError("softhsm2-util is missing: apt-get install softhsm2 (scripts/install-test-deps.sh does)")
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN,
                    "--so-pin", SO_PIN], env=env, check=True, capture_output=True)  # fmt: skip
    pin_file = folder / "pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    return SoftToken(module=softhsm_module(), label=label, conf=conf, pin_file=pin_file)
