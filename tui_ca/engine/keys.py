"""CA key generation and storage, optionally under a passphrase.

An encrypted key is standard encrypted PKCS#8 PEM (RFC 5958, PBES2 of RFC
8018), so ``openssl pkey -in ca/issuing.key -passin file:…`` opens it. The KDF
is PBKDF2-HMAC-SHA256 with 600,000 iterations (OWASP's 2023 figure), AES-256-
CBC. cryptography 50's ``BestAvailableEncryption`` writes the same structure
with only 2,048 iterations and its encryption builder does not serve PKCS#8,
so the structure is built here with asn1crypto. scrypt (which PBES2 also
allows) was not taken: OpenSSL refuses scrypt above 32 MiB when it decrypts,
which would cap it below the 128 MiB the old format used.

Homes made before this format used a JSON envelope (scrypt n=2**17 + AES-256-
GCM); :func:`load_key` still reads it and :func:`is_legacy` tells the caller
to rewrite the file (see key_files.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tui_ca.engine.errors import InputError, KeyLockedError
from tui_ca.engine.process import make_undumpable

# The key types a CA here signs with (KEY_TYPES); anything else a file holds is refused on load.
CAKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
ENVELOPE_FORMAT = "tui-ca-encrypted-key-1"
# The legacy envelope's scrypt cost (read only). EST user passwords keep this
# strength (server/users.py): 128 MiB, about 0.5 s, OWASP's floor for scrypt.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
# 600,000 is OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256; measured on
# the 2-core dev box: 0.47 s under load, so an unlock stays well under a second.
PBKDF2_ITERATIONS = 600_000
MIN_PASSPHRASE_CHARS = 8
_PEM_LABEL = "ENCRYPTED PRIVATE KEY"


def generate_key(key_type: str) -> CAKey:
    """A new private key of one of :data:`KEY_TYPES`."""
    make_undumpable()
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type.startswith("rsa-") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise InputError(f"unknown key type {key_type!r}; use one of: {', '.join(KEY_TYPES)}")


def _kdf(salt: bytes, n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p)


def check_new_passphrase(passphrase: bytes | None) -> None:
    """Refuse a passphrase too short to protect a CA key (the UI asks for the same)."""
    if passphrase is not None and len(passphrase.decode("utf-8", "replace")) < MIN_PASSPHRASE_CHARS:
        raise InputError(f"the passphrase needs at least {MIN_PASSPHRASE_CHARS} characters")


def dump_key(key: CAKey, passphrase: bytes | None, *, iterations: int | None = None) -> bytes:
    """PKCS#8 PEM, encrypted (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC) when a passphrase is given.

    ``iterations`` defaults to :data:`PBKDF2_ITERATIONS` as it is when called
    (not when this module loaded), so a test harness can make cheap keys in
    the production format.
    """
    if iterations is None:
        iterations = PBKDF2_ITERATIONS
    if passphrase is None:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Imported here: only writing or inspecting an encrypted key needs it, not every command's start-up.
    from asn1crypto import algos as asn1_algos
    from asn1crypto import keys as asn1_keys

    salt, iv = os.urandom(16), os.urandom(16)
    secret = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(der) + padder.finalize()) + encryptor.finalize()
    info = asn1_keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": asn1_algos.Pbkdf2Salt(name="specified", value=salt),
                            "iteration_count": iterations,
                            "prf": {"algorithm": "sha256"},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": ciphertext,
        }
    )
    from tui_ca.engine.crl import der_to_pem

    return der_to_pem(info.dump(), _PEM_LABEL)


def is_encrypted(data: bytes) -> bool:
    return is_legacy(data) or f"-----BEGIN {_PEM_LABEL}-----".encode() in data


def is_legacy(data: bytes) -> bool:
    """The JSON envelope of homes made before keys were standard PKCS#8."""
    return data.lstrip().startswith(b"{")


def kdf_iterations(data: bytes) -> int | None:
    """The PBKDF2 iteration count of an encrypted PKCS#8 key (None if it is not one)."""
    from asn1crypto import keys as asn1_keys

    try:
        body = b"".join(data.strip().splitlines()[1:-1])
        info = asn1_keys.EncryptedPrivateKeyInfo.load(base64.b64decode(body))
        params = info["encryption_algorithm"]["parameters"]["key_derivation_func"]["parameters"]
        return int(params["iteration_count"].native)
    except (ValueError, TypeError, KeyError, binascii.Error):
        return None


def load_key(data: bytes, passphrase: bytes | None) -> CAKey:
    """Load a key written by :func:`dump_key`."""
    # A hand-edited or truncated key file must be one line, not a traceback;
    # MemoryError is cryptography refusing absurd scrypt parameters.
    damaged = (ValueError, KeyError, TypeError, MemoryError, binascii.Error)
    if not is_encrypted(data):
        try:
            return _ca_key(serialization.load_pem_private_key(data, password=None))
        except damaged:
            raise KeyLockedError(
                "the CA key file is damaged (not a PEM private key); restore it from a backup"
            ) from None
    if passphrase is None:
        raise KeyLockedError("the CA key is encrypted: give --passphrase-file or run on a terminal to be asked")
    make_undumpable()
    if not is_legacy(data):
        return _load_pkcs8(data, passphrase)
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
    return _ca_key(serialization.load_der_private_key(der, password=None))


def _load_pkcs8(data: bytes, passphrase: bytes) -> CAKey:
    if kdf_iterations(data) is None:
        raise KeyLockedError("the CA key file is damaged (not an encrypted PKCS#8 key); restore it from a backup")
    try:
        loaded = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError):
        # The structure parsed above, so a failure here is the passphrase
        # (a wrong one leaves bad padding or a garbled key).
        raise KeyLockedError("wrong passphrase for the CA key") from None
    return _ca_key(loaded)


def _ca_key(key: object) -> CAKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyLockedError(f"the CA key file holds a {type(key).__name__}, not an EC or RSA key")
    return key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)
