"""Old argument names that keep working for one release, with a `DeprecationWarning`.

The adapters share one vocabulary (docs/concepts.md): `l21` for the strength, `targets` for
the chosen weights, `precondition` for the proximal threshold. This module imports nothing
but the standard library.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MISSING", "deprecated_alias", "legacy", "renamed"]

F = TypeVar("F", bound=Callable[..., Any])


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


def legacy(
    where: str,
    *,
    lead: int = 0,
    order: tuple[str, str] | None = None,
    old_positional: tuple[str, ...] = (),
    positional: tuple[str, ...] = (),
    **renames: str,
) -> Callable[[F], F]:
    """Decorate an entry so that its old calls keep working for one release, with a warning.

    The entry keeps the new signature (`inspect.signature` follows the wrapper to it); the
    wrapper rewrites an old call into a new one, with a `DeprecationWarning` pointing at the
    caller:

    - `renames`: old keyword name -> new name (`lam="l21"`);
    - `order=(first, second)`: the new order puts a number (`l21`, `keep`, `target`) before
      the weights; a call that passes the weights first is detected by type (the weights are
      never a real number) and swapped. `lead` counts the leading arguments before the pair
      (`self`, `optimizer`, `model`). `old_positional` names the old signature's positional
      parameters after the pair, now keyword-only (e.g. `("measure", "l21")`).
    - `positional`: parameters, now keyword-only, that an old call passes by position after
      the new positional ones (Keras `L21(1e-4, -2)`: `("group_axis",)`).
    """

    def decorate(fn: F) -> F:
        positions = {
            name: i
            for i, (name, p) in enumerate(inspect.signature(fn).parameters.items())
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        }

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs or len(args) > positions.get(new, len(args)):
                        raise TypeError(
                            f"{where}() got both {new!r} and its deprecated name {old!r}"
                        )
                    warnings.warn(
                        f"{where}({old}=...) is deprecated and will be removed in the next "
                        f"release; use {new}=... instead",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            if order is not None:
                args, kwargs = _reorder(where, lead, order, old_positional, args, kwargs)
            if positional and len(args) > len(positions):
                args, kwargs = _by_keyword(where, positional, len(positions), args, kwargs)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _by_keyword(where, positional, n_positional, args, kwargs):
    """Move the arguments an old call passed by position beyond the new positional ones to
    their (now keyword-only) names, with a `DeprecationWarning`."""
    extra = args[n_positional:]
    if len(extra) > len(positional):
        raise TypeError(f"{where}() takes too many positional arguments")
    names = positional[: len(extra)]
    for name in names:
        if name in kwargs:
            raise TypeError(f"{where}() got multiple values for argument {name!r}")
    warnings.warn(
        f"{where}: passing {', '.join(names)} by position is deprecated and will be removed in "
        f"the next release; pass them by keyword ({names[0]}=...)",
        DeprecationWarning,
        stacklevel=3,
    )
    return args[:n_positional], {**kwargs, **dict(zip(names, extra, strict=True))}


def _reorder(where, lead, order, old_positional, args, kwargs):
    first, second = order
    head, rest = args[:lead], args[lead:]
    if (
        rest
        and not _is_real(rest[0])
        and ((len(rest) >= 2 and _is_real(rest[1])) or (len(rest) == 1 and first in kwargs))
    ):
        if len(rest) - 2 > len(old_positional):
            raise TypeError(f"{where}() takes too many positional arguments")
        warnings.warn(
            f"{where}({second}, {first}, ...) is deprecated and will be removed in the next "
            f"release; pass {first} first: {where}({first}, {second}, ...)",
            DeprecationWarning,
            stacklevel=3,
        )
        if len(rest) == 1:
            return (*head, kwargs.pop(first), rest[0]), kwargs
        extra = dict(zip(old_positional, rest[2:], strict=False))
        for name in extra:
            if name in kwargs:
                raise TypeError(f"{where}() got multiple values for argument {name!r}")
        return (*head, rest[1], rest[0]), {**kwargs, **extra}
    return args, kwargs
