"""Notifications: events of the CA delivered by command, SMTP mail or webhook.

Operations write events to an outbox in the store, in the transaction of the
change itself; a worker (``tui-ca notify run``, or a task in ``serve``)
delivers them with retries, auditing each outcome. See ``outbox.py``.
"""

# No re-exports: the CLI imports config.py alone, and channels.py pulls in
# smtplib, email and urllib, which every other command would pay for.

# The settings file in the home. Here, not in config.py, so that an operation
# can see there is none without importing the notification code (authority.py).
CONFIG_FILE = "notify.json"
