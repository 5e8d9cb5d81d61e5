"""Field checks of the message model: each converts a value or raises a
``MessageValidationError`` naming the class, the field, the value and what was expected."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Final, TypeAlias, TypeVar

import msgspec
from msgspec.structs import force_setattr

from market_intel.errors import MessageValidationError
from market_intel.records import SYMBOL_SIZE

MetadataValue: TypeAlias = str | int | float | bool | None
"""A value of ``CoreMessage.metadata`` or ``Control.arguments``."""
JsonValue: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool | None
"""An ``Analytics.result``: nested dicts with str keys, lists and scalars."""

_U64: Final = 1 << 64
_I63: Final = 1 << 63
_INF: Final = math.inf
_MAX_DEPTH: Final = 64
_E = TypeVar("_E", bound=IntEnum)
_Check: TypeAlias = Callable[[str, str, Any], Any]
"""A field check: (class name, field, value) -> the value to store, or raise."""


# Field checks: they run when a struct's fast path finds anything unusual and favour clear
# messages over speed.


def _fail(owner: str, field: str, value: object, problem: str, expected: str) -> Exception:
    if isinstance(value, IntEnum):
        shown = f"{type(value).__name__}.{value.name}"
    else:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return MessageValidationError(f"{owner}.{field}: {shown} {problem}; expected {expected}")


def _string(required: bool, max_bytes: int | None = None) -> _Check:
    """Check a str: non-empty if required, at most max_bytes UTF-8 bytes and no NUL if given."""
    if max_bytes is None:
        expected = "a non-empty str" if required else "a str"
    else:
        expected = f"{int(required)} to {max_bytes} UTF-8 bytes"

    def check(owner: str, field: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(owner, field, value, "is not a str", expected)
        if required and not value:
            raise _fail(owner, field, value, "is empty", expected)
        if max_bytes is not None:
            if "\x00" in value:
                raise _fail(
                    owner, field, value, "contains a NUL character", expected + " without NUL"
                )
            try:
                size = len(value.encode())
            except UnicodeEncodeError:
                raise _fail(owner, field, value, "is not encodable as UTF-8", expected) from None
            if size > max_bytes:
                raise _fail(owner, field, value, f"is {size} UTF-8 bytes", expected)
        return str.__str__(value)

    return check


def _number(*, optional: bool = False, positive: bool = False, signed: bool = False) -> _Check:
    """Check a finite number, stored as a float: >= 0, or > 0, or of any sign."""
    expected = "a finite number" + ("" if signed else " > 0" if positive else " >= 0")

    def check(owner: str, field: str, value: Any) -> float | None:
        if value is None and optional:
            return None
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise _fail(owner, field, value, "is not a number", expected)
        try:
            number = float(value)
        except OverflowError:
            number = _INF
        if not math.isfinite(number):
            raise _fail(owner, field, value, "is not finite", expected)
        if positive and not number > 0:
            raise _fail(owner, field, value, "is not positive", expected)
        if not signed and number < 0:
            raise _fail(owner, field, value, "is negative", expected)
        return number

    return check


def _integer(low: int, bits: int, *, optional: bool = False) -> _Check:
    """Check an int in [low, 2**bits), or None if optional."""
    expected = f"an int in [{low}, 2**{bits})" + (" or None" if optional else "")

    def check(owner: str, field: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        if not isinstance(value, numbers.Integral) or isinstance(value, bool | IntEnum):
            raise _fail(owner, field, value, "is not an int", expected)
        if not low <= int(value) < 1 << bits:
            raise _fail(owner, field, value, "is out of range", expected)
        return int(value)

    return check


def _member(enum: type[_E]) -> _Check:
    """Check an enum member, or the int value of one (stored as the member)."""
    expected = "one of " + ", ".join(enum.__members__)

    def check(owner: str, field: str, value: Any) -> _E:
        if type(value) is enum:
            return value
        if isinstance(value, numbers.Integral) and not isinstance(value, bool | IntEnum):
            try:
                return enum(int(value))
            except ValueError:
                pass
        raise _fail(owner, field, value, f"is not a {enum.__name__}", expected)

    return check


def _scalar_problem(value: object) -> str | None:
    """Say what keeps a metadata value from an exact round trip, or None if nothing does."""
    if value is None or type(value) is str or type(value) is bool:
        return None
    if type(value) is int:
        return None if -_I63 <= value < _U64 else "is out of range [-2**63, 2**64)"
    if type(value) is float:
        return None if math.isfinite(value) else "is not finite"
    return "is not a str, int, float, bool or None"


def _scalars(owner: str, field: str, value: Any) -> dict[str, MetadataValue]:
    expected = "a dict of str to str, int, finite float, bool or None"
    if type(value) is not dict:
        raise _fail(owner, field, value, "is not a dict", expected)
    for key, item in value.items():
        if type(key) is not str:
            raise _fail(owner, field, key, "is a key that is not a str", expected)
        if (problem := _scalar_problem(item)) is not None:
            raise _fail(owner, f"{field}[{key!r}]", item, problem, expected)
    return value


def _metrics(owner: str, field: str, value: Any) -> dict[str, float]:
    if type(value) is not dict:
        raise _fail(owner, field, value, "is not a dict", "a dict of str to finite numbers")
    converted: dict[str, float] = {}
    for key, item in value.items():
        if type(key) is not str:
            raise _fail(
                owner, field, key, "is a key that is not a str", "a dict of str to finite numbers"
            )
        converted[key] = _SIGNED(owner, f"{field}[{key!r}]", item)
    exact = all(converted[key] is item for key, item in value.items())
    return value if exact else converted


def _json_problem(value: object, depth: int) -> tuple[str, object, str] | None:
    """Find what keeps a value from an exact JSON round trip: (path, value, problem)."""
    if type(value) is list or type(value) is dict:
        if depth >= _MAX_DEPTH:
            return "", value, f"is nested deeper than {_MAX_DEPTH} levels"
        items = value.items() if type(value) is dict else enumerate(value)
        for key, item in items:
            if type(value) is dict and type(key) is not str:
                return "", key, "is a key that is not a str"
            found = _json_problem(item, depth + 1)
            if found is not None:
                return f"[{key!r}]{found[0]}", found[1], found[2]
        return None
    problem = _scalar_problem(value)
    return None if problem is None else ("", value, problem)


def _json(owner: str, field: str, value: Any) -> JsonValue:
    if (found := _json_problem(value, 0)) is not None:
        path, bad, problem = found
        raise _fail(owner, field + path, bad, problem, "a JSON value (dicts, lists, scalars)")
    return value  # type: ignore[no-any-return]


def _validate(struct: msgspec.Struct, checks: tuple[tuple[str, _Check], ...]) -> None:
    """Run the field checks in order; store values they convert."""
    owner = type(struct).__name__
    for name, check in checks:
        value = getattr(struct, name)
        converted = check(owner, name, value)
        if converted is not value:
            force_setattr(struct, name, converted)


_SYMBOL = _string(True, SYMBOL_SIZE)
_SHORT = _string(False, SYMBOL_SIZE)
_PRICE = _number()
_MAYBE_PRICE = _number(optional=True)
_POSITIVE = _number(positive=True)
_SIGNED = _number(signed=True)
_UINT64 = _integer(0, 64)
_NS = _integer(0, 63)
_ID = _integer(1, 64)
_MAYBE_ID = _integer(1, 64, optional=True)
_TEXT = _string(True)
_ANY_TEXT = _string(False)
