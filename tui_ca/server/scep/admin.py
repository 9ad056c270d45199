"""``tui-ca scep-challenge``: the admin's side of SCEP challenge passwords."""

from __future__ import annotations

import re
import sys
from datetime import timedelta

from tui_ca.engine.errors import InputError
from tui_ca.server.scep.state import DEFAULT_CHALLENGE_TTL, Challenges

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str | None) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d`` or plain seconds."""
    if text is None:
        return DEFAULT_CHALLENGE_TTL
    found = re.fullmatch(r"\s*([0-9]{1,7})\s*([smhd]?)\s*", text.lower())
    if not found:
        raise InputError(f"--ttl {text!r} is not a duration such as 30m, 24h or 7d")
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2) or "s"])


def cmd_scep_challenge(ca, args) -> int:
    """Mint a one-time challenge password, or turn the requirement on or off."""
    challenges = Challenges(ca.home)
    if args.require is not None:
        challenges.set_required(args.require)
        state = "now required" if args.require else "no longer required"
        print(f"SCEP challenge passwords are {state} for new requests")
        return 0
    minted = challenges.mint(ca.now(), requester=args.requester, ttl=parse_ttl(args.ttl))
    print(minted.password)
    who = f"for requester {minted.requester!r}" if minted.requester else "for any requester"
    print(f"one-time SCEP challenge password {who}, valid until {minted.expires:%Y-%m-%d %H:%M} UTC",
          file=sys.stderr)  # fmt: skip
    if not challenges.required():
        print("note: challenges are not required yet; 'tui-ca scep-challenge --require' turns them on",
              file=sys.stderr)  # fmt: skip
    return 0
