"""``key-to-token``: move a home's CA key files into a PKCS#11 token.

The keys are unlocked with the passphrase, imported into the token
(sensitive, not extractable), and each imported key must sign a test message
that the CA certificate's public key verifies before anything changes. The
configuration then switches to the token in one audited commit, and only after
it the key files are overwritten and removed: an interruption before the
commit leaves the home on its files (the imported copies are destroyed again),
one after it leaves files that a second run removes.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tui_ca.engine.errors import CAError, NoCAError, RuleError
from tui_ca.engine.home import ISSUING_KEY, ROOT_KEY
from tui_ca.engine.process import make_undumpable
from tui_ca.engine.profile import signature_hash
from tui_ca.engine.signing import sign_with_key
from tui_ca.engine.token_keys import DEFAULT_LABELS, TokenConfig, TokenError, TokenKey, token_settings

if TYPE_CHECKING:
    from cryptography import x509

    from tui_ca.engine.ca import CertificateAuthority
    from tui_ca.engine.models import Actor

_ROLES = {ROOT_KEY: "root", ISSUING_KEY: "issuing"}


def _check_signs_for(key: TokenKey, cert: x509.Certificate) -> None:
    """The token key signs what the certificate's public key verifies: the right key arrived whole."""
    message = b"tui-ca key-to-token check " + secrets.token_bytes(16)
    algorithm = signature_hash(key)
    signature = sign_with_key(message, key, algorithm)
    public = cert.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(algorithm))
        else:  # pragma: no cover - CA certificates carry EC or RSA keys
            raise InvalidSignature
    except InvalidSignature:
        raise TokenError(
            f"the key imported as {key.label!r} does not sign for its certificate; nothing was switched"
        ) from None


def _shred(path: Any) -> None:
    """Overwrite a key file with random bytes, flush it, then remove it (and flush the folder)."""
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_keys_to_token(ca: CertificateAuthority, config: TokenConfig, *, actor: Actor | None = None) -> list[str]:
    """Import the CA key files into the token, switch the CA to it, and remove the files; the labels used."""
    make_undumpable()
    ca.require_ca()
    present = [rel for rel in (ROOT_KEY, ISSUING_KEY) if (ca.home / rel).exists()]
    if ca.key_in_token():
        if not present:
            raise RuleError("the CA keys are already in a PKCS#11 token")
        # A run interrupted after its commit: the token signs for the CA, the old files only wait to go.
        for rel in present:
            _check_signs_for(ca.signing_key(rel), ca.root_cert() if rel == ROOT_KEY else ca.issuing_cert())
            _shred(ca.home / rel)
        return [ca.config()["pkcs11"]["keys"][rel] for rel in present]
    if not present:
        raise NoCAError(f"no CA key files in {ca.home / 'ca'}")
    file_keys = {rel: ca.signing_key(rel) for rel in present}  # asks for the passphrase
    certs = {ROOT_KEY: ca.root_cert(), ISSUING_KEY: ca.issuing_cert()}
    labels = {rel: DEFAULT_LABELS[_ROLES[rel]] for rel in present}
    session = ca.token_session(config)
    with session.calls() as raw:
        taken = [label for label in labels.values() if session._find(raw, label) is not None]
    if taken:
        raise RuleError(f"token {config.token!r} already holds {', '.join(taken)}; refusing to mix keys of two CAs")
    imported: list[str] = []
    token_keys: dict[str, TokenKey] = {}
    committed = False
    try:
        for rel, key in file_keys.items():
            token_keys[rel] = session.import_key(key, labels[rel])
            imported.append(labels[rel])
            _check_signs_for(token_keys[rel], certs[rel])
        settings = token_settings(config, token_keys[ISSUING_KEY], token_keys.get(ROOT_KEY))
        with ca._operation(actor) as op:
            current = op.txn.config()
            if current.get("pkcs11"):
                raise RuleError("another process moved the CA keys into a token meanwhile")
            op.txn.put_config({**current, "pkcs11": settings})
            op.audit("key-to-token", ", ".join(present), f"moved into token {config.token!r}; key files removed",
                     token=config.token, module=config.module, labels=sorted(labels.values()))  # fmt: skip
        committed = True
    finally:
        if not committed:
            for label in imported:
                try:
                    session.destroy(label)
                except CAError:
                    pass
    ca._keys.update(token_keys)
    for rel in present:
        _shred(ca.home / rel)
    return sorted(labels.values())
