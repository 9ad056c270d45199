"""Notifications: events of the CA delivered by command, SMTP mail or webhook.

Operations write events to an outbox in the store, in the transaction of the
change itself; a worker (``tui-ca notify run``, or a task in ``serve``)
delivers them with retries, auditing each outcome. See ``outbox.py``.
"""

from tui_ca.engine.notify.channels import DeliveryError, deliver
from tui_ca.engine.notify.config import Channel, NotifyConfig, NotifyConfigError, load_config, make_channel
from tui_ca.engine.notify.outbox import OutboxRecords, OutboxStore
from tui_ca.engine.notify.worker import RunSummary, run_once

__all__ = [
    "Channel",
    "DeliveryError",
    "NotifyConfig",
    "NotifyConfigError",
    "OutboxRecords",
    "OutboxStore",
    "RunSummary",
    "deliver",
    "load_config",
    "make_channel",
    "run_once",
]
