"""Textual stylesheets, shipped inside the wheel as ``tui_ca.styles``."""
