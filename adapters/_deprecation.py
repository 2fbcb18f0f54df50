"""Old argument names that keep working for one release, with a `DeprecationWarning`.

The adapters share one vocabulary (docs/concepts.md): `l21` for the strength, `targets` for
the chosen weights, `precondition` for the proximal threshold. This module imports nothing
but the standard library.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

__all__ = ["MISSING", "deprecated_alias", "old_order", "renamed"]


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


def deprecated_alias(old: str, new: str) -> None:
    """Warn that the function `old` is a deprecated name of `new` (called from `old`)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new} instead",
        DeprecationWarning,
        stacklevel=3,
    )


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def old_order(where: str, first: str, second: str, values: tuple[Any, Any]) -> tuple[Any, Any]:
    """`values` in the new order `(first, second)`, swapped when given in the old one.

    The new order puts a number first (a strength, `keep` or `target`) and the weights second;
    the old order was the weights then the number. The weights are never a real number, so a
    call whose first value is not one and whose second is one used the old order: it is
    swapped, with a `DeprecationWarning` pointing at the caller's caller.
    """
    a, b = values
    if _is_real(a) or not _is_real(b):
        return a, b
    warnings.warn(
        f"{where}({second}, {first}) is deprecated and will be removed in the next release; "
        f"pass {first} first: {where}({first}, {second}, ...)",
        DeprecationWarning,
        stacklevel=3,
    )
    return b, a
