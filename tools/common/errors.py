"""The error the command line prints in one line: bad input that a user can fix."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input a user can fix (a config key, a data or model file); the message names it, and the
    command line prints it in one line (exit code 2) instead of a traceback."""
