"""The command word of a ``tui-ca`` command line, found without argparse.

Both the console script (which decides, before importing anything else,
whether a command server may run the command) and the CLI's parser (which
then builds only that command's arguments) need it.
"""

from __future__ import annotations

GLOBAL_WITH_VALUE = ("--home", "--passphrase-file", "--database", "--database-password-file")
"""The global options that take a value, as the CLI's parser defines them."""


def chosen_command(argv: list[str]) -> str | None:
    """The command word in ``argv`` (the first word that is not a global option or its value)."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word.startswith("--") and "=" not in word and any(o.startswith(word) for o in GLOBAL_WITH_VALUE):
            next(words, None)  # --home DIR, or an abbreviation argparse accepts (--ho DIR)
        elif not word.startswith("-"):
            return word
    return None
