"""The engine's exceptions. Each message is the sentence shown to the user.

The faces map them to outcomes: the CLI to exit codes (``RuleError`` → 1,
``InputError`` → 2), the server to HTTP statuses, the UI to notifications.
"""


class CAError(Exception):
    """Base of every refusal the engine reports; ``str(exc)`` is user-facing."""

    exit_code = 1


class RuleError(CAError):
    """A well-formed request that a CA rule refuses (state, policy, duplicates)."""

    exit_code = 1


class InputError(CAError):
    """Input that cannot be used at all: not a CSR, unknown ID, bad value."""

    exit_code = 2


class NotFoundError(InputError):
    """No request or certificate matches the given ID or serial."""


class NoCAError(RuleError):
    """The home holds no CA yet (run ``tui-ca init``)."""


class KeyLockedError(RuleError):
    """The CA key is encrypted and no passphrase was supplied (or it was wrong)."""


class UnsafeHomeError(RuleError):
    """A key file or the home can be read by other users."""
