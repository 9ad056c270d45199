"""The ``tui-ca`` command: parse arguments, call the engine, print.

Errors are one line on stderr and an exit code (the ``EXIT_*`` constants). No
traceback reaches the user for anything they can cause.

Start-up is part of the interface (admins script these commands): only the
chosen command's arguments are added to the parser, and the engine, Textual
and the server are imported by the commands that use them, so ``--help`` and
a mistyped command cost an interpreter and argparse, nothing more.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

# The engine's package imports nothing until a name is used, so this is cheap.
from tui_ca.command_words import chosen_command
from tui_ca.engine.errors import CAError, InputError

if TYPE_CHECKING:
    from enum import Enum

    from tui_ca.engine import CertificateAuthority
    from tui_ca.engine.reader import CAReader

EXIT_OK = 0
EXIT_RULE = 1
"""A CA rule refused (state, policy, no CA, locked key, broken audit chain)."""
EXIT_INPUT = 2
"""Input that cannot be used, or a usage error."""
EXIT_PARTIAL = 3
"""``approve`` issued some of the IDs and refused others (each refusal on stderr)."""
EXIT_INTERRUPTED = 130


def exit_code_for(error: type[CAError]) -> int:
    """The exit code of an engine refusal, by its class (the engine knows nothing of exit codes)."""
    return EXIT_INPUT if issubclass(error, InputError) else EXIT_RULE


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"tui-ca: {message} (see tui-ca --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter without its import of shutil (and so bz2, lzma...) just to learn the width."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:  # fmt: skip
        if width is None:
            try:
                columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size().columns
            except (ValueError, OSError):
                columns = 80
            width = columns - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class _Version(argparse.Action):
    """``--version``; the package is imported only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        from tui_ca import __version__

        print(f"tui-ca {__version__}")
        parser.exit(EXIT_OK)


# ---------------------------------------------------------- the arguments
# One function per command adds its arguments; main() calls only the chosen
# one (every one when the shell asks for completions).


def _args_init(p: argparse.ArgumentParser) -> None:
    for flag, helptext in [("--cn", "common name"), ("--org", "organisation (O)"), ("--ou", "unit (OU)"),
                           ("--country", "two-letter country code (C)"), ("--state", "state (ST)"),
                           ("--locality", "city (L)"), ("--email", "CA e-mail address")]:  # fmt: skip
        p.add_argument(flag, help=f"the issuing CA's {helptext}")
    p.add_argument("--days", type=int, default=3650, help="CA validity in days (default 3650)")
    p.add_argument("--key-type", default="ec-p256", help="ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096")
    p.add_argument("--base-url", help="public HTTP base named in certificates for CRL and OCSP")
    p.add_argument("--crl-days", type=int, default=7, help="CRL nextUpdate in days (default 7)")
    p.add_argument("--queue-days", type=int, default=30, help="queued requests older than this expire (default 30)")
    p.add_argument("--allow-wildcards", action="store_true",
                   help="accept wildcard DNS names (*.example.net) in CSRs (default: refused)")  # fmt: skip
    p.add_argument("--database", dest="init_database", metavar="URL",
                   help="keep the records in this PostgreSQL database (schema created if empty)")  # fmt: skip
    p.add_argument("--admin-group", metavar="GROUP",
                   help="share the home with this Unix group's members (2770 folders, 0660 files; see SECURITY.md)")  # fmt: skip
    p.add_argument("--external-root", action="store_true", help="write the issuing CA's CSR for another root")
    p.add_argument("-o", "--output", type=Path, help="with --external-root: where to write the CSR")
    _args_token(p)
    p.add_argument("--pkcs11-key", nargs="+", metavar="LABEL",
                   help="use the token's existing keys: ROOT ISSUING labels (ISSUING alone with --external-root)")  # fmt: skip


def _args_token(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument("--pkcs11", metavar="MODULE", required=required,
                   help="keep the CA keys in a PKCS#11 token: path of its module (e.g. libsofthsm2.so)")  # fmt: skip
    p.add_argument("--token", metavar="LABEL", required=required, help="with --pkcs11: the token's label")
    p.add_argument("--pin-file", type=Path, help="file holding the token's PIN (default: asked on a terminal)")


def _args_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="the external root's certificate (PEM)")
    p.add_argument("issuing", type=Path, help="the issuing CA certificate that root signed (PEM)")


def _args_none(p: argparse.ArgumentParser) -> None:
    del p


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-ui", action="store_true", help="create the demo home and print it, without the UI")


def _args_submit(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="CSR file (PEM or DER), or - for stdin")
    p.add_argument("--requester", help="who asks (default: the CSR's CN)")


def _args_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", choices=["requests", "certs", "refused"], default="requests",
                   help="the request queue (default), the issued certificates, or the refused submissions "
                   "(newest first)")  # fmt: skip
    p.add_argument("--status", help="requests: queued/approved/rejected/expired; certs: valid/revoked/expired")
    p.add_argument("--json", action="store_true", help="one JSON array, written as the records are read")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per line")


def _args_show(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="Certificate ID, or serial in hex as list/openssl print it (colons optional)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _args_approve(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="+", metavar="ID", help="Certificate IDs of queued requests")
    p.add_argument("--days", type=int, help="validity in days (default 365)")


def _args_reject(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="Certificate ID of a queued request")
    p.add_argument("--reason", required=True, help="why, recorded and shown to the requester")


def _args_revoke(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="Certificate ID or serial in hex")
    p.add_argument("--reason", default="unspecified", help="RFC 5280 reason (default unspecified)")


def _args_revoke_issuing_ca(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", required=True, help="keyCompromise, cACompromise, superseded, …")


def _args_unhold(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="Certificate ID or serial in hex of a certificate on hold")


def _args_rekey_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--new-passphrase-file", type=Path, help="encrypt under this passphrase instead (8+ characters)")


def _args_key_to_token(p: argparse.ArgumentParser) -> None:
    _args_token(p, required=True)


def _args_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="Certificate ID or serial in hex")
    p.add_argument("--chain", action="store_true", help="append the issuing CA and the root")
    p.add_argument("-o", "--output", type=Path, help="write to this file (default stdout)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")


def _args_ca_cert(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chain", action="store_true", help="append the root")


def _args_crl(p: argparse.ArgumentParser) -> None:
    p.add_argument("--der", action="store_true", help="DER instead of PEM")
    p.add_argument("--publish", action="store_true", help="publish a fresh CRL now (for cron)")
    p.add_argument("-o", "--output", type=Path, help="write to this file (default stdout)")


def _args_audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verify", action="store_true", help="check the hash chain; non-zero exit if broken")


def _args_expire(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=int, help="age in days (default: init --queue-days, 30)")


def _args_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="EST over HTTPS (default 8443)")
    p.add_argument("--http-port", type=int, default=8080, help="CRL, CA certificates and OCSP over HTTP (default 8080)")
    p.add_argument("--users", type=Path, help="file of EST users (name:scrypt-hash), see README")
    p.add_argument("--no-anonymous", action="store_true", help="require an EST user or client certificate")
    p.add_argument("--rate", type=float, default=1.0, help="new requests per client per second (default 1)")
    p.add_argument("--max-queued", type=int, default=1000, help="refuse new requests past this many queued")
    p.add_argument("--max-per-address", type=int, default=16,
                   help="concurrent connections from one address (default 16; raise it behind NAT)")  # fmt: skip
    p.add_argument("--max-connections", type=int, default=1024,
                   help="concurrent connections per listener (default 1024; idle ones make room)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds a client may take to send a request; idle connections close then (default 10)")  # fmt: skip
    p.add_argument("--trust-proxy", action="append", metavar="ADDR",
                   help="a reverse proxy whose X-Forwarded-For names the client (repeatable; default none)")  # fmt: skip
    p.add_argument("--workers", type=int, default=8, help="threads for blocking store work (default 8)")
    p.add_argument("--metrics", action="store_true", help="serve Prometheus metrics at /metrics on the HTTP port")
    p.add_argument("--retry-after", type=int, default=60, help="Retry-After for queued EST requests (default 60)")


def _args_server_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", action="append", help="DNS name or IP for the TLS certificate (repeat; default loopback)")
    p.add_argument("--days", type=int, default=365, help="TLS certificate validity (default 365)")
    p.add_argument("--ocsp-days", type=int, default=7, help="OCSP signing certificate validity (default 7)")
    p.add_argument("--ocsp-only", action="store_true", help="renew only the OCSP signing certificate (for cron)")
    p.add_argument("--record", action="store_true",
                   help="deprecated, does nothing: the certificates are always recorded (listed, revocable)")  # fmt: skip


def _args_est_user(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the EST user name")
    p.add_argument("--users", type=Path, required=True, help="the EST users file (created 0600)")
    p.add_argument("--may-request", action="append", metavar="NAME",
                   help="a further requester name this user may enroll as (repeatable; '*' matches any run of "
                        "characters, e.g. lab-*); replaces the names mapped before")  # fmt: skip
    p.add_argument("--only-self", action="store_true", help="remove every further requester name mapped to the user")
    p.add_argument("--keep-password", action="store_true",
                   help="change only the requester names of an existing user, not its password")  # fmt: skip


def _args_backup(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", type=Path, help="a new or empty folder")


def _args_restore(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", type=Path, help="a folder made by 'tui-ca backup'")


def _args_scep_challenge(p: argparse.ArgumentParser) -> None:
    p.add_argument("--requester", help="only a request from this requester may use it")
    p.add_argument("--ttl", help="how long it stays valid: 30m, 24h (default), 7d")
    p.add_argument("--require", action=argparse.BooleanOptionalAction, default=None,
                   help="require a challenge in every new SCEP request (--no-require: off, the default)")  # fmt: skip


def _args_expiring(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=int, default=30, help="warning window in days (default 30)")
    p.add_argument("--critical-days", type=int, help="critical window in days (exit 2)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    # A monitoring plugin's usage error is UNKNOWN (3), not CRITICAL (2).
    p.error = _plugin_usage_error  # type: ignore[method-assign]


def _args_notify(p: argparse.ArgumentParser) -> None:
    from tui_ca.cli_notify import add_arguments

    add_arguments(p)


def _plugin_usage_error(message: str) -> NoReturn:
    print(f"EXPIRING UNKNOWN - {message}")
    print(f"tui-ca: {message} (see tui-ca expiring --help)", file=sys.stderr)
    raise SystemExit(3)


def _args_join(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="postgresql://user@host:port/db of the CA's database")


def _args_copy_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host:port/db")


def _args_policy(p: argparse.ArgumentParser) -> None:
    from tui_ca.cli_policy import add_arguments

    add_arguments(p)


def _args_help(p: argparse.ArgumentParser) -> None:
    p.add_argument("topic", nargs="?", metavar="COMMAND", help="the command to explain")


def _args_command_server(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", metavar="PATH",
                   help="where to listen (default: $TUI_CA_COMMAND_SOCKET, else $XDG_RUNTIME_DIR/tui-ca/commands.sock, "
                        "else /tmp/tui-ca-UID/commands.sock); a command finds it there by itself")  # fmt: skip


def _args_completion(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=["bash", "zsh"], help="the shell to print the completion script for")


class Spec(NamedTuple):
    """One command: its one-line help and the function adding its arguments."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]


SPECS: dict[str, Spec] = {
    "init": Spec("create the root and issuing CA", _args_init),
    "import-ca-cert": Spec("finish an external-root setup", _args_import),
    "tui": Spec("the full-screen UI (also: no command)", _args_none),
    "demo": Spec("a throwaway demo CA, then the UI", _args_demo),
    "submit": Spec("queue a CSR; prints its Certificate ID", _args_submit),
    "list": Spec("the queue, the issued certificates or the refused submissions", _args_list),
    "show": Spec("one request or certificate (ID, or serial in hex)", _args_show),
    "approve": Spec("issue certificates (several IDs in one pass)", _args_approve),
    "reject": Spec("reject a queued request", _args_reject),
    "revoke": Spec("revoke and publish a new CRL", _args_revoke),
    "revoke-issuing-ca": Spec(
        "emergency: the root revokes the issuing CA and publishes its CRL", _args_revoke_issuing_ca
    ),
    "unhold": Spec("release a certificateHold and publish a new CRL", _args_unhold),
    "rekey-file": Spec("rewrite the CA key files as standard encrypted PKCS#8", _args_rekey_file),
    "key-to-token": Spec("move the CA key files into a PKCS#11 token, then remove them", _args_key_to_token),
    "export": Spec("a certificate as PEM", _args_export),
    "ca-cert": Spec("the signing certificate as PEM", _args_ca_cert),
    "crl": Spec("the current CRL (re-published if stale)", _args_crl),
    "audit": Spec("the audit log", _args_audit),
    "expire-queue": Spec("expire queued requests older than --days (default: the CA's)", _args_expire),
    "serve": Spec("EST over HTTPS; CRL, CA certs and OCSP over HTTP", _args_serve),
    "server-setup": Spec("issue the server's TLS and OCSP signing certificates (uses the CA key)", _args_server_setup),
    "est-user": Spec("add or change an EST user (password from stdin or asked)", _args_est_user),
    "check": Spec("verify every record, index, the CRL and the audit chain; exit 1 on any problem", _args_none),
    "backup": Spec("a consistent copy of the CA while others keep working", _args_backup),
    "restore": Spec("put a backup onto an empty home (--home)", _args_restore),
    "scep-challenge": Spec("mint a one-time SCEP challenge password (or --require them)", _args_scep_challenge),
    "expiring": Spec("what ends soon; monitoring-plugin exit codes (0 OK, 1, 2, 3)", _args_expiring),
    "notify": Spec("notifications of requests, decisions and expiries (command, mail, webhook)", _args_notify),
    "migrate": Spec("create or upgrade the PostgreSQL schema of --database", _args_none),
    "join": Spec("prepare this machine's home on a CA's database (no CA key)", _args_join),
    "copy-store": Spec(
        "copy this home's records into an empty PostgreSQL database (or --to DIR: a TinyDB home)", _args_copy_store
    ),
    "policy": Spec("show or set the K-of-N approval policy and admin roles (setting uses the CA key)", _args_policy),
    "command-server": Spec(
        "start later commands sooner: run them in workers of this pre-loaded process", _args_command_server
    ),
    "help": Spec("explain a command (tui-ca help COMMAND)", _args_help),
    "completion": Spec("print the bash or zsh completion script", _args_completion),
}

EPILOG = """exit codes:
  0    done
  1    a CA rule refused (state, policy, no CA, locked key, broken audit chain)
  2    bad input or usage
  3    approve issued some of the IDs and refused others
  130  interrupted"""


def _command_list() -> str:
    width = max(map(len, SPECS)) + 2
    return "commands:\n" + "\n".join(f"  {name:{width}}{spec.help}" for name, spec in SPECS.items())


def build_parser(only: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the commands in ``only`` (default: every one) and their arguments.

    Each sub-parser costs argparse's set-up and its gettext look-ups (~1 ms
    each on a quiet machine, 20 of them), so a run builds only its own; the
    top-level help lists the commands from SPECS as text.
    """
    wanted = list(SPECS) if only is None else [name for name in SPECS if name in set(only)]
    parser = _Parser(prog="tui-ca", description="A certificate authority run from a terminal UI.",
                     epilog=f"{_command_list()}\n\n{EPILOG}", formatter_class=_Formatter)  # fmt: skip
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    parser.add_argument("--home", type=Path, help="CA home directory (default: $TUI_CA_HOME or the user data dir)")
    parser.add_argument("--passphrase-file", type=Path, help="file holding the CA key passphrase")
    parser.add_argument("--database", metavar="URL",
                        help="keep the records in PostgreSQL (postgresql://user@host:port/db, no password; "
                             "also $TUI_CA_DATABASE); recorded in the home by init and join")  # fmt: skip
    parser.add_argument("--database-password-file", type=Path, metavar="FILE",
                        help="file whose first line is the database password (else libpq's ~/.pgpass or "
                             "$PGPASSFILE)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND",
                                help="one of the commands below; 'tui-ca help COMMAND' explains it")  # fmt: skip
    for name in wanted:
        spec = SPECS[name]
        command = sub.add_parser(name, help=spec.help, description=spec.help[:1].upper() + spec.help[1:] + ".",
                                 formatter_class=_Formatter)  # fmt: skip
        spec.arguments(command)
    return parser


def _unknown_command(word: str) -> NoReturn:
    import difflib

    near = difflib.get_close_matches(word, SPECS, n=1)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    print(f"tui-ca: unknown command {word!r}{hint} (see tui-ca --help)", file=sys.stderr)
    raise SystemExit(EXIT_INPUT)


_PREPARED: argparse.ArgumentParser | None = None


def prepare_parser() -> None:
    """Build every command's parser now, for the parses to come (a command server's workers each make one)."""
    global _PREPARED
    _PREPARED = build_parser()


def parse(argv: list[str]) -> argparse.Namespace:
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: every command's arguments
        import argcomplete

        argcomplete.autocomplete(build_parser())
    command = chosen_command(argv)
    if command is not None and command not in SPECS:
        _unknown_command(command)
    if _PREPARED is not None and command is not None:
        return _PREPARED.parse_args(argv)
    return build_parser(only=() if command is None else (command,)).parse_args(argv)


# ------------------------------------------------------------------- helpers


def _die(message: str, code: int) -> int:
    print(f"tui-ca: {message}", file=sys.stderr)
    return code


def _read_secret_file(path: Path, what: str = "passphrase") -> bytes:
    from tui_ca.engine.process import make_undumpable

    make_undumpable()
    try:
        return path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {path}: {exc.strerror}") from None


def _passphrase_file(args: argparse.Namespace) -> Path | None:
    return args.passphrase_file or (Path(p) if (p := os.environ.get("TUI_CA_PASSPHRASE_FILE")) else None)


def _secret_source(path: Path | None, what: str, prompt: str, *,
                   confirm: bool = False) -> bytes | Callable[[], bytes | None]:  # fmt: skip
    """A secret from a file, or a callable that asks on the terminal once per process (None without one)."""
    if path is not None:
        secret = _read_secret_file(path, what)
        if not secret:
            raise InputError(f"the {what} file {path} is empty")
        return secret

    answer: list[bytes | None] = []

    def ask() -> bytes | None:
        # Asked once per process: the root and issuing keys share the secret.
        if answer:
            return answer[0]
        if not sys.stdin.isatty():
            return None
        import getpass

        from tui_ca.engine.process import make_undumpable

        make_undumpable()
        first = getpass.getpass(prompt).encode()
        if confirm and first != getpass.getpass(f"Repeat the {what}: ").encode():
            raise InputError(f"the {what}s do not match")
        answer.append(first or None)
        return answer[0]

    return ask


def passphrase_source(args: argparse.Namespace, *, confirm: bool = False) -> bytes | Callable[[], bytes | None]:
    """The passphrase from a file, or a callable the engine calls only when it needs the key."""
    return _secret_source(_passphrase_file(args), "passphrase", "CA key passphrase: ", confirm=confirm)


def pin_source(args: argparse.Namespace) -> bytes | Callable[[], bytes | None]:
    """The token PIN, for a CA whose keys are in a token: --pin-file, else the passphrase file, else asked once.

    ``key-to-token`` needs both secrets, so there the passphrase file is not taken for the PIN.
    """
    path = getattr(args, "pin_file", None)
    if path is None and args.command != "key-to-token":
        path = _passphrase_file(args)
    return _secret_source(path, "PIN", "Token PIN: ")


def _jsonable(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass
    from datetime import datetime
    from enum import Enum

    if is_dataclass(value) and not isinstance(value, type):
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
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}"
                   for ch in text)  # fmt: skip


def serial_text(serial: int) -> str:
    """A serial as ``openssl x509 -serial`` prints it: uppercase hex, two digits per byte."""
    digits = format(serial, "X")
    return digits.zfill(len(digits) + len(digits) % 2)


def _target(text: str) -> str:
    """A Certificate ID or serial as typed; ``serial=…`` (openssl's output pasted whole) is accepted too."""
    return text.strip().removeprefix("serial=")


# Statuses on a terminal: green is in force, yellow waits, red ended by a
# decision, dim ended by time. Never when piped or under NO_COLOR.
_COLOURS = {"queued": "33", "approved": "32", "valid": "32", "rejected": "31", "revoked": "31", "expired": "2"}


def _colour_on() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _status(value: str, width: int = 0, *, colour: bool = False) -> str:
    padded = f"{value:{width}}"
    code = _COLOURS.get(value)
    return f"\x1b[{code}m{value}\x1b[0m{padded[len(value) :]}" if colour and code else padded


def _parse_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise InputError(f"{text!r} is not a Certificate ID (a small decimal number)")
    return int(text)


def _write_output(data: bytes, output: Path | None, *, force: bool = True) -> None:
    """stdout, or a file: never written through a symlink (O_NOFOLLOW).

    Without ``force`` an existing file or symlink is refused (as the UI asks
    first); with it a symlink is replaced by a file, its target left alone.
    Devices such as /dev/null (cron's ``crl -o /dev/null``) are written as they are.
    """
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if output.is_symlink():
        if not force:
            raise InputError(f"{output} is a symlink; add --force to replace it with the file")
        output.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(output, flags, 0o644)
    except FileExistsError:
        raise InputError(f"{output} is already there; add --force to replace it") from None
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None


# ------------------------------------------------------------------ commands


def cmd_init(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.engine.models import NameFields

    names = NameFields(country=args.country, state=args.state, locality=args.locality, organization=args.org,
                       org_unit=args.ou, common_name=args.cn, email=args.email)  # fmt: skip
    if args.external_root and args.output and not os.access(args.output.parent, os.W_OK):
        # Checked first: a key stored without its CSR would block every later init.
        raise InputError(f"cannot write {args.output}: its folder is missing or not writable")
    result = ca.init(names, days=args.days, key_type=args.key_type, base_url=args.base_url,
                     external_root=args.external_root, crl_days=args.crl_days,
                     queue_days=args.queue_days, allow_wildcards=args.allow_wildcards,
                     pkcs11=_token_config(args), pkcs11_keys=args.pkcs11_key,
                     admin_group=args.admin_group)  # fmt: skip
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


def _token_config(args: argparse.Namespace) -> Any:
    if args.pkcs11 is None:
        if args.token or args.pin_file or getattr(args, "pkcs11_key", None):
            raise InputError("--token, --pin-file and --pkcs11-key go with --pkcs11 MODULE")
        return None
    if not args.token:
        raise InputError("--pkcs11 needs --token LABEL (the token's label)")
    from tui_ca.engine.token_keys import TokenConfig

    return TokenConfig(module=args.pkcs11, token=args.token)


def cmd_key_to_token(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.engine.key_to_token import move_keys_to_token

    labels = move_keys_to_token(ca, _token_config(args))
    print(f"CA keys moved into token {args.token!r} as {', '.join(labels)}; the key files are removed")
    return 0


def cmd_import(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    try:
        root, issuing = args.root.read_bytes(), args.issuing.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from None
    info = ca.import_ca_cert(root, issuing)
    print(f"issuing CA imported; valid until {info.not_after:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_submit(ca: CertificateAuthority, args: argparse.Namespace) -> int:
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


def cmd_list(ca: CAReader, args: argparse.Namespace) -> int:
    # Streamed from the engine's listing text: written in big chunks, no
    # record parsed or built per line, so memory and time stay flat.
    if args.what == "refused":
        return _list_refused(ca, args)
    if args.what == "requests":
        return _list_requests(ca, args, _colour_on())
    return _list_certs(ca, args, _colour_on())


def _list_requests(ca: CAReader, args: argparse.Namespace, colour: bool) -> int:
    from itertools import islice

    from tui_ca.engine.models import RequestStatus

    status = _enum(RequestStatus, args.status)
    if args.json or args.jsonl:
        _write_json_chunks(ca.iter_request_json(status), sys.stdout, array=args.json)
        return 0
    out = sys.stdout
    out.write(f"{'ID':>6}  {'STATUS':9}  {'REQUESTER':24}  {'KEY':9}  SUBMITTED\n")
    shown = _Shown(9, colour)
    rows = ca.iter_request_rows(status)
    while batch := list(islice(rows, 4096)):
        out.write("".join([f"{request_id:>6}  {shown[state]}  {(name if name.isprintable() else _safe(name))[:24]:24}  "
                           f"{key_type:9}  {at[:10]} {at[11:16]}\n"
                           for request_id, state, name, key_type, at in batch]))  # fmt: skip
    return 0


class _Shown(dict):
    """Statuses as a table shows them, each formatted once."""

    def __init__(self, width: int, colour: bool) -> None:
        super().__init__()
        self.width, self.colour = width, colour

    def __missing__(self, state: str) -> str:
        self[state] = shown = _status(state, self.width, colour=self.colour)
        return shown


def _list_refused(ca: CAReader, args: argparse.Namespace) -> int:
    from tui_ca.engine.store.protocol import REFUSALS_KEPT

    if args.status is not None:
        raise InputError("--status goes with 'list requests' or 'list certs', not 'list refused'")
    refusals = ca.refusals(limit=REFUSALS_KEPT)
    if args.json or args.jsonl:
        import json

        text = "".join(json.JSONEncoder().encode(_jsonable(r)) + "\n" for r in refusals)
        _write_json_chunks(iter([text] if text else []), sys.stdout, array=args.json)
        return 0
    lines = [f"{'WHEN':16}  {'VIA':4}  {'FROM':22}  {'REQUESTER':20}  REASON"]
    for r in refusals:
        sender = _safe(r.user) + (f"@{_safe(r.address)}" if r.address else "")
        lines.append(f"{r.at:%Y-%m-%d %H:%M}  {_safe(r.source)[:4]:4}  {sender[:22]:22}  "
                     f"{_safe(r.requester or r.subject)[:20]:20}  {_safe(r.reason)}")  # fmt: skip
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _list_certs(ca: CAReader, args: argparse.Namespace, colour: bool) -> int:
    """Certificates from the engine's listing text: written in big chunks, no record built per line."""
    from itertools import islice

    from tui_ca.engine.models import CertStatus

    status = _enum(CertStatus, args.status)
    out = sys.stdout
    if args.json or args.jsonl:
        _write_json_chunks(ca.iter_certificate_json(status), out, array=args.json)
        return 0
    out.write(f"{'ID':>6}  {'STATUS':8}  {'REQUESTER':24}  {'NOT AFTER':10}  SERIAL\n")
    shown = _Shown(8, colour)
    rows = ca.iter_certificate_rows(status)
    while batch := list(islice(rows, 4096)):
        out.write("".join([f"{cert_id:>6}  {shown[state]}  {(name if name.isprintable() else _safe(name))[:24]:24}  "
                           f"{not_after[:10]}  {serial}\n"
                           for cert_id, state, name, not_after, serial in batch]))  # fmt: skip
    return 0


def _write_json_chunks(chunks: Iterator[str], out: Any, *, array: bool) -> None:
    """The engine's JSON text (chunks of objects, one a line) as one JSON array, one object a line, or as lines."""
    if not array:
        for chunk in chunks:
            out.write(chunk)
        return
    first = True
    out.write("[")
    for chunk in chunks:
        out.write(("\n" if first else ",\n") + chunk[:-1].replace("\n", ",\n"))
        first = False
    out.write("]\n" if first else "\n]\n")


def _enum(kind: type[Enum], value: str | None) -> Any:
    if value is None:
        return None
    try:
        return kind(value.lower())
    except ValueError:
        raise InputError(f"unknown status {value!r}; use one of: {', '.join(k.value for k in kind)}") from None


def _approvals_needed(ca: CAReader, request: dict[str, Any]) -> int:
    """Approvals the request (as ``lookup_dicts`` gives it) needs under the CA's policy."""
    if not ca.has_governance():
        return 1  # no policy set: one approval issues, and nothing needs the CA certificate's key
    from tui_ca.engine.approval_policy import approvals_needed, governance_in_force

    d = request["details"]
    policy, _ = governance_in_force(ca.config(), ca.issuing_public_key)
    return approvals_needed(policy, request["requester"], d["common_name"], d["sans"],
                            renewal=request["renewal_of"] is not None)  # fmt: skip


def _who(actor: dict[str, Any]) -> str:
    """``Actor.describe`` of a JSON-form actor."""
    return f"{actor['user']} from {actor['address']}" if actor.get("address") else actor["user"]


def _when(iso: str) -> str:
    """A stored ISO time as show prints it (``%Y-%m-%d %H:%M:%S``)."""
    return f"{iso[:10]} {iso[11:19]}"


def cmd_show(ca: CAReader, args: argparse.Namespace) -> int:
    # Printed from the stored fields (lookup_dicts), so that show builds no
    # model and parses no certificate: its start-up is bench/cli_startup.py's.
    request, cert = ca.lookup_dicts(_target(args.id))
    if args.json:
        import json

        if request is not None:
            request["details"]["name_warning"] = _name_warning(request["details"]["sans"])
            request["approvals_needed"] = _approvals_needed(ca, request)
        if cert is not None:
            cert = {**cert, "serial": serial_text(int(cert["serial"], 16)), "name_warning": _name_warning(cert["sans"])}
        print(json.dumps({"request": request, "certificate": cert}, indent=2))
        return 0
    colour = _colour_on()
    if request is not None:
        d = request["details"]
        print(f"Certificate ID   {request['id']}")
        print(f"Requester        {_safe(request['requester'])}")
        print(f"Status           {_status(request['status'], colour=colour)}")
        if request["approvals"] or request["status"] == "queued":
            names = ", ".join(_safe(a["user"]) for a in request["approvals"]) or "none yet"
            print(f"Approvals        {len(request['approvals'])} of {_approvals_needed(ca, request)} ({names})")
        print(f"Subject          {_safe(d['subject'])}")
        print(f"SANs             {', '.join(_safe(s) for s in d['sans']) or '-'}")
        warning = _name_warning(d["sans"])
        if warning and cert is None:
            print(f"Warning          {warning}")
        print(f"Key              {d['key_type']}")
        print(f"SPKI SHA-256     {_group_fingerprint(d['spki_sha256'])}")
        print(f"Submitted        {_when(request['submitted_at'])} UTC by {_safe(_who(request['submitted_by']))} "
              f"via {request['source']}")  # fmt: skip
        if request["decided_at"] and request["decided_by"]:
            print(f"Decided          {_when(request['decided_at'])} UTC by {_safe(_who(request['decided_by']))}")
        if request["reason"]:
            print(f"Reason           {_safe(request['reason'])}")
    if cert is not None:
        print(f"Serial           {serial_text(int(cert['serial'], 16))}")
        print(f"Certificate      {_status(cert['status'], colour=colour)}, "
              f"{cert['not_before'][:10]} to {cert['not_after'][:10]}")  # fmt: skip
        print(f"SHA-256          {cert['sha256']}")
        warning = _name_warning(cert["sans"])
        if warning:
            print(f"Warning          {warning}")
        if cert["revoked_at"] and cert["revoked_by"] and cert["revocation_reason"]:
            print(f"Revoked          {_when(cert['revoked_at'])} UTC by {_safe(_who(cert['revoked_by']))} "
                  f"({cert['revocation_reason']})")  # fmt: skip
    return 0


def _name_warning(sans: list[str]) -> str | None:
    from tui_ca.engine.names import name_warning

    return name_warning(tuple(sans))


def _group_fingerprint(hex_digest: str) -> str:
    from tui_ca.engine.names import group_fingerprint

    return group_fingerprint(hex_digest)


def cmd_approve(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    ids = [_parse_id(text) for text in args.ids]
    issued, refusals = 0, []
    for outcome in ca.approve(ids, days=args.days):
        if outcome.certificate is not None:
            print(f"{outcome.id} {serial_text(outcome.certificate.serial)}")
            if outcome.warning:
                print(f"tui-ca: request {outcome.id}: {outcome.warning}", file=sys.stderr)
            issued += 1
        elif outcome.pending:
            print(f"{outcome.id} approval {len(outcome.approvals)} of {outcome.needed} recorded "
                  f"({', '.join(_safe(name) for name in outcome.approvals)}); another admin must approve")  # fmt: skip
            issued += 1
        elif outcome.refusal is not None:
            print(f"tui-ca: request {outcome.id}: {outcome.error}", file=sys.stderr)
            refusals.append(exit_code_for(outcome.refusal))
    if not refusals:
        return EXIT_OK
    return EXIT_PARTIAL if issued else max(refusals)


def cmd_check(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    problems = ca.check()
    for problem in problems:
        print(_safe(problem))
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found in {ca.home}", file=sys.stderr)
        return EXIT_RULE
    print(f"ok: {ca.home} is consistent ({ca.queued_count()} queued)")
    return EXIT_OK


def cmd_backup(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    print(f"backup written to {ca.backup(args.dest)}")
    return EXIT_OK


def cmd_restore(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.engine.ca import CertificateAuthority

    problems = CertificateAuthority.restore(args.src, ca.home, actor=ca.actor)
    for problem in problems:
        print(_safe(problem))
    print(f"restored {args.src} into {ca.home}" + (f"; {len(problems)} problems" if problems else ""))
    return EXIT_RULE if problems else EXIT_OK


def cmd_scep_challenge(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.server.scep.admin import cmd_scep_challenge as challenge

    return challenge(ca, args)


def cmd_expiring(args: argparse.Namespace) -> int:
    """Nagios/Icinga plugin semantics: a first summary line, exit 0-2, and 3 (UNKNOWN) when it cannot tell."""
    import json

    from tui_ca.engine.expiry import State, expiry_report, report_json
    from tui_ca.engine.reader import CAReader
    from tui_ca.homes import resolve_home

    try:
        home = resolve_home(args.home)
        report = expiry_report(CAReader(home), args.days, args.critical_days)
    except (CAError, OSError, ValueError) as exc:
        message = str(exc) if isinstance(exc, CAError) else f"cannot read the CA home: {exc}"
        print(f"EXPIRING UNKNOWN - {_safe(message)}")
        print(f"tui-ca: {_safe(message)}", file=sys.stderr)
        return int(State.UNKNOWN)
    if args.json:
        print(json.dumps(report_json(report), indent=2))
        return int(report.state)
    print(report.summary())
    for item in report.items:
        who = f"  {_safe(item.requester)}" if item.requester is not None else ""
        print(f"{item.state.name:8}  {item.ends_at:%Y-%m-%d %H:%M}  {item.name}{who}")
    return int(report.state)


def cmd_notify(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.cli_notify import cmd_notify as notify

    return notify(ca, args)


def cmd_policy(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.cli_policy import run

    return run(ca, args)


def cmd_reject(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    request = ca.reject(_parse_id(args.id), args.reason)
    print(f"request {request.id} rejected")
    return 0


def cmd_revoke(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.engine.models import RevocationReason

    reason = RevocationReason.parse(args.reason)
    cert = ca.revoke(_target(args.id), reason)
    info = ca.info()
    print(
        f"certificate {cert.id} (serial {serial_text(cert.serial)}) revoked: {reason.value}; CRL {info.crl_number} published"
    )
    return 0


def cmd_export(ca: CAReader, args: argparse.Namespace) -> int:
    _write_output(ca.certificate_pem(_target(args.id), chain=args.chain), args.output, force=args.force)
    return 0


def cmd_revoke_issuing_ca(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.engine.chain import revoke_issuing_ca
    from tui_ca.engine.models import RevocationReason

    reason = RevocationReason.parse(args.reason)
    info = revoke_issuing_ca(ca, reason)
    print(f"issuing CA revoked by the root: {reason.value}; root CRL {info.number} published; "
          "nothing more will be signed with it")  # fmt: skip
    return 0


def cmd_unhold(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.engine.revocation_state import unhold

    cert = unhold(ca, _target(args.id))
    print(f"certificate {cert.id} (serial {serial_text(cert.serial)}) released from hold; "
          f"CRL {ca.info().crl_number} published")  # fmt: skip
    return 0


def cmd_rekey_file(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.engine.key_files import rekey_files

    new = None if args.new_passphrase_file is None else _read_secret_file(args.new_passphrase_file)
    done = rekey_files(ca, new)
    print(f"rewritten as encrypted PKCS#8: {', '.join(done)}" if ca.key_is_encrypted() else
          f"rewritten as PKCS#8 (no passphrase): {', '.join(done)}")  # fmt: skip
    return 0


def cmd_ca_cert(ca: CAReader, args: argparse.Namespace) -> int:
    _write_output(ca.ca_cert_pem(chain=args.chain), None)
    return 0


def cmd_crl(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    if args.publish:
        info = ca.publish_crl()
        print(f"CRL {info.number} published with {info.entries} entries; next update "
              f"{info.next_update:%Y-%m-%d %H:%M} UTC", file=sys.stderr)  # fmt: skip
    _write_output(ca.crl(der=args.der), args.output)
    return 0


def cmd_audit(ca: CAReader, args: argparse.Namespace) -> int:
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
        import json

        print(json.dumps([_jsonable(r) for r in items], indent=2))
        return 0
    for r in items:
        who = _safe(r.user) + (f"@{_safe(r.address)}" if r.address else "")
        print(f"{r.seq:>6}  {r.at:%Y-%m-%d %H:%M:%S}  {who:20}  {r.action:9}  {_safe(r.target):18}  {_safe(r.outcome)}")
    return 0


def cmd_expire(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from datetime import timedelta

    if args.days is not None and not 1 <= args.days <= 36500:
        raise InputError(f"--days must be between 1 and 36500, not {args.days}")
    expired = ca.expire_queue(None if args.days is None else timedelta(days=args.days))
    print(f"{len(expired)} queued request(s) expired" + (f": {', '.join(map(str, expired))}" if expired else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tui_ca.demo import create_demo_home

    home = create_demo_home(args.home)
    if args.no_ui:
        from tui_ca.engine import CertificateAuthority
        from tui_ca.engine.models import RequestStatus

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


def run_ui(home: Path, args: argparse.Namespace) -> int:
    try:
        from tui_ca.tui.app import run_app
    except ImportError as exc:  # pragma: no cover - a broken install
        return _die(f"the UI cannot start: {exc}", EXIT_INPUT)
    from tui_ca.engine.reader import CAReader

    # The UI asks for one secret up front: the token's PIN when the keys are in one.
    in_token = home.exists() and CAReader(home).key_in_token()
    return run_app(home, pin_source(args) if in_token else passphrase_source(args))


def cmd_serve(ca: CAReader, args: argparse.Namespace) -> int:
    from tui_ca.server.main import serve

    return serve(ca, args)


def cmd_server_setup(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    from tui_ca.server.admin import cmd_server_setup as setup

    return setup(ca, args)


def cmd_help(args: argparse.Namespace) -> int:
    topic = args.topic
    if topic is not None and topic not in SPECS:
        _unknown_command(topic)
    try:
        build_parser(only=() if topic is None else (topic,)).parse_args([topic, "--help"] if topic else ["--help"])
    except SystemExit as done:
        return int(done.code or 0)
    return EXIT_OK  # pragma: no cover - --help always exits


def cmd_command_server(args: argparse.Namespace) -> int:
    """Listen until SIGTERM or Ctrl-C; the console script hands this user's commands to it (tui_ca/launch.py)."""
    from tui_ca.command_server import CommandServer
    from tui_ca.command_socket import socket_path

    def say(line: str) -> None:
        print(f"tui-ca command-server: {line}", file=sys.stderr, flush=True)

    server = CommandServer(args.socket or socket_path(), say)
    server.listen()
    print(f"tui-ca: command server on {server.path} (pid {os.getpid()}); commands of this user start here",
          flush=True)  # fmt: skip
    server.serve()
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    """The shell code that makes the shell ask tui-ca itself for completions (argcomplete)."""
    import argcomplete

    sys.stdout.write(argcomplete.shellcode(["tui-ca"], shell=args.shell))
    return EXIT_OK


COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "init": cmd_init, "import-ca-cert": cmd_import, "submit": cmd_submit, "list": cmd_list, "show": cmd_show,
    "approve": cmd_approve, "reject": cmd_reject, "revoke": cmd_revoke, "export": cmd_export,
    "ca-cert": cmd_ca_cert, "crl": cmd_crl, "audit": cmd_audit, "expire-queue": cmd_expire, "serve": cmd_serve,
    "server-setup": cmd_server_setup, "policy": cmd_policy, "notify": cmd_notify, "check": cmd_check, "backup": cmd_backup, "restore": cmd_restore, "scep-challenge": cmd_scep_challenge, "revoke-issuing-ca": cmd_revoke_issuing_ca,
    "rekey-file": cmd_rekey_file, "unhold": cmd_unhold, "key-to-token": cmd_key_to_token,
}  # fmt: skip


_SETUP_COMMANDS = ("init", "import-ca-cert", "restore")
# Commands that only read: they open the home without the key-holding class
# (and so without the signing code's imports).
_READ_COMMANDS = ("list", "show", "export", "ca-cert", "audit")
# serve never signs: it opens the home as a reader and makes the writer (for
# intake and expiry) when the first request needs it (tui_ca/server/context.py).
_READER_OPENED = (*_READ_COMMANDS, "serve")


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "help":
            return cmd_help(args)
        if args.command == "completion":
            return cmd_completion(args)
        from tui_ca import cli_database

        cli_database.apply_options(args)
        if args.command in cli_database.COMMANDS:
            return cli_database.run(args.command, args)
        if args.command == "expiring":
            return cmd_expiring(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "command-server":
            return cmd_command_server(args)
        if args.command == "est-user":
            from tui_ca.server.admin import cmd_est_user

            return cmd_est_user(args)
        from tui_ca.homes import resolve_home

        home = resolve_home(args.home)
        if home.exists() and not home.is_dir():
            raise InputError(f"the CA home {home} is not a directory")
        if args.command in (None, "tui"):
            return run_ui(home, args)
        if args.command in ("init", "restore"):
            cli_database.prepare_init(home)
        ca: Any
        if args.command in _READER_OPENED:
            from tui_ca.engine.reader import CAReader

            ca = CAReader(home)
        else:
            from tui_ca.engine.ca import CertificateAuthority

            ca = CertificateAuthority(home, passphrase=passphrase_source(args, confirm=args.command == "init"),
                                      pin=pin_source(args))  # fmt: skip
        if args.command not in _SETUP_COMMANDS:
            # A mistyped --home must not look like an empty CA.
            ca.require_ca()
        code = COMMANDS[args.command](ca, args)
        if args.command in _SETUP_COMMANDS and code == EXIT_OK:
            cli_database.finish_init(home)
        return code
    except CAError as exc:
        return _die(str(exc), exit_code_for(type(exc)))
    except KeyboardInterrupt:
        return _die("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        return EXIT_OK


# One-shot commands, whose work is complete, and durable, when ``main``
# returns. The console script runs them with fewer garbage collections and
# ends them without the interpreter's teardown (see entry_point).
ONE_SHOT = ("approve", "reject", "submit", "revoke", "unhold", "show")
# Young collections every 50,000 allocations instead of 700: a one-shot
# command's objects (modules, cryptography's classes, the parsed shards) live
# until it exits, so each collection only walked survivors; ~10% of a one-shot
# approve's CPU (bench/README.md, CLI approve). Cycles are still collected.
ONE_SHOT_GC_THRESHOLD = 50_000


def entry_point() -> NoReturn:
    """The ``tui-ca`` console script: :func:`main`, then the process's exit.

    A one-shot command ends with ``os._exit`` once stdout and stderr are
    flushed: freeing every module and parsed record took a one-shot approve
    ~20% of its CPU after its commit. Not once PostgreSQL is loaded: its
    connection is then closed as the server expects.
    """
    argv = sys.argv[1:]
    one_shot = chosen_command(argv) in ONE_SHOT
    if one_shot:
        import gc

        gc.set_threshold(ONE_SHOT_GC_THRESHOLD, *gc.get_threshold()[1:])
    code = main(argv)
    if one_shot and "psycopg" not in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            raise SystemExit(code) from None  # the ordinary exit reports an unwritable stdout as usual
        os._exit(code)
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    entry_point()
