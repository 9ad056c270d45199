"""``tui-ca notify …``: the notification channels of a CA, and the delivery worker.

Kept apart from cli.py so that the main command stays a thin table; the same
rules hold: one line on stderr for an error, exit 1 for a refusal, 2 for bad
input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tui_ca.engine import CertificateAuthority, InputError, RuleError
from tui_ca.engine.notify import config as settings


def add_arguments(notify: argparse.ArgumentParser) -> None:
    """The arguments of ``tui-ca notify`` (its sub-commands), on the parser the CLI made for it."""
    actions = notify.add_subparsers(dest="notify_action", required=True, parser_class=type(notify))
    add = actions.add_parser("add", help="add a channel")
    kinds = add.add_subparsers(dest="channel_type", required=True, parser_class=type(notify))

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", help="the channel's name (letters, digits, . _ -)")
        parser.add_argument(
            "--events", help=f"comma-separated, of: {', '.join(settings.DEFAULT_EVENTS)} (default: all)"
        )
        parser.add_argument("--timeout", type=float, default=settings.DEFAULT_TIMEOUT,
                            help="seconds per delivery (default 10)")  # fmt: skip

    command = kinds.add_parser("command", help="run a program with the event as JSON on stdin (no shell)")
    common(command)
    command.add_argument("argv", nargs="+", metavar="PROGRAM [ARG ...]", help="after --: the program and its arguments")
    smtp = kinds.add_parser("smtp", help="mail through an SMTP server (STARTTLS)")
    common(smtp)
    smtp.add_argument("--host", required=True)
    smtp.add_argument("--port", type=int, default=587)
    smtp.add_argument("--from", dest="sender", required=True, help="the sender address")
    smtp.add_argument("--to", action="append", required=True, help="a recipient (repeat)")
    smtp.add_argument("--credentials-file", type=Path, help="user name and password on two lines (mode 0600)")
    smtp.add_argument("--cafile", type=Path, help="CA certificates to verify the server with (default: the system's)")
    smtp.add_argument("--no-starttls", action="store_true", help="plain SMTP (a relay on this host; no credentials)")
    webhook = kinds.add_parser("webhook", help="POST the event as JSON to a URL")
    common(webhook)
    webhook.add_argument("--url", required=True)
    webhook.add_argument("--cafile", type=Path, help="CA certificates to verify an https:// URL with")
    lst = actions.add_parser("list", help="the channels, and what waits in the outbox")
    lst.add_argument("--json", action="store_true")
    remove = actions.add_parser("remove", help="remove a channel")
    remove.add_argument("name")
    test = actions.add_parser("test", help="send a test event to every channel (or one) now")
    test.add_argument("name", nargs="?")
    actions.add_parser("run", help="deliver what is due, and the daily expiry notice (for cron)")


def _make(args: argparse.Namespace) -> settings.Channel:
    kind = args.channel_type
    options: dict[str, object]
    if kind == "command":
        options = {"argv": args.argv}
    elif kind == "smtp":
        options = {"host": args.host, "port": args.port, "sender": args.sender, "to": args.to,
                   "starttls": not args.no_starttls, "cafile": args.cafile,
                   "credentials_file": args.credentials_file}  # fmt: skip
    else:
        options = {"url": args.url, "cafile": args.cafile}
    return settings.make_channel(kind, args.name, events=args.events, timeout=args.timeout, **options)


def cmd_notify(ca: CertificateAuthority, args: argparse.Namespace) -> int:
    # Here, not at the top: smtplib, urllib and email cost every other command's start-up.
    from tui_ca.engine.notify.channels import DeliveryError, deliver
    from tui_ca.engine.notify.events import trial_event
    from tui_ca.engine.notify.store_outbox import StoreOutbox, notify_pass

    action = args.notify_action
    outbox = StoreOutbox(ca)
    if action == "add":
        channel = _make(args)
        settings.add_channel(ca.home, channel)
        outbox.audit_settings(f"channel {channel.name}", "added", type=channel.type, events=list(channel.events))
        print(f"channel {channel.name} added: {channel.describe()}")
        return 0
    if action == "remove":
        settings.remove_channel(ca.home, args.name)
        outbox.audit_settings(f"channel {args.name}", "removed")
        print(f"channel {args.name} removed")
        return 0
    config = settings.load_config(ca.home)
    if action == "list":
        waiting = outbox.pending()
        if args.json:
            print(json.dumps({"channels": [c.as_doc() for c in config.channels], "window_days": config.window_days,
                              "outbox": waiting}, indent=2))  # fmt: skip
            return 0
        for channel in config.channels:
            print(channel.describe())
        if not config.channels:
            print("no channels (add one with: tui-ca notify add command|smtp|webhook NAME …)")
        print(f"{len(waiting)} event(s) waiting in the outbox")
        return 0
    if action == "test":
        named = config.channel(args.name) if args.name is not None else None
        if args.name is not None and named is None:
            raise InputError(f"no notification channel named {args.name!r} (see tui-ca notify list)")
        targets = list(config.channels) if named is None else [named]
        if not targets:
            raise RuleError("no channels to test (add one with: tui-ca notify add …)")
        worst = 0
        event = trial_event(ca.now(), ca.actor)
        for channel in targets:
            try:
                deliver(channel, event)
            except DeliveryError as exc:
                outbox.audit_settings(f"channel {channel.name}", "test failed", error=str(exc))
                print(f"tui-ca: {channel.name}: {exc}", file=sys.stderr)
                worst = 1
                continue
            outbox.audit_settings(f"channel {channel.name}", "test delivered")
            print(f"{channel.name}: delivered")
        return worst
    summary = notify_pass(ca, config)
    print(summary.describe())
    return 0
