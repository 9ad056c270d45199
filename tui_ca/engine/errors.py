"""The engine's exceptions. Each message is the sentence shown to the user.

The faces map them to outcomes by class: the CLI to exit codes, the server to
HTTP statuses, the UI to notifications. The engine knows none of those.
"""


class CAError(Exception):
    """Base of every refusal the engine reports; ``str(exc)`` is user-facing.

    ``public`` is what a network client that does not own the requester in
    question may be told: the same sentence unless it would name another
    requester's Certificate ID or serial, which stay in ``str(exc)`` for the
    admin's log.
    """

    def __init__(self, message: str = "", *, public: str | None = None) -> None:
        super().__init__(message)
        self.public = message if public is None else public


class RuleError(CAError):
    """A well-formed request that a CA rule refuses (state, policy, duplicates)."""


class InputError(CAError):
    """Input that cannot be used at all: not a CSR, unknown ID, bad value."""


class NotFoundError(InputError):
    """No request or certificate matches the given ID or serial."""


class NoCAError(RuleError):
    """The home holds no CA yet (run ``tui-ca init``)."""


class KeyLockedError(RuleError):
    """The CA key is encrypted and no passphrase was supplied (or it was wrong)."""


class UnsafeHomeError(RuleError):
    """A key file or the home can be read by other users."""


class TokenError(RuleError):
    """The PKCS#11 token holding the CA keys is absent, removed, locked or refused an operation."""
