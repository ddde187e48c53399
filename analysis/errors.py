"""The one error type that carries a message meant for the person who supplied the input."""

from __future__ import annotations


class InputError(ValueError):
    """A file, array or request that cannot be used; ``str(err)`` is shown to the user as is."""
