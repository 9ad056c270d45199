"""Setting a CA up: ``init`` (root + issuing CA, or the issuing CSR for an external root) and its import.

The keys and CA certificates are files of the home (home.py); the store
records the configuration, the audit record and the first CRL. The store's
commit is the commit point: the files are written just before it inside the
operation and removed again if it does not happen, and a home whose store has
no configuration holds no CA, whatever files an interrupted ``init`` left.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tui_ca.engine import chain, clock
from tui_ca.engine import names as names_module
from tui_ca.engine.authority import DEFAULT_CA_DAYS, DEFAULT_CRL_DAYS, DEFAULT_QUEUE_DAYS
from tui_ca.engine.errors import CAError, InputError, RuleError
from tui_ca.engine.home import ISSUING_CERT, ISSUING_CSR, ISSUING_KEY, ROOT_CERT, ROOT_KEY, remove_file, write_file
from tui_ca.engine.keys import check_new_passphrase, dump_key, generate_key
from tui_ca.engine.models import Actor, CAInfo, NameFields
from tui_ca.engine.profile import build_issuing, build_issuing_csr, build_name, build_root
from tui_ca.engine.publishing import Publishing
from tui_ca.engine.sharing import SHARING_FILE, Sharing, share_home, unshare_home

if TYPE_CHECKING:
    # Imported by init when it is given a token: an approve loads CertificateAuthority, and so this module.
    from tui_ca.engine.token_keys import TokenConfig

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def root_common_name(names: NameFields) -> str:
    """The root's CN: named after the organisation when there is one, as roots usually are."""
    return names_module.root_common_name(names)  # fits 64 characters for any legal O


class Setup(Publishing):
    def _write_files(self, files: list[tuple[str, bytes, int]], written: list[str], *, exclusive: bool) -> None:
        for relpath, data, mode in files:
            write_file(self.home, relpath, data, mode, exclusive=exclusive)
            written.append(relpath)

    def _refuse_leftovers(self) -> None:
        """A key or CA certificate already in the home is never overwritten, whatever the store says."""
        for relpath in (ISSUING_KEY, ROOT_KEY, ISSUING_CERT, ROOT_CERT, ISSUING_CSR):
            path = self.home / relpath
            if path.exists() or path.is_symlink():
                raise RuleError(
                    f"{path} exists but the store holds no CA (an earlier init did not finish?); "
                    "refusing to overwrite it: move the home's ca/ folder away to start again"
                )

    def _committed(self, test: Callable[[dict], bool]) -> bool:
        """Whether the store shows the operation committed; if it cannot say, assume it did (keep the files)."""
        try:
            return test(self.store.read(lambda view: view.config()))
        except Exception:
            return True

    def _undo_files(self, written: list[str]) -> None:
        for relpath in written:
            remove_file(self.home, relpath)

    def init(
        self,
        names: NameFields,
        *,
        days: int = DEFAULT_CA_DAYS,
        key_type: str = "ec-p256",
        base_url: str | None = None,
        external_root: bool = False,
        crl_days: int = DEFAULT_CRL_DAYS,
        queue_days: int = DEFAULT_QUEUE_DAYS,
        allow_wildcards: bool = False,
        actor: Actor | None = None,
        pkcs11: TokenConfig | None = None,
        pkcs11_keys: list[str] | None = None,
        admin_group: str | None = None,
    ) -> CAInfo | bytes:
        """Create root + issuing CA, or (external root) return the issuing CSR PEM.

        With ``pkcs11`` the keys are generated in that token (or, ``pkcs11_keys``,
        the existing ones with those labels, root first) and no key file is written.
        With ``admin_group`` the home is shared by that Unix group (sharing.py).
        """
        if self.exists() or self.awaiting_import():
            raise RuleError(f"a CA already exists in {self.home}; refusing to overwrite it")
        if not names.common_name:
            raise InputError("the CA needs a common name (--cn)")
        names_module.check_ca_fields(names)  # X.520 bounds
        if names.country is not None and not re.fullmatch(r"[A-Z]{2}", names.country):
            raise InputError(f"country must be a two-letter code such as GB, not {names.country!r}")
        if not 1 <= days <= 36500:
            raise InputError(f"--days must be between 1 and 36500, not {days}")
        if base_url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", base_url):
            raise InputError(f"--base-url must be an http:// or https:// URL, not {base_url!r}")
        if not 1 <= queue_days <= 3650:
            raise InputError(f"--queue-days must be between 1 and 3650, not {queue_days}")
        clock.check_crl_days(crl_days)
        passphrase = None if pkcs11 is not None else self._resolve_passphrase()
        check_new_passphrase(passphrase)
        shared_now = False
        if admin_group is not None and not (self.home / SHARING_FILE).exists():
            share_home(self.home, admin_group)
            shared_now = True
        elif admin_group is not None and Sharing.of(self.home).group != admin_group:
            raise InputError(f"{self.home} is shared with another group already ({SHARING_FILE})")
        now = self.now()
        made: list[str] = []  # keys this init generated in the token: destroyed unless it commits
        token_doc = None
        if pkcs11 is None:
            issuing_key = generate_key(key_type)
            root_key = None if external_root else generate_key(key_type)
        else:
            from tui_ca.engine import token_keys

            session = self.token_session(pkcs11)
            try:
                issuing_key, root_key, key_type = token_keys.init_keys(session, key_type, pkcs11_keys,
                                                                       external_root=external_root, made=made)  # fmt: skip
            except BaseException:
                self._destroy(made)
                raise
            token_doc = token_keys.token_settings(pkcs11, issuing_key, root_key)
        issuing_subject = build_name(names, with_email=False)
        config: dict[str, Any] = {"base_url": base_url.rstrip("/") if base_url else None, "crl_days": crl_days,
                                  "queue_days": queue_days, "key_type": key_type, "external_root": external_root,
                                  "allow_wildcards": allow_wildcards}  # fmt: skip
        if token_doc is not None:
            config["pkcs11"] = token_doc
        written: list[str] = []
        try:
            with self._operation(actor) as op:
                if op.txn.config():
                    raise RuleError(f"a CA already exists in {self.home}; refusing to overwrite it")
                self._refuse_leftovers()
                in_file = token_doc is None
                issuing_key_file = [(ISSUING_KEY, dump_key(issuing_key, passphrase), 0o600)] if in_file else []
                if external_root:
                    pem = build_issuing_csr(issuing_key, issuing_subject).public_bytes(serialization.Encoding.PEM)
                    self._write_files([*issuing_key_file, (ISSUING_CSR, pem, 0o644)], written, exclusive=True)
                    op.txn.put_config({**config, "awaiting_import": True})
                    op.audit("init", "issuing CA", "CSR written for an external root",
                             subject=issuing_subject.rfc4514_string(), admin_group=admin_group)  # fmt: skip
                    return pem
                assert root_key is not None
                root_names = NameFields(**{**names.__dict__, "common_name": root_common_name(names)})
                root = build_root(root_key, build_name(root_names), self._new_serial(),
                                  now - timedelta(minutes=5), now + timedelta(days=days))  # fmt: skip
                issuing = build_issuing(issuing_key.public_key(), issuing_subject, root, root_key,
                                        self._new_serial(), now - timedelta(minutes=5),
                                        now + timedelta(days=days), base_url.rstrip("/") if base_url else None)  # fmt: skip
                root_key_file = [(ROOT_KEY, dump_key(root_key, passphrase), 0o600)] if in_file else []
                self._write_files([
                    *issuing_key_file, *root_key_file,
                    (ROOT_CERT, root.public_bytes(serialization.Encoding.PEM), 0o644),
                    (ISSUING_CERT, issuing.public_bytes(serialization.Encoding.PEM), 0o644),
                ], written, exclusive=True)  # fmt: skip
                op.txn.put_config(config)
                op.audit("init", "root and issuing CA", "created", subject=issuing_subject.rfc4514_string(),
                         key_type=key_type, encrypted=passphrase is not None,
                         token=pkcs11.token if pkcs11 else None, admin_group=admin_group)  # fmt: skip
                self._keys[ISSUING_KEY] = issuing_key
                self._publish_crl(op, issuing, issuing_key)
                chain.publish_root_crl(self, op, root, root_key)
        except BaseException:
            self._keys.pop(ISSUING_KEY, None)
            if not self._committed(lambda config: bool(config)):
                self._undo_files(written)
                self._destroy(made)
                if shared_now:
                    unshare_home(self.home)
            raise
        return self.info()

    def _destroy(self, labels: list[str]) -> None:
        """Remove the token keys an init made; a token that has gone cannot be cleaned, and says so at the next init."""
        for label in labels:
            try:
                self._token.destroy(label)
            except CAError:
                pass

    def import_ca_cert(self, root_pem: bytes, issuing_pem: bytes, *, actor: Actor | None = None) -> CAInfo:
        """Finish an external-root setup with the certificates the other root signed."""
        if not self.awaiting_import():
            raise RuleError("no issuing-CA request is waiting for import (run 'init --external-root' first)")
        try:
            root = x509.load_pem_x509_certificate(root_pem)
            issuing = x509.load_pem_x509_certificate(issuing_pem)
        except ValueError:
            raise InputError("ROOT and ISSUING must be PEM certificates") from None
        key = self.signing_key()
        if issuing.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
            raise RuleError("the issuing certificate does not match the key whose CSR was written")
        try:
            issuing.verify_directly_issued_by(root)
        except (ValueError, TypeError, Exception) as exc:  # InvalidSignature is not a ValueError
            raise RuleError(
                f"the issuing certificate was not signed by the given root ({exc.__class__.__name__})"
            ) from None
        try:
            constraints = issuing.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise RuleError("the issuing certificate is not a CA certificate (BasicConstraints CA:TRUE missing)")
        try:
            issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            # CRLs and issued certificates name the CA by this key identifier (AKI).
            raise RuleError("the issuing certificate lacks a subject key identifier") from None
        written: list[str] = []
        try:
            with self._operation(actor) as op:
                config = op.txn.config()
                self._write_files([(ROOT_CERT, root.public_bytes(serialization.Encoding.PEM), 0o644),
                                   (ISSUING_CERT, issuing.public_bytes(serialization.Encoding.PEM), 0o644)],
                                  written, exclusive=False)  # fmt: skip
                op.txn.put_config({**config, "awaiting_import": False})
                op.audit("import-ca", "issuing CA", "imported", root=root.subject.rfc4514_string())
                self._publish_crl(op, issuing, key)
        except BaseException:
            if not self._committed(lambda config: config.get("awaiting_import") is False):
                self._undo_files(written)
            raise
        try:
            remove_file(self.home, ISSUING_CSR)  # after the commit: a CSR left behind is harmless
        except OSError:
            pass
        return self.info()
