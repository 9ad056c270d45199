"""CA key generation and storage, optionally under a passphrase.

An encrypted key is a small JSON envelope: scrypt derives an AES-256-GCM key
from the passphrase. cryptography's ``BestAvailableEncryption`` uses only 2,048
PBKDF2 iterations, far too cheap for a CA key that may be copied with a backup.
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tui_ca.engine.errors import InputError, KeyLockedError

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
ENVELOPE_FORMAT = "tui-ca-encrypted-key-1"
# scrypt cost: n=2**17, r=8 takes 128 MiB and, measured by bench/kdf.py on the
# 2-core dev box, 0.54 s wall when idle and 0.60 s of CPU (1.2-1.8 s wall only
# while other jobs held both cores), so an admin's unlock stays under a second
# while each guess costs ~1000x a PBKDF2 PKCS#8 key. 2**17 is also OWASP's floor.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1


def generate_key(key_type: str):
    """A new private key of one of :data:`KEY_TYPES`."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa-") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise InputError(f"unknown key type {key_type!r}; use one of: {', '.join(KEY_TYPES)}")


def _kdf(salt: bytes, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def dump_key(key, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM, or the scrypt/AES-GCM envelope when a passphrase is given."""
    if passphrase is None:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt, nonce = os.urandom(16), os.urandom(12)
    secret = _kdf(salt, SCRYPT_N, SCRYPT_R, SCRYPT_P).derive(passphrase)
    envelope = {
        "format": ENVELOPE_FORMAT,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": {"name": "aes-256-gcm", "nonce": _b64(nonce)},
        "ciphertext": _b64(AESGCM(secret).encrypt(nonce, der, ENVELOPE_FORMAT.encode())),
    }
    return (json.dumps(envelope, indent=1) + "\n").encode()


def is_encrypted(data: bytes) -> bool:
    return data.lstrip().startswith(b"{")


def load_key(data: bytes, passphrase: bytes | None):
    """Load a key written by :func:`dump_key`."""
    # A hand-edited or truncated key file must be one line, not a traceback;
    # MemoryError is cryptography refusing absurd scrypt parameters.
    damaged = (ValueError, KeyError, TypeError, MemoryError, binascii.Error)
    if not is_encrypted(data):
        try:
            return serialization.load_pem_private_key(data, password=None)
        except damaged:
            raise KeyLockedError(
                "the CA key file is damaged (not a PEM private key); restore it from a backup"
            ) from None
    if passphrase is None:
        raise KeyLockedError("the CA key is encrypted: give --passphrase-file or run on a terminal to be asked")
    try:
        envelope = json.loads(data)
        kdf = envelope["kdf"]
        secret = _kdf(_unb64(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"]).derive(passphrase)
        nonce, ciphertext = _unb64(envelope["cipher"]["nonce"]), _unb64(envelope["ciphertext"])
    except damaged:
        raise KeyLockedError("the CA key file is damaged (unreadable envelope); restore it from a backup") from None
    try:
        der = AESGCM(secret).decrypt(nonce, ciphertext, ENVELOPE_FORMAT.encode())
    except InvalidTag:
        raise KeyLockedError("wrong passphrase for the CA key") from None
    except ValueError:  # e.g. a nonce of the wrong length
        raise KeyLockedError("the CA key file is damaged (unreadable envelope); restore it from a backup") from None
    return serialization.load_der_private_key(der, password=None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)
