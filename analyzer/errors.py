"""Errors that end a command with a one-line message and exit status 2."""


class InputError(Exception):
    """The input cannot be used: missing file, not a capture, no permission to sniff."""
