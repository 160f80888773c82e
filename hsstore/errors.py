"""Errors meant for a person: one line that names the problem and what to do."""


class HsError(Exception):
    """A problem with the user's input or environment; the CLI prints it without a traceback."""
