"""The delivery worker: ``tui-ca notify run`` from cron, or a task in ``serve``.

One pass writes the daily expiry notice when it is due, claims what is due in
the outbox, delivers it with no store lock held, and records every outcome.
A pass never raises for a delivery problem: those are retried and audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta

from tui_ca.engine.notify.channels import DeliveryError, deliver
from tui_ca.engine.notify.config import Channel, NotifyConfig
from tui_ca.engine.notify.events import expiry_event
from tui_ca.engine.notify.outbox import DEFAULT_LEASE, OutboxStore, claim, drop_channel, enqueue, record

# How often serve's task looks at the outbox; events are minutes-grade news.
DEFAULT_INTERVAL = 30.0
_EXPIRY_STATE = "expiry_notice_date"

Sender = Callable[[Channel, dict], None]


@dataclass(frozen=True)
class RunSummary:
    """What one pass did."""

    delivered: int = 0
    """Deliveries that succeeded."""
    retried: int = 0
    """Deliveries that failed and will be tried again."""
    given_up: int = 0
    """Deliveries that failed for the last time."""
    dropped: int = 0
    """Deliveries to channels removed meanwhile."""
    expiry_notice: bool = False
    """Whether this pass wrote the day's expiry notice."""

    def describe(self) -> str:
        parts = [f"{self.delivered} delivered", f"{self.retried} to retry", f"{self.given_up} given up"]
        if self.dropped:
            parts.append(f"{self.dropped} dropped (channel removed)")
        if self.expiry_notice:
            parts.append("expiry notice written")
        return ", ".join(parts)


def enqueue_daily_expiry(store: OutboxStore, config: NotifyConfig, now: datetime,
                         report: Callable[[int], dict]) -> bool:  # fmt: skip
    """Write today's expiry notice once (UTC day), if a channel wants it and anything ends in the window."""
    channels = [c.name for c in config.wanting("expiry") if "expiry" in c.events]
    if not channels:
        return False
    today = now.date().isoformat()
    with store.outbox_transaction() as records:
        if records.state(_EXPIRY_STATE) == today:
            return False
    # The report reads every certificate: made outside the lock, then the
    # day is checked again inside it so two workers write one notice.
    data = report(config.window_days)
    with store.outbox_transaction() as records:
        if records.state(_EXPIRY_STATE) == today:
            return False
        records.set_state(_EXPIRY_STATE, today)
        if not data["items"]:
            return False
        return enqueue(records, expiry_event(data, now), channels, now) is not None


def run_once(store: OutboxStore, config: NotifyConfig, clock: Callable[[], datetime], *,
             report: Callable[[int], dict] | None = None, send: Sender = deliver, limit: int = 50) -> RunSummary:  # fmt: skip
    """One pass of the worker (see the module docstring)."""
    notice = enqueue_daily_expiry(store, config, clock(), report) if report is not None else False
    counts = {"delivered": 0, "retry": 0, "given up": 0, "gone": 0}
    dropped = 0
    wanting = lambda kind: [c.name for c in config.wanting(kind)]  # noqa: E731
    # The lease outlives the slowest possible pass, so no second worker takes
    # a delivery this one is still making.
    slowest = max((c.timeout for c in config.channels), default=0.0)
    lease = max(DEFAULT_LEASE, timedelta(seconds=60 + limit * slowest))
    for delivery in claim(store, clock(), limit=limit, lease=lease, channels_for=wanting):
        channel = config.channel(delivery.channel)
        if channel is None:
            drop_channel(store, delivery)
            dropped += 1
            continue
        try:
            send(channel, delivery.event)
            error = None
        except DeliveryError as exc:
            error = str(exc)
        counts[record(store, delivery, clock(), error)] += 1
    return RunSummary(delivered=counts["delivered"], retried=counts["retry"], given_up=counts["given up"],
                      dropped=dropped, expiry_notice=notice)  # fmt: skip


async def run_forever(one_pass: Callable[[], RunSummary], executor: Executor, *, interval: float = DEFAULT_INTERVAL,
                      stop: asyncio.Event, on_error: Callable[[Exception], None] | None = None) -> None:  # fmt: skip
    """``serve``'s background task: a pass every ``interval`` seconds in ``executor`` until ``stop`` is set.

    A pass that fails (a damaged settings file, a store error) is reported
    through ``on_error`` and tried again next time; it never ends the server.
    """
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            await loop.run_in_executor(executor, one_pass)
        except Exception as exc:  # noqa: BLE001 - the server must keep answering
            if on_error is not None:
                on_error(exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
