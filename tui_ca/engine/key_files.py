"""The CA key files: unlocking them, and moving old homes to standard PKCS#8.

A key in the legacy JSON envelope is rewritten in the standard format the
first time it is unlocked (same passphrase, one audited transaction), so a
home migrates as soon as an admin uses it; ``tui-ca rekey-file`` does the same
on demand and can change the passphrase.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from tui_ca.engine.errors import KeyLockedError, RuleError
from tui_ca.engine.home import write_file
from tui_ca.engine.keys import check_new_passphrase, dump_key, is_encrypted, is_legacy, load_key
from tui_ca.engine.process import make_undumpable

# CA object -> the passphrase that opened one of its keys, as long as the
# object lives (the process is undumpable from the first unlock on).
_unlocked_with: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()

if TYPE_CHECKING:
    from tui_ca.engine.models import Actor


def unlock(ca: Any, relpath: str, data: bytes) -> Any:
    """Load the key in ``data`` (the file at ``relpath``); a legacy file is rewritten in the standard format."""
    passphrase = None
    if is_encrypted(data):
        # The root and issuing keys share one passphrase: the one that unlocked
        # the other key is tried before asking again (the UI asks once).
        passphrase = _unlocked_with.get(ca) or ca._resolve_passphrase()
    key = load_key(data, passphrase)
    if passphrase is not None:
        _unlocked_with[ca] = passphrase
    if is_legacy(data):
        _rewrite(ca, {relpath: key}, passphrase, ca.actor, "migrated to encrypted PKCS#8")
    return key


def _rewrite(ca: Any, keys: dict[str, Any], passphrase: bytes | None, actor: Actor,
             outcome: str) -> None:  # fmt: skip
    # Each file is replaced atomically; the audit record commits after the last.
    with ca._operation(actor) as op:
        for relpath, key in keys.items():
            write_file(ca.home, relpath, dump_key(key, passphrase), 0o600)
        op.audit("rekey-file", ", ".join(sorted(keys)), outcome)


def rekey_files(ca: Any, new_passphrase: bytes | None = None, *,
                actor: Actor | None = None) -> list[str]:  # fmt: skip
    """Rewrite every CA key file as standard encrypted PKCS#8, optionally under a new passphrase."""
    from tui_ca.engine.home import ISSUING_KEY, ROOT_KEY

    make_undumpable()
    ca.require_ca()
    if ca.key_in_token():
        raise RuleError("the CA keys are in a PKCS#11 token: there are no key files to rewrite")
    present = [rel for rel in (ISSUING_KEY, ROOT_KEY) if (ca.home / rel).exists()]
    keys = {rel: ca.signing_key(rel) for rel in present}
    if new_passphrase is not None:
        check_new_passphrase(new_passphrase)
        passphrase: bytes | None = new_passphrase
        outcome = "rewritten under a new passphrase"
    else:
        passphrase = ca._resolve_passphrase() if ca.key_is_encrypted() else None
        outcome = "rewritten as encrypted PKCS#8" if passphrase else "rewritten as PKCS#8"
    if ca.key_is_encrypted() and passphrase is None:
        raise KeyLockedError("the CA key is encrypted: give --passphrase-file or run on a terminal to be asked")
    _rewrite(ca, keys, passphrase, actor or ca.actor, outcome)
    if new_passphrase is not None:
        ca._passphrase = new_passphrase
        _unlocked_with[ca] = new_passphrase
    return present
