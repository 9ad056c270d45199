"""Delivering one event to one channel: a command, an SMTP mail, a webhook.

Each delivery has a deadline and raises :class:`DeliveryError` with one line
saying what went wrong; the worker retries later. Nothing here runs inside a
store transaction: a slow mail server must never hold the CA's lock.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import subprocess
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from tui_ca.engine.errors import CAError
from tui_ca.engine.notify.config import Channel, smtp_credentials

# What a failing command or receiver may say about itself in the audit log.
_MAX_DETAIL = 200
_USER_AGENT = "tui-ca-notify/1"


class DeliveryError(CAError):
    """One delivery failed; the message says why, in one line."""


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    shown = "".join(ch if ch.isprintable() else "?" for ch in flat)
    return shown[:_MAX_DETAIL] + ("…" if len(shown) > _MAX_DETAIL else "")


def event_bytes(event: dict) -> bytes:
    # ASCII-only: requester text (control characters included) arrives escaped.
    return json.dumps(event, sort_keys=True, ensure_ascii=True).encode() + b"\n"


def deliver(channel: Channel, event: dict) -> None:
    """Send ``event`` through ``channel`` or raise DeliveryError."""
    senders = {"command": _run_command, "smtp": _send_mail, "webhook": _post_webhook}
    try:
        senders[channel.type](channel, event)
    except DeliveryError:
        raise
    except CAError as exc:  # an unsafe credentials file, say
        raise DeliveryError(str(exc)) from None


def _run_command(channel: Channel, event: dict) -> None:
    argv = channel.options["argv"]
    # No shell, a small known environment, and the event on stdin: nothing in
    # an event is ever parsed by a shell.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TUI_CA_EVENT": event["kind"]}
    try:
        result = subprocess.run(argv, input=event_bytes(event), capture_output=True, timeout=channel.timeout,
                                env=env, close_fds=True, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"{argv[0]} did not finish within {channel.timeout:g} s (killed)") from None
    except OSError as exc:
        raise DeliveryError(f"cannot run {argv[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        said = _one_line(result.stderr.decode("utf-8", "replace")) or "no message"
        raise DeliveryError(f"{argv[0]} exited with status {result.returncode}: {said}")


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def mail_message(channel: Channel, event: dict) -> EmailMessage:
    o = channel.options
    message = EmailMessage()
    message["From"] = o["sender"]
    message["To"] = ", ".join(o["to"])
    # Our words only in the subject: requester text never reaches a header.
    message["Subject"] = f"[tui-ca] {event.get('title', event['kind'])}"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=o["sender"].rsplit("@", 1)[1])
    body = json.dumps(event, indent=2, sort_keys=True, ensure_ascii=True)
    message.set_content(f"{event.get('title', event['kind'])}\n\n{body}\n")
    return message


def _send_mail(channel: Channel, event: dict) -> None:
    o = channel.options
    credentials = smtp_credentials(Path(o["credentials_file"])) if o.get("credentials_file") else None
    message = mail_message(channel, event)
    try:
        with smtplib.SMTP(o["host"], o["port"], timeout=channel.timeout) as smtp:
            smtp.ehlo()
            if o["starttls"]:
                # starttls() refuses when the server does not offer it, so a
                # stripped STARTTLS never silently sends in clear.
                smtp.starttls(context=_tls_context(o.get("cafile")))
                smtp.ehlo()
            if credentials is not None:
                smtp.login(*credentials)
            refused = smtp.send_message(message)
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(f"{o['host']}:{o['port']} does not offer STARTTLS; not sending in clear") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{o['host']}:{o['port']} refused the login: {exc.smtp_code}") from None
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"mail via {o['host']}:{o['port']} failed: {_one_line(str(exc))}") from None
    except ssl.SSLError as exc:
        raise DeliveryError(f"TLS with {o['host']}:{o['port']} failed: {_one_line(exc.reason or str(exc))}") from None
    except OSError as exc:
        raise DeliveryError(f"cannot reach {o['host']}:{o['port']}: {_one_line(str(exc.strerror or exc))}") from None
    if refused:
        raise DeliveryError(f"{o['host']} refused recipients: {', '.join(sorted(refused))}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured; following it would re-send the event elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


def _post_webhook(channel: Channel, event: dict) -> None:
    url = channel.options["url"]
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if url.startswith("https://"):
        handlers.append(urllib.request.HTTPSHandler(context=_tls_context(channel.options.get("cafile"))))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, data=event_bytes(event), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": _USER_AGENT, "X-Tui-Ca-Event": event["kind"],
    })  # fmt: skip
    try:
        with opener.open(request, timeout=channel.timeout) as response:
            response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"{_one_line(url)} answered {exc.code} {_one_line(exc.reason or '')}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, str) else getattr(exc.reason, "strerror", None) or exc.reason
        raise DeliveryError(f"cannot reach {_one_line(url)}: {_one_line(str(reason))}") from None
    except (TimeoutError, OSError) as exc:
        raise DeliveryError(f"{_one_line(url)} did not answer: {_one_line(str(exc) or 'timed out')}") from None
