"""Old argument names that keep working for one release, with a `DeprecationWarning`.

The adapters share one vocabulary (docs/concepts.md): `l21` for the strength, `targets` for
the chosen weights, `precondition` for the proximal threshold. This module imports nothing
but the standard library.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["MISSING", "renamed"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def renamed(where: str, new: str, new_value: Any, old: str, old_value: Any) -> Any:
    """The value of argument `new`, taken from its deprecated name `old` if that was given.

    Warns (`DeprecationWarning`, pointing at the caller's caller) when `old` is used; a
    `TypeError` when both or neither are given.
    """
    if old_value is MISSING:
        if new_value is MISSING:
            raise TypeError(f"{where}() missing required argument: {new!r}")
        return new_value
    if new_value is not MISSING:
        raise TypeError(f"{where}() got both {new!r} and its deprecated name {old!r}")
    warnings.warn(
        f"{where}({old}=...) is deprecated and will be removed in the next release; "
        f"use {new}=... instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value
