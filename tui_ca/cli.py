"""The ``tui-ca`` command: parse arguments, call the engine, print.

Errors are one line on stderr and an exit code: 1 when a rule refuses, 2 for
bad input or usage. No traceback reaches the user for anything they can cause.
Textual is imported only by the commands that open the UI.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from tui_ca.engine import CAError, CertificateAuthority, InputError, NameFields, RevocationReason
from tui_ca.engine.models import CertStatus, RequestStatus
from tui_ca.homes import resolve_home

EXIT_RULE = 1
EXIT_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"tui-ca: {message} (see tui-ca --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tui-ca", description="A certificate authority run from a terminal UI.")
    parser.add_argument("--home", type=Path, help="CA home directory (default: $TUI_CA_HOME or the user data dir)")
    parser.add_argument("--passphrase-file", type=Path, help="file holding the CA key passphrase")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    init = sub.add_parser("init", help="create the root and issuing CA")
    for flag, helptext in [("--cn", "common name"), ("--org", "organisation (O)"), ("--ou", "unit (OU)"),
                           ("--country", "two-letter country code (C)"), ("--state", "state (ST)"),
                           ("--locality", "city (L)"), ("--email", "CA e-mail address")]:  # fmt: skip
        init.add_argument(flag, help=helptext)
    init.add_argument("--days", type=int, default=3650, help="CA validity in days (default 3650)")
    init.add_argument("--key-type", default="ec-p256", help="ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096")
    init.add_argument("--base-url", help="public HTTP base named in certificates for CRL and OCSP")
    init.add_argument("--crl-days", type=int, default=7, help="CRL nextUpdate in days (default 7)")
    init.add_argument("--queue-days", type=int, default=30,
                      help="queued requests older than this expire (default 30)")  # fmt: skip
    init.add_argument("--external-root", action="store_true", help="write the issuing CA's CSR for another root")
    init.add_argument("-o", "--output", type=Path, help="with --external-root: where to write the CSR")

    imp = sub.add_parser("import-ca-cert", help="finish an external-root setup")
    imp.add_argument("root", type=Path)
    imp.add_argument("issuing", type=Path)

    sub.add_parser("tui", help="the full-screen UI (also: no command)")
    demo = sub.add_parser("demo", help="a throwaway demo CA, then the UI")
    demo.add_argument("--no-ui", action="store_true", help="create the demo home and print it, without the UI")

    submit = sub.add_parser("submit", help="queue a CSR; prints its Certificate ID")
    submit.add_argument("file", help="CSR file (PEM or DER), or - for stdin")
    submit.add_argument("--requester", help="who asks (default: the CSR's CN)")

    lst = sub.add_parser("list", help="the queue or the issued certificates")
    lst.add_argument("what", nargs="?", choices=["requests", "certs"], default="requests")
    lst.add_argument("--status", help="requests: queued/approved/rejected/expired; certs: valid/revoked/expired")
    lst.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="one request or certificate (ID, or serial in hex)")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")

    approve = sub.add_parser("approve", help="issue certificates (several IDs in one pass)")
    approve.add_argument("ids", nargs="+")
    approve.add_argument("--days", type=int, help="validity in days (default 365)")

    reject = sub.add_parser("reject", help="reject a queued request")
    reject.add_argument("id")
    reject.add_argument("--reason", required=True)

    revoke = sub.add_parser("revoke", help="revoke and publish a new CRL")
    revoke.add_argument("id")
    revoke.add_argument("--reason", default="unspecified", help="RFC 5280 reason (default unspecified)")

    export = sub.add_parser("export", help="a certificate as PEM")
    export.add_argument("id")
    export.add_argument("--chain", action="store_true")
    export.add_argument("-o", "--output", type=Path)

    cacert = sub.add_parser("ca-cert", help="the signing certificate as PEM")
    cacert.add_argument("--chain", action="store_true")

    crl = sub.add_parser("crl", help="the current CRL (re-published if stale)")
    crl.add_argument("--der", action="store_true")
    crl.add_argument("--publish", action="store_true", help="publish a fresh CRL now (for cron)")
    crl.add_argument("-o", "--output", type=Path)

    aud = sub.add_parser("audit", help="the audit log")
    aud.add_argument("--json", action="store_true")
    aud.add_argument("--verify", action="store_true", help="check the hash chain; non-zero exit if broken")

    expire = sub.add_parser("expire-queue", help="expire queued requests older than --days (default: the CA's)")
    expire.add_argument("--days", type=int, help="age in days (default: init --queue-days, 30)")

    serve = sub.add_parser("serve", help="EST over HTTPS; CRL, CA certs and OCSP over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--http-port", type=int, default=8080)
    serve.add_argument("--users", type=Path, help="file of EST users (name:scrypt-hash), see README")
    serve.add_argument("--no-anonymous", action="store_true", help="require an EST user or client certificate")
    serve.add_argument("--rate", type=float, default=1.0, help="new requests per client per second (default 1)")
    serve.add_argument("--max-queued", type=int, default=1000, help="refuse new requests past this many queued")
    serve.add_argument("--max-per-address", type=int, default=16,
                       help="concurrent connections from one address (default 16; raise it behind NAT)")  # fmt: skip
    serve.add_argument("--timeout", type=float, default=10.0, help="seconds a client may take per request (default 10)")
    serve.add_argument("--retry-after", type=int, default=60, help="Retry-After for queued EST requests (default 60)")

    setup = sub.add_parser(
        "server-setup", help="issue the server's TLS and OCSP signing certificates (uses the CA key)"
    )
    setup.add_argument(
        "--name", action="append", help="DNS name or IP for the TLS certificate (repeat; default loopback)"
    )
    setup.add_argument("--days", type=int, default=365, help="TLS certificate validity (default 365)")
    setup.add_argument("--ocsp-days", type=int, default=7, help="OCSP signing certificate validity (default 7)")
    setup.add_argument("--ocsp-only", action="store_true", help="renew only the OCSP signing certificate (for cron)")

    estuser = sub.add_parser("est-user", help="add or change an EST user (password from stdin or asked)")
    estuser.add_argument("name")
    estuser.add_argument("--users", type=Path, required=True, help="the EST users file (created 0600)")
    return parser


# ------------------------------------------------------------------- helpers


def _die(message: str, code: int) -> int:
    print(f"tui-ca: {message}", file=sys.stderr)
    return code


def _read_secret_file(path: Path) -> bytes:
    try:
        return path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise InputError(f"cannot read the passphrase file {path}: {exc.strerror}") from None


def passphrase_source(args: argparse.Namespace, *, confirm: bool = False):
    """A callable the engine calls only when it needs the key."""
    path = args.passphrase_file or (Path(p) if (p := os.environ.get("TUI_CA_PASSPHRASE_FILE")) else None)
    if path is not None:
        secret = _read_secret_file(path)
        if not secret:
            raise InputError(f"the passphrase file {path} is empty")
        return secret

    def ask() -> bytes | None:
        if not sys.stdin.isatty():
            return None
        first = getpass.getpass("CA key passphrase: ").encode()
        if confirm and first != getpass.getpass("Repeat the passphrase: ").encode():
            raise InputError("the passphrases do not match")
        return first or None

    return ask


def _jsonable(value):
    if is_dataclass(value):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _safe(text: str | None) -> str:
    """Requester-controlled text for a terminal: control characters made visible."""
    if text is None:
        return "-"
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}"
                   for ch in text)  # fmt: skip


def _parse_id(text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise InputError(f"{text!r} is not a Certificate ID (a small decimal number)")
    return int(text)


def _write_output(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None


# ------------------------------------------------------------------ commands


def cmd_init(ca: CertificateAuthority, args) -> int:
    names = NameFields(country=args.country, state=args.state, locality=args.locality, organization=args.org,
                       org_unit=args.ou, common_name=args.cn, email=args.email)  # fmt: skip
    if args.external_root and args.output and not os.access(args.output.parent, os.W_OK):
        # Checked first: a key stored without its CSR would block every later init.
        raise InputError(f"cannot write {args.output}: its folder is missing or not writable")
    result = ca.init(names, days=args.days, key_type=args.key_type, base_url=args.base_url,
                     external_root=args.external_root, crl_days=args.crl_days,
                     queue_days=args.queue_days)  # fmt: skip
    if isinstance(result, bytes):
        if args.output:
            _write_output(result, args.output)
            print(f"issuing CA request written to {args.output}; have the root sign it, then run import-ca-cert",
                  file=sys.stderr)  # fmt: skip
        else:
            _write_output(result, None)
        return 0
    print(f"CA created in {ca.home}")
    print(f"  issuing CA: {ca.issuing_cert().subject.rfc4514_string()}")
    print(f"  valid until {result.not_after:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_import(ca: CertificateAuthority, args) -> int:
    try:
        root, issuing = args.root.read_bytes(), args.issuing.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from None
    info = ca.import_ca_cert(root, issuing)
    print(f"issuing CA imported; valid until {info.not_after:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_submit(ca: CertificateAuthority, args) -> int:
    if args.file == "-":
        data = sys.stdin.buffer.read(64 * 1024 + 1)
    else:
        try:
            with open(args.file, "rb") as handle:
                data = handle.read(64 * 1024 + 1)
        except OSError as exc:
            raise InputError(f"cannot read {args.file}: {exc.strerror}") from None
    result = ca.submit(data, requester=args.requester, source="cli")
    print(result.request.id)
    if not result.created:
        print(f"(already queued as request {result.request.id})", file=sys.stderr)
    return 0


def cmd_list(ca: CertificateAuthority, args) -> int:
    now = ca.now()
    if args.what == "requests":
        status = _enum(RequestStatus, args.status)
        items = ca.requests(status)
        if args.json:
            print(json.dumps([_request_json(r) for r in items], indent=2))
            return 0
        print(f"{'ID':>6}  {'STATUS':9}  {'REQUESTER':24}  {'KEY':9}  SUBMITTED")
        for r in items:
            print(f"{r.id:>6}  {r.status.value:9}  {_safe(r.requester)[:24]:24}  {r.details.key_type:9}  "
                  f"{r.submitted_at:%Y-%m-%d %H:%M}")  # fmt: skip
        return 0
    status = _enum(CertStatus, args.status)
    certs = ca.certificates(status)
    if args.json:
        print(json.dumps([_cert_json(c, now) for c in certs], indent=2))
        return 0
    print(f"{'ID':>6}  {'STATUS':8}  {'REQUESTER':24}  {'SERIAL':16}  NOT AFTER")
    for c in certs:
        print(f"{c.id:>6}  {c.status_at(now).value:8}  {_safe(c.requester)[:24]:24}  {c.serial_hex[:16]:16}  "
              f"{c.not_after:%Y-%m-%d}")  # fmt: skip
    return 0


def _enum(kind, value):
    if value is None:
        return None
    try:
        return kind(value.lower())
    except ValueError:
        raise InputError(f"unknown status {value!r}; use one of: {', '.join(k.value for k in kind)}") from None


def _request_json(r) -> dict:
    return _jsonable(r)


def _cert_json(c, now) -> dict:
    data = _jsonable(c)
    data["serial"] = c.serial_hex
    data["status"] = c.status_at(now).value
    return data


def cmd_show(ca: CertificateAuthority, args) -> int:
    request, cert = ca.lookup(args.id)
    now = ca.now()
    if args.json:
        print(json.dumps({"request": _request_json(request) if request else None,
                          "certificate": _cert_json(cert, now) if cert else None}, indent=2))  # fmt: skip
        return 0
    if request is not None:
        d = request.details
        print(f"Certificate ID   {request.id}")
        print(f"Requester        {_safe(request.requester)}")
        print(f"Status           {request.status.value}")
        print(f"Subject          {_safe(d.subject)}")
        print(f"SANs             {', '.join(_safe(s) for s in d.sans) or '-'}")
        print(f"Key              {d.key_type}")
        print(f"SPKI SHA-256     {d.fingerprint_groups}")
        print(f"Submitted        {request.submitted_at:%Y-%m-%d %H:%M:%S} UTC by {_safe(request.submitted_by.describe())} "
              f"via {request.source}")  # fmt: skip
        if request.decided_at:
            print(
                f"Decided          {request.decided_at:%Y-%m-%d %H:%M:%S} UTC by {_safe(request.decided_by.describe())}"
            )
        if request.reason:
            print(f"Reason           {_safe(request.reason)}")
    if cert is not None:
        print(f"Serial           {cert.serial_hex}")
        print(f"Certificate      {cert.status_at(now).value}, "
              f"{cert.not_before:%Y-%m-%d} to {cert.not_after:%Y-%m-%d}")  # fmt: skip
        print(f"SHA-256          {cert.sha256}")
        if cert.revoked_at:
            print(f"Revoked          {cert.revoked_at:%Y-%m-%d %H:%M:%S} UTC by {_safe(cert.revoked_by.describe())} "
                  f"({cert.revocation_reason.value})")  # fmt: skip
    return 0


def cmd_approve(ca: CertificateAuthority, args) -> int:
    ids = [_parse_id(text) for text in args.ids]
    worst = 0
    for outcome in ca.approve(ids, days=args.days):
        if outcome.certificate is not None:
            print(f"{outcome.id} {outcome.certificate.serial_hex}")
        else:
            print(f"tui-ca: request {outcome.id}: {outcome.error}", file=sys.stderr)
            worst = max(worst, outcome.exit_code)
    return worst


def cmd_reject(ca: CertificateAuthority, args) -> int:
    request = ca.reject(_parse_id(args.id), args.reason)
    print(f"request {request.id} rejected")
    return 0


def cmd_revoke(ca: CertificateAuthority, args) -> int:
    reason = RevocationReason.parse(args.reason)
    cert = ca.revoke(args.id, reason)
    info = ca.info()
    print(f"certificate {cert.id} (serial {cert.serial_hex}) revoked: {reason.value}; CRL {info.crl_number} published")
    return 0


def cmd_export(ca: CertificateAuthority, args) -> int:
    _write_output(ca.certificate_pem(args.id, chain=args.chain), args.output)
    return 0


def cmd_ca_cert(ca: CertificateAuthority, args) -> int:
    _write_output(ca.ca_cert_pem(chain=args.chain), None)
    return 0


def cmd_crl(ca: CertificateAuthority, args) -> int:
    if args.publish:
        info = ca.publish_crl()
        print(f"CRL {info.number} published with {info.entries} entries; next update "
              f"{info.next_update:%Y-%m-%d %H:%M} UTC", file=sys.stderr)  # fmt: skip
    _write_output(ca.crl(der=args.der), args.output)
    return 0


def cmd_audit(ca: CertificateAuthority, args) -> int:
    if args.verify:
        problems = ca.verify_audit()
        for problem in problems:
            print(f"tui-ca: audit: {problem}", file=sys.stderr)
        if problems:
            return EXIT_RULE
        print(f"audit log intact: {len(ca.audit_records())} records")
        return 0
    items = ca.audit_records()
    if args.json:
        print(json.dumps([_jsonable(r) for r in items], indent=2))
        return 0
    for r in items:
        who = _safe(r.user) + (f"@{_safe(r.address)}" if r.address else "")
        print(f"{r.seq:>6}  {r.at:%Y-%m-%d %H:%M:%S}  {who:20}  {r.action:9}  {_safe(r.target):18}  {_safe(r.outcome)}")
    return 0


def cmd_expire(ca: CertificateAuthority, args) -> int:
    from datetime import timedelta

    if args.days is not None and args.days < 1:
        raise InputError("--days must be at least 1")
    expired = ca.expire_queue(None if args.days is None else timedelta(days=args.days))
    print(f"{len(expired)} queued request(s) expired" + (f": {', '.join(map(str, expired))}" if expired else ""))
    return 0


def cmd_demo(args) -> int:
    from tui_ca.demo import create_demo_home

    home = create_demo_home(args.home)
    if args.no_ui:
        ca = CertificateAuthority(home)
        print(f"demo CA in {home}")
        print(f"  {len(ca.requests(RequestStatus.QUEUED))} queued requests, {len(ca.certificates())} certificates")
        return 0
    try:
        return run_ui(home, args)
    finally:
        if args.home is None:
            # The throwaway home (a temporary folder) goes with the session.
            import shutil

            shutil.rmtree(home.parent, ignore_errors=True)


def run_ui(home: Path, args) -> int:
    try:
        from tui_ca.tui.app import run_app
    except ImportError as exc:  # pragma: no cover - a broken install
        return _die(f"the UI cannot start: {exc}", EXIT_INPUT)
    return run_app(home, passphrase_source(args))


def cmd_serve(ca: CertificateAuthority, args) -> int:
    from tui_ca.server.main import serve

    return serve(ca, args)


def cmd_server_setup(ca: CertificateAuthority, args) -> int:
    from tui_ca.server.admin import cmd_server_setup as setup

    return setup(ca, args)


COMMANDS = {
    "init": cmd_init, "import-ca-cert": cmd_import, "submit": cmd_submit, "list": cmd_list, "show": cmd_show,
    "approve": cmd_approve, "reject": cmd_reject, "revoke": cmd_revoke, "export": cmd_export,
    "ca-cert": cmd_ca_cert, "crl": cmd_crl, "audit": cmd_audit, "expire-queue": cmd_expire, "serve": cmd_serve,
    "server-setup": cmd_server_setup,
}  # fmt: skip


_SETUP_COMMANDS = ("init", "import-ca-cert")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "est-user":
            from tui_ca.server.admin import cmd_est_user

            return cmd_est_user(args)
        home = resolve_home(args.home)
        if home.exists() and not home.is_dir():
            raise InputError(f"the CA home {home} is not a directory")
        if args.command in (None, "tui"):
            return run_ui(home, args)
        ca = CertificateAuthority(home, passphrase=passphrase_source(args, confirm=args.command == "init"))
        if args.command not in _SETUP_COMMANDS:
            # A mistyped --home must not look like an empty CA.
            ca.require_ca()
        return COMMANDS[args.command](ca, args)
    except CAError as exc:
        return _die(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _die("interrupted", 130)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
