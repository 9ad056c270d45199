"""Admin commands for the server: ``server-setup`` and ``est-user``.

``server-setup`` is the one server-related step that uses the CA key, and it
runs as the admin, not inside ``serve``.
"""

from __future__ import annotations

import getpass
import sys

from tui_ca.engine.errors import InputError
from tui_ca.engine.service_certs import setup_service_certs
from tui_ca.server.users import set_user


def cmd_server_setup(ca, args) -> int:
    if getattr(args, "record", False):
        print("tui-ca: server-setup: --record is deprecated and does nothing: the server's certificates are always "
              "recorded", file=sys.stderr)  # fmt: skip
    done = setup_service_certs(ca, args.name, tls_days=args.days, ocsp_days=args.ocsp_days, ocsp_only=args.ocsp_only)
    if done.tls_not_after is not None:
        print(f"TLS certificate for {', '.join(done.tls_names)} valid until {done.tls_not_after:%Y-%m-%d %H:%M} UTC")
    print(f"OCSP signing certificate valid until {done.ocsp_not_after:%Y-%m-%d %H:%M} UTC")
    print(f"written to {ca.home / 'server'}; restart or start 'tui-ca serve' to use them")
    return 0


def cmd_est_user(args) -> int:
    names = getattr(args, "may_request", None)
    only_self = getattr(args, "only_self", False)
    if names and only_self:
        raise InputError("--may-request and --only-self contradict each other; give one")
    may_request = () if only_self else tuple(names) if names else None
    password = None
    if not getattr(args, "keep_password", False):
        if sys.stdin.isatty():
            password = getpass.getpass(f"Password for EST user {args.name}: ")
            if password != getpass.getpass("Repeat it: "):
                raise InputError("the passwords do not match")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    created = set_user(args.users, args.name, password, may_request)
    print(f"EST user {args.name} {'added to' if created else 'updated in'} {args.users}")
    if may_request is not None:
        shown = ", ".join(may_request) if may_request else "none"
        print(f"requester names besides its own: {shown}")
    return 0
