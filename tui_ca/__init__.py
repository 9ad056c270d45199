"""tui-ca: a certificate authority run from a terminal UI."""

__version__ = "0.1.0"
