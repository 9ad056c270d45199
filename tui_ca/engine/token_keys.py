"""CA keys that live in a PKCS#11 token (an HSM, or SoftHSM2 for tests).

The private key never leaves the token: it is generated there (sensitive,
not extractable) or imported once by ``key-to-token``, and every signature is
the token's. :class:`TokenKey` subclasses cryptography's private-key types so
that the engine's code paths that ask "is this an EC or an RSA key, which hash
goes with it" need no special case; only the signing of X.509 structures goes
through :func:`tui_ca.engine.signing.sign_builder`, because cryptography's
builders sign with in-process keys only.

The library is ``python-pkcs11``; it is imported only when a token is used, so
a CA with file keys never loads it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import Buffer

from tui_ca.engine.errors import InputError, KeyLockedError, RuleError, TokenError

# Key types the token generates, by the names ``init --key-type`` takes.
__all__ = ["TokenConfig", "TokenECKey", "TokenError", "TokenKey", "TokenRSAKey", "TokenSession"]

_EC_CURVES = {"ec-p256": "secp256r1", "ec-p384": "secp384r1"}
_RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}


@dataclass(frozen=True)
class TokenConfig:
    """Where a CA's keys live: a PKCS#11 module and a token in it."""

    module: str
    """Path of the PKCS#11 library (``/usr/lib/softhsm/libsofthsm2.so``)."""
    token: str
    """The token's label."""

    def to_doc(self) -> dict[str, str]:
        """The configuration's form."""
        return {"module": self.module, "token": self.token}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> TokenConfig:
        """Read the configuration's form back."""
        try:
            return cls(module=str(doc["module"]), token=str(doc["token"]))
        except (KeyError, TypeError):
            raise RuleError("the CA's PKCS#11 settings are damaged (module and token are needed)") from None


def _token_failure(exc: BaseException, config: TokenConfig) -> NoReturn:
    """Turn python-pkcs11's exceptions into one line for the admin."""
    import pkcs11.exceptions as errors

    name = type(exc).__name__
    if isinstance(exc, errors.PinIncorrect):
        raise KeyLockedError(f"the PIN for token {config.token!r} is wrong") from None
    if isinstance(exc, errors.PinLocked):
        raise TokenError(
            f"token {config.token!r} is locked (too many wrong PINs); its security officer must unlock it"
        ) from None
    if isinstance(exc, errors.NoSuchToken):
        raise TokenError(f"no token labelled {config.token!r} in {config.module}") from None
    if isinstance(exc, (errors.TokenNotPresent, errors.DeviceRemoved, errors.SessionClosed,
                        errors.SessionHandleInvalid, errors.DeviceError, errors.TokenNotRecognised,
                        errors.ObjectHandleInvalid)):  # fmt: skip
        raise TokenError(
            f"token {config.token!r} was removed or stopped answering ({name}); nothing was signed"
        ) from None
    raise TokenError(f"token {config.token!r} refused the operation ({name})") from None


class TokenSession:
    """An open, logged-in session on a CA's token, shared by its keys.

    PKCS#11 sessions are not safe to use from several threads at once, and the
    UI signs from worker threads: every token call holds ``_lock``.
    """

    def __init__(self, config: TokenConfig, pin: str) -> None:
        self.config = config
        self._lock = threading.Lock()
        try:
            import pkcs11
        except ImportError:  # pragma: no cover - python-pkcs11 is a dependency
            raise TokenError("python-pkcs11 is not installed; it is needed for keys in a token") from None
        if not os.path.isfile(config.module):
            raise InputError(f"cannot load the PKCS#11 module {config.module}: no such file")
        try:
            library = pkcs11.lib(config.module)
        except (RuntimeError, OSError, pkcs11.exceptions.PKCS11Error) as exc:
            # The module is there but does not start: SoftHSM2 whose token folder
            # has gone, a device that is unplugged, a configuration it cannot read.
            raise TokenError(
                f"the PKCS#11 module {config.module} did not start ({type(exc).__name__}): "
                f"is token {config.token!r} present?"
            ) from None
        try:
            token = library.get_token(token_label=config.token)
            try:
                self._session = token.open(user_pin=pin, rw=True)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # PKCS#11 logs in the whole process, not one session: another
                # session of this process already gave the PIN.
                self._session = token.open(rw=True)
        except pkcs11.exceptions.PKCS11Error as exc:
            _token_failure(exc, config)

    @contextmanager
    def calls(self) -> Iterator[Any]:
        """The raw session, for one call at a time; token errors become TokenError."""
        import pkcs11.exceptions as errors

        with self._lock:
            try:
                yield self._session
            except errors.PKCS11Error as exc:
                _token_failure(exc, self.config)

    def close(self) -> None:
        """Log out and close; keys of this session (and of every session of this process) stop working."""
        with _SHARED_LOCK:
            if _SHARED.get(self.config) is self:
                del _SHARED[self.config]
        with self._lock:
            try:
                self._session.close()
            except Exception:  # noqa: BLE001 - closing a vanished token is not worth an error
                pass

    def generate(self, key_type: str, label: str) -> TokenKey:
        """A new key pair inside the token, private half sensitive and not extractable."""
        from pkcs11 import Attribute, KeyType
        from pkcs11.util.ec import encode_named_curve_parameters

        private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                            Attribute.TOKEN: True, Attribute.PRIVATE: True}  # fmt: skip
        with self.calls() as session:
            if self._find(session, label) is not None:
                raise InputError(f"token {self.config.token!r} already holds a key labelled {label!r}")
            if key_type in _EC_CURVES:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_EC_CURVES[key_type])}, local=True
                )
                params.generate_keypair(store=True, label=label, id=label.encode(),
                                        private_template=private_template)  # fmt: skip
            elif key_type in _RSA_BITS:
                session.generate_keypair(KeyType.RSA, _RSA_BITS[key_type], store=True, label=label, id=label.encode(),
                                         private_template=private_template)  # fmt: skip
            else:
                raise InputError(f"unknown key type {key_type!r}")
        return self.key(label)

    def import_key(self, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, label: str) -> TokenKey:
        """Put an in-memory key into the token (``key-to-token``); it cannot be read back."""
        from pkcs11 import Attribute
        from pkcs11.constants import ObjectClass

        der_public = key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
        common = {Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: label.encode()}
        if isinstance(key, ec.EllipticCurvePrivateKey):
            from pkcs11.util.ec import decode_ec_private_key, decode_ec_public_key

            private = {**decode_ec_private_key(key.private_bytes(serialization.Encoding.DER,
                                                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                                                 serialization.NoEncryption()))}  # fmt: skip
            public = {**decode_ec_public_key(der_public)}
        else:
            from pkcs11.util.rsa import decode_rsa_private_key, decode_rsa_public_key

            private = {**decode_rsa_private_key(key.private_bytes(serialization.Encoding.DER,
                                                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                                                  serialization.NoEncryption()))}  # fmt: skip
            public_pkcs1 = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
            public = {**decode_rsa_public_key(public_pkcs1)}
        private.update(common)
        private.update({Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                        Attribute.PRIVATE: True, Attribute.CLASS: ObjectClass.PRIVATE_KEY})  # fmt: skip
        public.update(common)
        public.update({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.VERIFY: True})
        with self.calls() as session:
            if self._find(session, label) is not None:
                raise InputError(f"token {self.config.token!r} already holds a key labelled {label!r}")
            session.create_object(private)
            session.create_object(public)
        return self.key(label)

    def destroy(self, label: str) -> None:
        """Remove both halves of the key pair ``label`` (an ``init`` that did not commit made it)."""
        with self.calls() as session:
            for obj in list(session.get_objects({_attr("LABEL"): label})):
                obj.destroy()

    @staticmethod
    def _find(session: Any, label: str) -> Any:
        from pkcs11.constants import ObjectClass

        found = list(session.get_objects({_attr("LABEL"): label, _attr("CLASS"): ObjectClass.PRIVATE_KEY}))
        return found[0] if found else None

    def key(self, label: str) -> TokenKey:
        """The token's private key with this label, as a signing key."""
        from pkcs11.constants import ObjectClass

        with self.calls() as session:
            private = self._find(session, label)
            if private is None:
                raise TokenError(f"token {self.config.token!r} holds no private key labelled {label!r}")
            publics = list(session.get_objects({_attr("LABEL"): label, _attr("CLASS"): ObjectClass.PUBLIC_KEY}))
            if not publics:
                raise TokenError(f"token {self.config.token!r} holds no public key labelled {label!r}")
            public = _public_key(publics[0])
        if isinstance(public, ec.EllipticCurvePublicKey):
            return TokenECKey(self, label, private, public)
        if isinstance(public, rsa.RSAPublicKey):
            return TokenRSAKey(self, label, private, public)
        raise TokenError(f"the key labelled {label!r} is neither EC nor RSA")


_SHARED: dict[TokenConfig, TokenSession] = {}
_SHARED_LOCK = threading.Lock()


def shared_session(config: TokenConfig, pin: Callable[[], str | None]) -> TokenSession:
    """The process's one logged-in session on this token, opened (and the PIN asked) on first use.

    One per process, because a PKCS#11 login belongs to the process: closing a
    second session would log the first one out.
    """
    with _SHARED_LOCK:
        session = _SHARED.get(config)
        if session is None:
            session = _SHARED[config] = TokenSession(config, read_pin(None, pin))
        return session


def _attr(name: str) -> Any:
    from pkcs11 import Attribute

    return getattr(Attribute, name)


def _public_key(obj: Any) -> PublicKeyTypes:
    from pkcs11 import Attribute, KeyType

    if obj.key_type == KeyType.EC:
        from pkcs11.util.ec import encode_ec_public_key

        return serialization.load_der_public_key(encode_ec_public_key(obj))
    modulus = int.from_bytes(obj[Attribute.MODULUS], "big")
    exponent = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def _digest(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


class _TokenKeyMixin:
    """What both key types share: where they live and how they refuse export."""

    session: TokenSession
    label: str

    def _sign_raw(self, mechanism_name: str, data: bytes) -> bytes:
        from pkcs11 import Mechanism

        with self.session.calls():
            return self._private.sign(data, mechanism=getattr(Mechanism, mechanism_name))  # type: ignore[attr-defined]

    def private_bytes(self, *args: object, **kwargs: object) -> NoReturn:
        raise TokenError(f"the key {self.label!r} lives in token {self.session.config.token!r} and cannot be exported")

    def private_numbers(self) -> NoReturn:
        raise TokenError(f"the key {self.label!r} lives in token {self.session.config.token!r} and cannot be exported")

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Any:
        return self


class TokenECKey(_TokenKeyMixin, ec.EllipticCurvePrivateKey):
    """An EC private key inside a token; signs like cryptography's."""

    def __init__(self, session: TokenSession, label: str, private: Any, public: ec.EllipticCurvePublicKey) -> None:
        self.session, self.label, self._private, self._public = session, label, private, public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError("token EC keys sign with ECDSA only")
        algorithm = signature_algorithm.algorithm
        digest = bytes(data) if isinstance(algorithm, utils.Prehashed) else _digest(bytes(data), algorithm)
        raw = self._sign_raw("ECDSA", digest)
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> NoReturn:
        raise TokenError("CA keys in a token are for signing only")


_RSA_MECHANISMS = {"sha256": "SHA256_RSA_PKCS", "sha384": "SHA384_RSA_PKCS", "sha512": "SHA512_RSA_PKCS"}


class TokenRSAKey(_TokenKeyMixin, rsa.RSAPrivateKey):
    """An RSA private key inside a token; signs PKCS#1 v1.5 like cryptography's."""

    def __init__(self, session: TokenSession, label: str, private: Any, public: rsa.RSAPublicKey) -> None:
        self.session, self.label, self._private, self._public = session, label, private, public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    # ``algorithm`` is Any: newer cryptography adds NoDigestInfo to the base's union, refused here like Prehashed.
    def sign(self, data: Buffer, padding_: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        if not isinstance(padding_, padding.PKCS1v15) or not isinstance(algorithm, hashes.HashAlgorithm):
            raise TypeError("token RSA keys sign PKCS#1 v1.5 over the whole message only")
        mechanism = _RSA_MECHANISMS.get(algorithm.name)
        if mechanism is None:
            raise TypeError(f"token RSA keys do not sign with {algorithm.name}")
        return self._sign_raw(mechanism, bytes(data))

    def decrypt(self, ciphertext: bytes, padding_: padding.AsymmetricPadding) -> NoReturn:
        raise TokenError("CA keys in a token are for signing only")


def read_pin(path: str | None, ask: Callable[[], str | None] | None) -> str:
    """The token PIN from a file (first line) or asked for; refused when neither gives one."""
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                pin = handle.readline().rstrip("\r\n")
        except OSError as exc:
            raise InputError(f"cannot read the PIN file {path}: {exc.strerror}") from None
    elif ask is not None:
        pin = ask() or ""
    else:
        pin = ""
    if not pin:
        raise KeyLockedError("the CA key is in a PKCS#11 token: give its PIN (--pin-file, or on a terminal)")
    return pin


TokenKey = TokenECKey | TokenRSAKey
"""A CA key inside a token, of either algorithm."""


def token_key(ca: Any, settings: dict[str, Any], relpath: str) -> TokenKey:
    """The key the CA's configuration (``pkcs11``) names for the home's key file ``relpath``."""
    from tui_ca.engine.errors import NoCAError

    label = (settings.get("keys") or {}).get(relpath)
    if not isinstance(label, str):
        raise NoCAError(f"the CA's token settings name no key for {relpath}")
    session = ca.token_session(TokenConfig.from_doc(settings))
    return session.key(label)


DEFAULT_LABELS = {"root": "tui-ca-root", "issuing": "tui-ca-issuing"}
"""The labels ``init --pkcs11`` gives the keys it generates."""


def key_type_of(key: TokenKey) -> str:
    """The ``--key-type`` name of a key found in the token."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        for name, curve in _EC_CURVES.items():
            if key.curve.name == curve:
                return name
        raise InputError(f"the token key {key.label!r} is on curve {key.curve.name}; use P-256 or P-384")
    if key.key_size < 2048:
        raise InputError(f"the token key {key.label!r} is RSA {key.key_size}; at least 2048 bits are needed")
    return f"rsa-{key.key_size}"


def init_keys(session: TokenSession, key_type: str, labels: list[str] | None, *, external_root: bool,
              made: list[str]) -> tuple[TokenKey, TokenKey | None, str]:  # fmt: skip
    """The issuing and root keys for ``init``: the existing ``labels`` (root first), or new ones in the token.

    The labels of keys generated here are appended to ``made`` as soon as each
    exists, so that an ``init`` that fails later can destroy them.
    """
    wanted = ["issuing"] if external_root else ["root", "issuing"]
    if labels:
        if len(labels) != len(wanted) or len(set(labels)) != len(labels):
            shape = "ISSUING" if external_root else "ROOT ISSUING (two different labels)"
            raise InputError(f"--pkcs11-key takes the labels {shape}")
        keys = {role: session.key(label) for role, label in zip(wanted, labels, strict=True)}
        key_type = key_type_of(keys["issuing"])
        if not external_root:
            key_type_of(keys["root"])
    else:
        if key_type not in _EC_CURVES and key_type not in _RSA_BITS:
            raise InputError(f"unknown key type {key_type!r}; use one of: {', '.join([*_EC_CURVES, *_RSA_BITS])}")
        with session.calls() as raw:
            taken = [DEFAULT_LABELS[r] for r in wanted if session._find(raw, DEFAULT_LABELS[r]) is not None]
        if taken:
            raise InputError(f"token {session.config.token!r} already holds {', '.join(taken)}; "
                             "give existing keys with --pkcs11-key, or use another token")  # fmt: skip
        keys = {}
        for role in wanted:
            keys[role] = session.generate(key_type, DEFAULT_LABELS[role])
            made.append(DEFAULT_LABELS[role])
    return keys["issuing"], keys.get("root"), key_type


def token_settings(config: TokenConfig, issuing: TokenKey, root: TokenKey | None) -> dict[str, Any]:
    """What the CA's configuration records (``pkcs11``): the module, the token and each key's label."""
    from tui_ca.engine.home import ISSUING_KEY, ROOT_KEY

    keys = {ISSUING_KEY: issuing.label}
    if root is not None:
        keys[ROOT_KEY] = root.label
    return {**config.to_doc(), "keys": keys}
