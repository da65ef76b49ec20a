"""Errors the user can fix (bad input, missing files, mismatching settings).

Library code raises :class:`InputError` with a message naming the file and the
fix; the ``sanreid`` CLI turns it into a clean click error (exit 2).
"""


class InputError(Exception):
    """Bad input: the message names what was expected, where, and how to fix it."""
