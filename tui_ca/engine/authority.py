"""What every changing part of the CA shares: the keys, the clock, the operation frame."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from tui_ca.engine.errors import NoCAError
from tui_ca.engine.home import ISSUING_KEY, read_file
from tui_ca.engine.models import Actor
from tui_ca.engine.notify import CONFIG_FILE as NOTIFY_SETTINGS
from tui_ca.engine.operation import Operation, operation
from tui_ca.engine.reader import CAReader
from tui_ca.engine.store import RecordStore

DEFAULT_CA_DAYS = 3650
DEFAULT_LEAF_DAYS = 365
DEFAULT_CRL_DAYS = 7
# Queued requests older than this expire (a requester who never phoned in).
DEFAULT_QUEUE_DAYS = 30
MAX_LEAF_DAYS = 3650
MAX_REASON_CHARS = 500
MAX_REQUESTER_CHARS = 128

Passphrase = bytes | Callable[[], bytes | None] | None


class AuthorityBase(CAReader):
    """A CA home with its keys. Thread-safe for the UI's workers; safe across processes."""

    def __init__(
        self,
        home: Path | str,
        *,
        clock: Callable[[], datetime] | None = None,
        actor: Actor | None = None,
        passphrase: Passphrase = None,
        serials: Callable[[], int] | None = None,
        store: RecordStore | str | None = None,
        pin: Passphrase = None,
    ) -> None:
        super().__init__(home, clock=clock, store=store)
        # Injectable so that tests and snapshots get reproducible serials; in
        # production this is cryptography's random_serial_number() (159 bits
        # from the OS CSPRNG).
        self._new_serial = serials or x509.random_serial_number
        self.actor = actor or Actor.from_environment()
        self._passphrase = passphrase
        # A CA whose keys are in a PKCS#11 token asks for its PIN instead; without
        # a PIN source of its own the passphrase's is used (the UI's unlock dialog).
        self._pin = pin
        self._token: Any = None
        self._keys: dict[str, Any] = {}

    def _resolve_passphrase(self) -> bytes | None:
        return self._passphrase() if callable(self._passphrase) else self._passphrase

    def _resolve_pin(self) -> str | None:
        source = self._pin if self._pin is not None else self._passphrase
        secret = source() if callable(source) else source
        return secret.decode() if isinstance(secret, bytes) else secret

    def token_session(self, config: Any) -> Any:
        """The logged-in session on the CA's token (one per process, opened on first use)."""
        if self._token is None:
            from tui_ca.engine.token_keys import shared_session

            self._token = shared_session(config, self._resolve_pin)
        return self._token

    def _check_private(self, path: Path) -> None:
        # Group access only for the admin group a shared home records (sharing.py).
        from tui_ca.engine.sharing import Sharing

        Sharing.of(self.home).check(path)

    def signing_key(self, relpath: str = ISSUING_KEY) -> Any:
        """The unlocked CA key, kept in memory only (asked for once); a key in a token signs through it."""
        if relpath not in self._keys:
            token = self.config().get("pkcs11")
            if token:
                from tui_ca.engine.token_keys import token_key

                self._keys[relpath] = token_key(self, token, relpath)
                return self._keys[relpath]
            path = self.home / relpath
            if not path.exists():
                raise NoCAError(f"the CA key {relpath} is not in {self.home}")
            self._check_private(path)
            data = read_file(self.home, relpath)
            from tui_ca.engine import key_files

            # Unlocking also migrates a legacy key file to standard PKCS#8.
            self._keys[relpath] = key_files.unlock(self, relpath, data)
        return self._keys[relpath]

    def unlock(self) -> None:
        """Load the issuing key now (the UI asks for the passphrase up front)."""
        self._require_ca()
        self.signing_key()

    @contextmanager
    def _operation(self, actor: Actor | None = None) -> Iterator[Operation]:
        """One transaction with its counters and audit trail (see operation.py), and its notifications."""
        with operation(self.store, actor or self.actor, self.now) as op:
            yield op
            # Without a settings file no channel wants an event, and the outbox
            # code (~10 ms of imports for a one-shot command) is not loaded. A
            # file that is there, even damaged or a link, goes through it.
            if op.notes.get("audited") and os.path.lexists(self.home / NOTIFY_SETTINGS):
                from tui_ca.engine.notify.store_outbox import enqueue_operation_events

                enqueue_operation_events(op, self.home)
