"""The screens and dialogs of the UI, one module per screen."""
