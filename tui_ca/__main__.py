from tui_ca.launch import entry_point

entry_point()
