"""Where notifications go: ``notify.json`` in the home, one entry per channel.

The file is the CA's, like its keys: mode 0600 (it names mail servers and
webhook URLs, which often carry a token) and replaced atomically. A file that
is not what we wrote is refused with one line naming it; it is never taken
for "no channels", which would silently stop every alert.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_ca.engine.errors import InputError, RuleError, UnsafeHomeError
from tui_ca.engine.notify import CONFIG_FILE
from tui_ca.engine.sharing import Sharing

__all__ = ["CONFIG_FILE"]  # re-exported: its home is the package, for authority.py
CONFIG_VERSION = 1
# What an admin can subscribe a channel to.
EVENT_KINDS = ("queued", "refused", "approved", "rejected", "revoked", "expiry", "test")
DEFAULT_EVENTS = ("queued", "refused", "approved", "rejected", "revoked", "expiry")
CHANNEL_TYPES = ("command", "smtp", "webhook")
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
DEFAULT_WINDOW_DAYS = 30
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]{1,253}")


class NotifyConfigError(UnsafeHomeError):
    """``notify.json`` (or a file it names) is damaged or unsafe."""


@dataclass(frozen=True)
class Channel:
    """One destination for events."""

    name: str
    """How the admin refers to it (``notify remove NAME``)."""
    type: str
    """``command``, ``smtp`` or ``webhook``."""
    events: tuple[str, ...]
    """The event kinds it receives."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds a delivery may take before it counts as failed."""
    options: dict[str, Any] = field(default_factory=dict)
    """The type's settings: ``argv``; ``host port starttls sender to credentials_file cafile``; ``url cafile``."""

    def wants(self, kind: str) -> bool:
        return kind in self.events or kind == "test"

    def describe(self) -> str:
        """One line for ``notify list`` (no secrets: the credentials are in their own file)."""
        o = self.options
        if self.type == "command":
            target = " ".join(o["argv"])
        elif self.type == "smtp":
            target = f"{', '.join(o['to'])} via {o['host']}:{o['port']}" + (" (STARTTLS)" if o["starttls"] else "")
        else:
            target = o["url"]
        return f"{self.name}  {self.type}  {target}  [{','.join(self.events)}]"

    def as_doc(self) -> dict:
        return {"name": self.name, "type": self.type, "events": list(self.events), "timeout": self.timeout,
                **self.options}  # fmt: skip


@dataclass(frozen=True)
class NotifyConfig:
    """Every channel of a CA, and the window of the daily expiry notice."""

    channels: tuple[Channel, ...] = ()
    """In the order they were added."""
    window_days: int = DEFAULT_WINDOW_DAYS
    """The daily expiry notice lists what ends within this many days."""

    def wanting(self, kind: str) -> list[Channel]:
        return [c for c in self.channels if c.wants(kind)]

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)


def parse_events(text: str | Iterable[str] | None) -> tuple[str, ...]:
    if text is None:
        return DEFAULT_EVENTS
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    if "all" in items:
        return DEFAULT_EVENTS
    unknown = [t for t in items if t not in EVENT_KINDS]
    if unknown or not items:
        raise InputError(
            f"unknown event kind {unknown[0] if unknown else ''!r}; use some of: {', '.join(DEFAULT_EVENTS)}"
        )
    return tuple(dict.fromkeys(items))


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT:
        raise InputError(f"the timeout must be a number of seconds between 0 and {MAX_TIMEOUT:g}, not {value!r}")
    return float(value)


def check_private_file(path: Path, what: str, sharing: Sharing | None = None) -> bytes:
    """The bytes of a secret file that only its owner can read (0600; a shared home's admin group too),
    else a refusal naming it."""
    try:
        info = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise NotifyConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
    mode = stat.S_IMODE(info.st_mode)
    if not (sharing or Sharing.private()).allows(info):
        raise NotifyConfigError(f"refusing to use the {what} {path}: other users can access it (mode {mode:04o}); "
                                "run chmod 600 on it")  # fmt: skip
    return data


def make_channel(kind: str, name: str, *, events: str | Iterable[str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, **options: Any) -> Channel:  # fmt: skip
    """A checked channel (InputError for anything unusable)."""
    if not _NAME.fullmatch(name or ""):
        raise InputError(f"channel name {name!r} must be letters, digits, '.', '_' or '-' (up to 64)")
    if kind not in CHANNEL_TYPES:
        raise InputError(f"unknown channel type {kind!r}; use one of: {', '.join(CHANNEL_TYPES)}")
    checked = {"command": _command_options, "smtp": _smtp_options, "webhook": _webhook_options}[kind](options)
    return Channel(name=name, type=kind, events=parse_events(events), timeout=_timeout(timeout), options=checked)


def _command_options(o: dict) -> dict:
    argv = o.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise InputError("a command channel needs the program and its arguments")
    program = argv[0]
    if not os.path.isabs(program):
        # Resolved once, now: cron and serve run with another PATH.
        import shutil  # here: shutil imports bz2 and lzma, and every operation reads this module

        found = shutil.which(program)
        if found is None:
            raise InputError(f"no program {program!r} on PATH; give its full path")
        program = found
    if not os.access(program, os.X_OK) or not os.path.isfile(program):
        raise InputError(f"{program} is not an executable file")
    return {"argv": [program, *argv[1:]]}


def _smtp_options(o: dict) -> dict:
    host, port = o.get("host"), o.get("port", 587)
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise InputError(f"--host must be a host name or address, not {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InputError(f"--port must be between 1 and 65535, not {port!r}")
    sender, to = o.get("sender"), o.get("to")
    if not isinstance(sender, str) or not _ADDRESS.fullmatch(sender):
        raise InputError(f"--from must be one e-mail address, not {sender!r}")
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and _ADDRESS.fullmatch(a) for a in to):
        raise InputError(f"--to must be e-mail addresses, not {to!r}")
    starttls = o.get("starttls", True)
    credentials = o.get("credentials_file")
    if credentials is not None:
        if not starttls:
            raise InputError("refusing to send SMTP credentials without STARTTLS")
        credentials = str(Path(credentials).expanduser().absolute())
        _credentials(Path(credentials))  # refuses a missing, unsafe or malformed file now, not at 3 a.m.
    cafile = o.get("cafile")
    if cafile is not None:
        cafile = str(Path(cafile).expanduser().absolute())
        if not Path(cafile).is_file():
            raise InputError(f"the CA file {cafile} does not exist")
    return {"host": host, "port": port, "starttls": bool(starttls), "sender": sender, "to": list(to),
            "credentials_file": credentials, "cafile": cafile}  # fmt: skip


def _credentials(path: Path) -> tuple[str, str]:
    """``user`` and ``password``: the first two lines of a 0600 file."""
    lines = check_private_file(path, "SMTP credentials file").decode("utf-8", "replace").splitlines()
    if len(lines) < 2 or not lines[0].strip() or not lines[1]:
        raise NotifyConfigError(
            f"the SMTP credentials file {path} must hold the user name and the password on two lines"
        )
    return lines[0].strip(), lines[1]


smtp_credentials = _credentials


def _webhook_options(o: dict) -> dict:
    url = o.get("url")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", url):
        raise InputError(f"--url must be an http:// or https:// URL, not {url!r}")
    cafile = o.get("cafile")
    if cafile is not None:
        cafile = str(Path(cafile).expanduser().absolute())
        if not Path(cafile).is_file():
            raise InputError(f"the CA file {cafile} does not exist")
    return {"url": url, "cafile": cafile}


# ------------------------------------------------------------------ the file


def config_path(home: Path) -> Path:
    return Path(home) / CONFIG_FILE


def load_config(home: Path) -> NotifyConfig:
    """The home's channels; no file means none. A damaged file is refused, naming it."""
    path = config_path(home)
    if not path.exists() and not path.is_symlink():
        return NotifyConfig()
    if path.is_symlink() or not path.is_file():
        raise NotifyConfigError(f"{path} is not a regular file; remove it or restore it from a backup")
    raw = check_private_file(path, "notification settings", Sharing.of(home))
    try:
        doc = json.loads(raw)
        if (
            not isinstance(doc, dict)
            or doc.get("version") != CONFIG_VERSION
            or not isinstance(doc.get("channels"), list)
        ):
            raise ValueError("not a notify settings document")
        channels = []
        for entry in doc["channels"]:
            if not isinstance(entry, dict):
                raise ValueError("a channel is not an object")
            options = {k: v for k, v in entry.items() if k not in ("name", "type", "events", "timeout")}
            channels.append(Channel(name=entry["name"], type=entry["type"], events=parse_events(entry["events"]),
                                    timeout=_timeout(entry["timeout"]), options=options))  # fmt: skip
            if entry["type"] not in CHANNEL_TYPES:
                raise ValueError("unknown channel type")
        window = doc.get("window_days", DEFAULT_WINDOW_DAYS)
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 3650:
            raise ValueError("bad window_days")
    except (ValueError, KeyError, TypeError, InputError):
        raise NotifyConfigError(f"{path} is damaged (not the notification settings tui-ca wrote); "
                                "restore it from a backup or remove it and add the channels again") from None  # fmt: skip
    return NotifyConfig(channels=tuple(channels), window_days=window)


def save_config(home: Path, config: NotifyConfig) -> None:
    """Replace ``notify.json`` atomically and durably, 0600 (0660 in a shared home, whatever the umask)."""
    path = config_path(home)
    if not Path(home).is_dir():
        raise InputError(f"the CA home {home} does not exist")
    doc = {
        "version": CONFIG_VERSION,
        "window_days": config.window_days,
        "channels": [c.as_doc() for c in config.channels],
    }
    import secrets

    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = Sharing.of(home).create(staging, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def add_channel(home: Path, channel: Channel) -> NotifyConfig:
    config = load_config(home)
    if config.channel(channel.name) is not None:
        raise RuleError(f"a channel named {channel.name!r} exists already; remove it first")
    updated = NotifyConfig(channels=(*config.channels, channel), window_days=config.window_days)
    save_config(home, updated)
    return updated


def remove_channel(home: Path, name: str) -> NotifyConfig:
    config = load_config(home)
    if config.channel(name) is None:
        raise InputError(f"no notification channel named {name!r} (see tui-ca notify list)")
    updated = NotifyConfig(channels=tuple(c for c in config.channels if c.name != name), window_days=config.window_days)
    save_config(home, updated)
    return updated
