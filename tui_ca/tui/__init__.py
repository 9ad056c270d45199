"""The full-screen Textual UI."""
