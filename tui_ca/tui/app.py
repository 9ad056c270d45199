"""The Textual application: one CA home, its screens, and the engine workers.

Every engine call runs in a thread worker and posts its result back as a
message, so neither disk nor crypto ever holds up a key press. Changes made by
other processes are noticed by polling the store's change token (one stat call)
and re-reading in a worker only when it moved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker

from tui_ca.engine import Actor, CAError, CAInfo, CertificateAuthority
from tui_ca.engine.errors import KeyLockedError
from tui_ca.tui.crl import republish_due
from tui_ca.tui.data import Snapshot, count_expiring, covers_everything, read_first_screen, read_snapshot
from tui_ca.tui.messages import ExpiringCounted, OperationDone, SnapshotLoaded
from tui_ca.tui.roles import denials

Passphrase = bytes | Callable[[], bytes | None] | None

# The issue asks for other processes' changes within 2 s; one stat a second
# is cheap enough to never matter.
POLL_SECONDS = 1.0
# Every file read in an engine worker releases the GIL; with Python's default
# 5 ms switch interval the worker then waits up to 5 ms for the busy UI thread
# to hand it back, once per read (measured: an 8 ms first read took 110 ms
# while the first screen was being built, so the rows came one paint late).
# At 1 ms the first read lands before the first paint, and the UI thread also
# gets the GIL back sooner from a worker parsing a big home.
SWITCH_INTERVAL = 0.001
BELL_OFF = ("0", "off", "no", "false")


def stylesheet() -> Path:
    """The shipped stylesheet (inside the wheel as the package ``tui_ca.styles``)."""
    return Path(str(files("tui_ca.styles").joinpath("app.tcss")))


def _actions_provider():
    # Imported when the palette opens, not at start-up.
    from tui_ca.tui.palette import ActionsProvider

    return ActionsProvider


class CAApp(App[int]):
    """Certificate management for one CA home."""

    CSS_PATH = [stylesheet()]
    TITLE = "tui-ca"
    # Ctrl+P: every action of the current screen, searchable (tui_ca.tui.palette).
    COMMAND_PALETTE_BINDING = "ctrl+p"
    COMMANDS = {_actions_provider}
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Leave tui-ca", id="app.quit"),
        Binding("question_mark", "help", "Keys", tooltip="Every key, and what it does", id="app.help"),
    ]

    def __init__(
        self,
        home: Path,
        *,
        passphrase: Passphrase = None,
        clock: Callable[[], datetime] | None = None,
        actor: Actor | None = None,
        serials: Callable[[], int] | None = None,
        poll_interval: float = POLL_SECONDS,
        bell: bool | None = None,
    ) -> None:
        super().__init__()
        self.bell_on_new = bell if bell is not None else os.environ.get("TUI_CA_BELL", "on").lower() not in BELL_OFF
        """Ring the terminal bell when a new request arrives (``TUI_CA_BELL=off`` silences it)."""
        self._queued_seen: set[int] | None = None
        self.home = Path(home)
        self._passphrase = passphrase
        self._secret: bytes | None = passphrase if isinstance(passphrase, bytes) else None
        self.ca = CertificateAuthority(self.home, clock=clock, actor=actor, passphrase=self._current_secret,
                                       serials=serials)  # fmt: skip
        self.poll_interval = poll_interval
        self.ready_event = asyncio.Event()
        """Set once the main screen shows its first read of the CA."""
        self.loaded_event = asyncio.Event()
        """Set once every record has been read (after ``ready_event`` on a big CA)."""
        self._token: object = None
        self._load_worker: Worker[None] | None = None
        self._next_read_at = 0.0
        """``time.monotonic()`` before which a change seen by the poll waits (see ``reload``)."""
        self._painted = threading.Event()
        self._info: CAInfo | None = None
        self._crl_tried: set[int | None] = set()
        """CRL numbers already re-published (or refused): each is tried once."""
        self.export_dir = Path.cwd()
        """Where the export dialog proposes to write."""
        self.denied: dict[str, str] = {}
        """Operations this admin's roles do not allow, with the engine's reason (tui_ca.tui.roles)."""
        self.latest_snapshot: Snapshot | None = None
        """The last read, for a main screen composed after it arrived."""
        self.expiring_count: int | None = None
        """The last count of certificates ending soon (``None`` until counted)."""
        self._early = self._start_early_read()
        self._early_unused = True
        """The first ``reload`` has not taken the early read's result yet."""

    def _start_early_read(self) -> concurrent.futures.Future[Snapshot | None]:
        """Read the first screen while Textual starts (its stylesheet, driver, screens).

        Begun here, the read is usually done before the main screen is mounted, which then
        draws it in its first frame: one layout, where a read that lands after the first
        frame costs a second layout and frame (bench/ui_startup.py: ~30 ms of CPU at 100k).
        A plain thread, as no Textual worker can run before the app does; the first
        ``reload`` worker takes its result.
        """
        future: concurrent.futures.Future[Snapshot | None] = concurrent.futures.Future()

        def read() -> None:
            try:
                future.set_result(read_first_screen(self.ca) if self.ca.exists() else None)
            except BaseException as exc:  # handed to the reload worker, which reports it
                future.set_exception(exc)

        threading.Thread(target=read, name="tui-ca-first-read", daemon=True).start()
        return future

    def _still_current(self, snapshot: Snapshot) -> bool:
        """Nobody committed since ``snapshot`` was read (one stat: the poll does the same every second)."""
        try:
            return snapshot.token == self.ca.change_token()
        except OSError:
            return False

    def early_snapshot(self) -> Snapshot | None:
        """The early first-screen read if it is done and worth drawing now (never waits)."""
        if self.latest_snapshot is not None:
            return self.latest_snapshot
        early = self._early
        if not early.done() or early.exception() is not None:
            return None
        first = early.result()
        if first is None or covers_everything(first) or not self._still_current(first):
            return None  # a small CA paints once, after the full read, as the reload worker does
        self._announce_arrivals(first)
        self._info = first.info
        self.latest_snapshot = first
        return first

    def _current_secret(self) -> bytes | None:
        return self._secret

    def use_passphrase(self, secret: bytes | None) -> None:
        """The CA keys' passphrase from now on (the first-run screen sets the one it encrypts with)."""
        self._secret = secret

    # ------------------------------------------------------------ start

    def on_load(self) -> None:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        # The first read starts before the stylesheet is applied and the main screen
        # composed, so its rows are often there for the first frame (one layout, not two).
        if self.ca.exists():
            self._load_worker = self.reload()

    def on_unmount(self) -> None:
        sys.setswitchinterval(getattr(self, "_switch_interval", sys.getswitchinterval()))

    def on_mount(self) -> None:
        from tui_ca.tui.screens.first_run import FirstRunScreen

        if not self.ca.exists():
            self.push_screen(FirstRunScreen(), self._created)
        else:
            self.open_main()
        self.fit_terminal()

    # ------------------------------------------------------------ size

    def on_resize(self) -> None:
        self.fit_terminal()

    def fit_terminal(self) -> None:
        """Cover the UI while the terminal is below 80x24; uncover it once it is big enough."""
        from tui_ca.tui.screens.too_small import TooSmallScreen, too_small

        if not self.screen_stack:
            return  # closing: the poll timer can fire once the screens are gone
        if too_small(self.size):
            if not isinstance(self.screen, TooSmallScreen):
                self.push_screen(TooSmallScreen())
        else:
            while isinstance(self.screen, TooSmallScreen):
                self.pop_screen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        from tui_ca.tui.screens.too_small import TooSmallScreen

        if action == "help" and isinstance(self.screen, TooSmallScreen):
            return False
        return True

    def _created(self, created: bool | None) -> None:
        if created:
            self.open_main()
        else:
            self.exit(0)

    def open_main(self) -> None:
        from tui_ca.tui.screens.main import MainScreen

        self.push_screen(MainScreen())
        self.set_interval(self.poll_interval, self.poll, name="poll-change-token")
        if self.ca.key_is_encrypted():
            if self._secret is None and callable(self._passphrase):
                self._secret = self._passphrase()
            if self._secret is None:
                self.ask_passphrase()
            else:
                # A passphrase typed at the terminal prompt is checked now, not
                # at the first approval: a typo gets the dialog and a retry.
                self.check_passphrase()
        if self._load_worker is None:
            self._load_worker = self.reload()

    def ask_passphrase(self, error: str | None = None) -> None:
        from tui_ca.tui.screens.dialogs import PassphraseDialog

        dialog = PassphraseDialog("Unlock the CA key", "The issuing CA's key is encrypted. "
                                  "Without it you can look, but not approve or revoke.")  # fmt: skip
        self.push_screen(dialog, self._got_passphrase)
        if error:
            self.call_after_refresh(dialog.show_error, error)

    def _got_passphrase(self, secret: bytes | None) -> None:
        if secret is None:
            self.notify("The CA key stays locked: approving and revoking will ask again.", severity="warning")
            return
        self._secret = secret
        self.check_passphrase()

    @work(thread=True, group="unlock")
    def check_passphrase(self) -> None:
        try:
            self.ca.unlock()
        except KeyLockedError as exc:
            self._secret = None
            self.call_from_thread(self.ask_passphrase, str(exc))
        except CAError as exc:
            self.post_message(OperationDone(str(exc), ok=False))

    # ------------------------------------------------------------ reading

    def poll(self) -> None:
        try:
            token = self.ca.change_token()
        except OSError:
            return
        self.fit_terminal()  # a dialog a worker opened may have covered the size message
        loading = self._load_worker is not None and not self._load_worker.is_finished
        if token != self._token and not loading and time.monotonic() >= self._next_read_at:
            self._load_worker = self.reload()
        self.watch_crl()

    # ------------------------------------------------------------ CRL

    def watch_crl(self) -> None:
        """Keep the header's CRL line current and re-publish the CRL at half its life."""
        info = self._info
        if info is None:
            return
        now = self.ca.now()
        for screen in self.screen_stack:
            tick = getattr(screen, "tick", None)
            if tick is not None:
                tick(now)
        number = info.crl_number
        if number in self._crl_tried or not republish_due(info, now):
            return
        from tui_ca.tui.screens.dialogs import PassphraseDialog

        if isinstance(self.screen, PassphraseDialog):
            return  # one question at a time; ask again on a later tick
        self._crl_tried.add(number)
        if info.key_encrypted and self._secret is None:
            self._ask_for_crl(number)
        else:
            self.republish_crl(number)

    def _ask_for_crl(self, number: int | None) -> None:
        from tui_ca.tui.screens.dialogs import PassphraseDialog

        dialog = PassphraseDialog("Unlock the CA key to re-publish the CRL",
                                  f"CRL {number} has passed half its life and should be re-published now. "
                                  "The CA key is encrypted; without it the CRL will go stale.")  # fmt: skip
        self.push_screen(dialog, lambda secret: self._crl_passphrase(number, secret))

    def _crl_passphrase(self, number: int | None, secret: bytes | None) -> None:
        if secret is None:
            self._crl_locked(number, "the CA key stays locked")
            return
        self._secret = secret
        self.republish_crl(number)

    def _crl_locked(self, number: int | None, why: str) -> None:
        self.notify(f"CRL {number} was not re-published: {why}. Relying parties will refuse every certificate "
                    "once it goes stale; publish one (tui-ca crl) before then.", severity="warning", timeout=30)  # fmt: skip

    @work(thread=True, exclusive=True, group="crl")
    def republish_crl(self, number: int | None) -> None:
        try:
            # Another admin's UI (or cron) may have published since the last read.
            if self.ca.info().crl_number != number:
                return
            published = self.ca.publish_crl()
        except KeyLockedError as exc:
            self._secret = None
            self.call_from_thread(self._crl_locked, number, str(exc))
            return
        except (CAError, OSError) as exc:
            self.post_message(OperationDone(f"CRL {number} could not be re-published: {exc}", ok=False))
            return
        self.post_message(
            OperationDone(
                f"CRL {number} had passed half its life: CRL {published.number} "
                f"published, next update {published.next_update:%Y-%m-%d %H:%M} UTC."
            )
        )

    @work(thread=True, exclusive=True, group="load")
    def reload(self) -> None:
        started = time.thread_time()
        try:
            early = self._early if self._early_unused else None
            self._early_unused = False
            if self._token is None:
                # First start: show the queue and a screenful at once; a CA
                # with 100,000 certificates takes seconds to read in full.
                first = early.result() if early is not None else None
                if first is None or not self._still_current(first):
                    first = read_first_screen(self.ca)
                if not covers_everything(first):
                    # The full read holds the GIL for seconds; let the first
                    # screen reach the terminal before it starts.
                    self._painted.clear()
                    self.post_message(SnapshotLoaded(first))
                    self._painted.wait(timeout=2.0)
            snapshot = read_snapshot(self.ca)
            denied = denials(self.ca)
        except CAError as exc:
            self.post_message(OperationDone(str(exc), ok=False))
            return
        finally:
            # A full read streams every record (seconds of CPU at 100,000, nothing kept
            # between reads); a store that changes every second must not keep a core
            # busy, so the poll waits as long as the read's own CPU time (this thread's:
            # a small CA's read stays a few milliseconds however loaded the machine is).
            self._next_read_at = time.monotonic() + (time.thread_time() - started)
        if denied != self.denied:
            self.call_from_thread(setattr, self, "denied", denied)
        self.post_message(SnapshotLoaded(snapshot))
        # After the lists are shown (the count walks the listing's notAfter column).
        self.post_message(ExpiringCounted(count_expiring(snapshot), snapshot.token))

    def _announce_arrivals(self, snapshot) -> None:
        """A request that was not queued at the last read rings the bell and gets a toast."""
        queued = set(snapshot.queued.keys)
        if self.title != (title := f"tui-ca: {len(queued):,} queued"):
            self.title = title
            self._terminal_title(title)
        new = sorted(queued - self._queued_seen) if self._queued_seen is not None else []
        self._queued_seen = queued
        if not new:
            return
        if self.bell_on_new:
            self.bell()
        names = []
        for key in new[:3]:
            try:
                names.append(f"{key} from {snapshot.queued.fetch(key).cells[1]}")
            except KeyError:
                names.append(str(key))
        more = f" and {len(new) - 3} more" if len(new) > 3 else ""
        self.notify(f"New request{'s' if len(new) > 1 else ''} {', '.join(names)}{more}; {len(queued):,} queued.",
                    title="Queued", markup=False, timeout=8)  # fmt: skip

    def _terminal_title(self, title: str) -> None:
        # The window or tab title (OSC 2), so the queue shows while the admin is in another window.
        driver = getattr(self, "_driver", None)
        if driver is not None and not self.is_headless:
            driver.write(f"\x1b]2;{title}\x07")

    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        self._announce_arrivals(message.snapshot)
        changed = message.snapshot.token != self._token
        self._token = message.snapshot.token
        self._info = message.snapshot.info
        self.latest_snapshot = message.snapshot
        drawn = False
        for screen in self.screen_stack:
            apply = getattr(screen, "apply_snapshot", None)
            if apply is not None:
                drawn |= apply(message.snapshot, changed) is True
        # "Ready" means on screen: set once the refresh with these rows is done, by the
        # main screen's own mount (``shown``) when the read arrived before it was composed.
        if drawn:
            self.call_after_refresh(self._shown, message.snapshot.partial)

    def on_expiring_counted(self, message: ExpiringCounted) -> None:
        self.expiring_count = message.count
        for screen in self.screen_stack:
            show = getattr(screen, "show_expiring", None)
            if show is not None:
                show(message.count)

    def shown(self, partial: bool) -> None:
        """The main screen drew a read that arrived before it was composed: ready once that frame is out."""
        self.call_after_refresh(self._shown, partial)

    def _shown(self, partial: bool) -> None:
        self.ready_event.set()
        self._painted.set()
        if not partial:
            self.loaded_event.set()

    # ------------------------------------------------------------ changing

    @work(thread=True, group="operation")
    def operate(self, call: Callable[[], Any], describe: Callable[[Any], str],
                after: Callable[[Any], None] | None = None) -> None:  # fmt: skip
        """Run one engine operation; announce its outcome; re-read the CA."""
        try:
            result = call()
            summary = describe(result)
        except CAError as exc:
            self.post_message(OperationDone(str(exc), ok=False))
            return
        except OSError as exc:
            self.post_message(OperationDone(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), ok=False))
            return
        if after is not None:
            self.call_from_thread(after, result)
        self.post_message(OperationDone(summary))

    def on_operation_done(self, message: OperationDone) -> None:
        self.notify(message.summary, severity="information" if message.ok else "error",
                    timeout=6 if message.ok else 10)  # fmt: skip
        self.reload()

    def action_help(self) -> None:
        from tui_ca.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


NO_TERMINAL = ("tui-ca: the UI needs a terminal (stdin and stdout are not one); "
               "use ssh -t, or a command such as tui-ca list")  # fmt: skip


def run_app(home: Path, passphrase: Passphrase) -> int:
    """Open the UI on ``home`` (the ``tui-ca`` and ``tui-ca demo`` commands)."""
    from tui_ca.engine.reader import CAReader

    # Without a terminal Textual would write escape codes into the pipe and
    # wait for keys that never come.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(NO_TERMINAL, file=sys.stderr)
        return 2

    secret = passphrase if isinstance(passphrase, bytes) else None
    # A callable may ask on the terminal, so it runs before the UI takes the
    # screen over; when it gives nothing the UI asks in a dialog instead.
    reader = CAReader(home)
    if callable(passphrase) and reader.exists() and reader.key_is_encrypted():
        try:
            secret = passphrase()
        except CAError:
            secret = None
    result = CAApp(home, passphrase=secret).run()
    return result if isinstance(result, int) else 0
