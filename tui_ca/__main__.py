from tui_ca.cli import entry_point

entry_point()
