"""One certificate: its facts, and revoke or export it."""

from __future__ import annotations

import os
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Label

from tui_ca.engine import CAError, Certificate, CertStatus, InputError, RevocationReason
from tui_ca.engine.models import group_fingerprint
from tui_ca.tui.actions import REVOKE_WARNING, ask_revoke  # noqa: F401  (the warning is re-exported)
from tui_ca.tui.ca_app import ca_app
from tui_ca.tui.data import Snapshot
from tui_ca.tui.roles import RoleKeys
from tui_ca.tui.screens.dialogs import ConfirmDialog, ExportDialog
from tui_ca.tui.text import days_left, literal, reading_lines, visible, when
from tui_ca.tui.widgets.details import Details


def certificate_facts(cert: Certificate, issuer: str, now) -> list[tuple[str, Text | str]]:
    status = cert.status_at(now)
    status_text = Text(status.value, style={"valid": "bold green", "revoked": "bold red"}.get(status.value, "bold"))
    if status is CertStatus.VALID:
        status_text.append(f" ({days_left(cert.not_after, now)} days left)", style="")
    rows: list[tuple[str, Text | str]] = [
        ("Certificate ID", str(cert.id)),
        ("Status", status_text),
        ("Requester", literal(cert.requester)),
        ("Serial", cert.serial_hex),
        ("Subject", literal(cert.subject, limit=400)),
        ("Issuer", literal(issuer, limit=400)),
        ("Not before", when(cert.not_before)),
        ("Not after", when(cert.not_after)),
        ("SANs", literal(", ".join(cert.sans)) if cert.sans else Text("none", style="dim")),
        ("Key", cert.key_type),
        ("SPKI SHA-256", Text(reading_lines(group_fingerprint(cert.spki_sha256)), style="bold")),
    ]
    if cert.name_warning:
        rows.insert(9, ("Warning", Text(cert.name_warning, style="bold yellow")))
    issued = Text(f"{when(cert.issued_at)} by ")
    issued.append(visible(cert.issued_by.describe(), 80))
    rows.append(("Issued", issued))
    if cert.revoked_at is not None:
        revoked = Text(f"{when(cert.revoked_at)} by ")
        revoked.append(visible(cert.revoked_by.describe() if cert.revoked_by else None, 80))
        if cert.revocation_reason is not None:
            revoked.append(f", reason {cert.revocation_reason.value}")
        rows.append(("Revoked", revoked))
    return rows


UNHOLD_NOTE = ("It becomes valid again and a new CRL without it is published at once; relying parties that "
               "cached the old CRL or an OCSP answer see it as revoked until they fetch again.")  # fmt: skip


def on_hold(cert: Certificate | None) -> bool:
    """Whether ``cert`` is revoked with certificateHold, the one reason that can be released."""
    return (
        cert is not None and cert.revoked_at is not None and cert.revocation_reason is RevocationReason.CERTIFICATE_HOLD
    )


def default_export_path(folder: Path, cert: Certificate) -> Path:
    return folder / f"certificate-{cert.id}.pem"


def write_pem(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write the export, refusing a missing folder and (unless told) an existing file."""
    if not path.parent.is_dir():
        raise InputError(f"The folder {path.parent} does not exist; nothing was written.")
    if path.is_dir():
        raise InputError(f"{path} is a folder; type a file name.")
    try:
        with open(path, "wb" if overwrite else "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except FileExistsError:
        raise _Exists(str(path)) from None
    except OSError as exc:
        raise InputError(f"Cannot write {path}: {exc.strerror}.") from None


class _Exists(InputError):
    """The export target exists and overwriting was not confirmed."""


class CertificateScreen(RoleKeys):
    """A certificate's details; revoke, release a hold, or export it."""

    ROLE_KEYS = {"v": "revoke", "u": "unhold"}
    BINDINGS = [
        Binding("v", "revoke", "Revoke", tooltip="Revoke and publish a new CRL", id="certificate.revoke"),
        Binding(
            "u",
            "unhold",
            "Release hold",
            tooltip="Release the certificateHold: valid again, off the next CRL",
            id="certificate.unhold",
        ),  # fmt: skip
        Binding("e", "export", "Export", tooltip="Write the PEM with its chain to a file", id="certificate.export"),
        Binding(
            "y",
            "item('copy')",
            "Copy",
            tooltip="Copy the SPKI fingerprint, serial or PEM (OSC 52)",
            id="certificate.copy",
        ),  # fmt: skip
        Binding("p", "item('view')", "As text", tooltip="As text (openssl-like), with the PEM", id="certificate.text"),
        Binding("escape", "close", "Back", tooltip="Back to the lists", id="certificate.close"),
    ]

    def __init__(self, cert_id: int) -> None:
        super().__init__()
        self.cert_id = cert_id
        self.cert: Certificate | None = None
        self.now = None

    def compose(self) -> ComposeResult:
        yield Label(f"Certificate {self.cert_id}", classes="screen-title")
        with VerticalScroll(id="certificate-body"):
            yield Details("Reading the certificate…", id="certificate-details")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def apply_snapshot(self, snapshot: Snapshot, changed: bool) -> None:
        if changed:
            self.load()

    @work(thread=True, exclusive=True, group="certificate-load")
    def load(self) -> None:
        ca = ca_app(self).ca
        try:
            cert = ca.certificate(self.cert_id)
            issuer = ca.issuing_cert().subject.rfc4514_string()
            now = ca.now()
        except CAError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._show, cert, issuer, now)

    def _show(self, cert: Certificate, issuer: str, now) -> None:
        self.cert, self.now = cert, now
        self.query_one("#certificate-details", Details).show(certificate_facts(cert, issuer, now))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "unhold":
            # Shown only for a certificate on hold: every other revocation is final.
            if not on_hold(self.cert):
                return False
            return None if self.role_denied(action) else True
        if action == "revoke":
            if self.role_denied(action):
                return None
            return True if self.cert is not None and self.cert.revoked_at is None else None
        if action == "export":
            return True if self.cert is not None else None
        return True

    def action_close(self) -> None:
        self.dismiss()

    def action_item(self, then: str) -> None:
        from tui_ca.tui.screens.item_text import open_item

        open_item(ca_app(self), "certificate", self.cert_id, then)

    # ------------------------------------------------------------ revoke

    def action_revoke(self) -> None:
        if self.cert is None or self.cert.revoked_at is not None:
            return
        ask_revoke(ca_app(self), [self.cert])

    # ------------------------------------------------------------ release a hold

    def action_unhold(self) -> None:
        cert = self.cert
        if cert is None or not on_hold(cert):
            return
        body = Text(f"Certificate {cert.id} of ")
        body.append(visible(cert.requester, 60), style="bold")
        body.append(f", serial {cert.serial_hex}, was put on hold ({when(cert.revoked_at)}).\n\n{UNHOLD_NOTE}")
        dialog = ConfirmDialog(f"Release the hold on certificate {cert.id}?", body, confirm_label="Release")
        self.app.push_screen(dialog, lambda yes: self._unhold(cert.id) if yes else None)

    def _unhold(self, cert_id: int) -> None:
        ca = ca_app(self).ca

        def describe(cert: Certificate) -> str:
            return f"Certificate {cert.id} released from hold: valid again; CRL {ca.info().crl_number} published."

        ca_app(self).operate(lambda: ca.unhold(cert_id), describe)

    # ------------------------------------------------------------ export

    def action_export(self) -> None:
        if self.cert is None:
            return
        body = Text(f"Certificate {self.cert.id}, serial {self.cert.serial_hex}")
        self.app.push_screen(ExportDialog(f"Export certificate {self.cert.id}", body,
                                          default_export_path(ca_app(self).export_dir, self.cert)), self._export)  # fmt: skip

    def _export(self, path: Path | None, overwrite: bool = False) -> None:
        if path is None:
            return
        self.export_to(path, overwrite)

    @work(thread=True, group="export")
    def export_to(self, path: Path, overwrite: bool) -> None:
        try:
            write_pem(path, ca_app(self).ca.certificate_pem(self.cert_id, chain=True), overwrite=overwrite)
        except _Exists:
            self.app.call_from_thread(self._ask_overwrite, path)
            return
        except CAError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error", timeout=10)
            return
        self.app.call_from_thread(self.app.notify, f"Certificate {self.cert_id} and its chain written to {path}.")

    def _ask_overwrite(self, path: Path) -> None:
        dialog = ConfirmDialog("Replace the file?", Text(f"{path} exists. Replace it?"), confirm_label="Replace")
        self.app.push_screen(dialog, lambda yes: self._overwrite(path, yes))

    def _overwrite(self, path: Path, yes: bool | None) -> None:
        if yes:
            self.export_to(path, True)
        else:
            self.app.notify(f"Nothing written; {path} was left as it was.", severity="warning")
