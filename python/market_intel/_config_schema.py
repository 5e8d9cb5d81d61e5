"""The machinery behind ``market_intel.config``.

Value kinds (what a setting accepts and how it is described in a violation), the builder that
turns a TOML table into a frozen config object while collecting every violation, environment
overrides and TOML output.

A config dataclass declares each setting as ``field(default=..., metadata=kind(Integer(1,
64)))``; ``build`` checks a raw table against those kinds and the class's ``_cross_check``,
and ``validate`` does the same for an object constructed directly (from ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, time
from enum import Enum
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any, Final

from market_intel.errors import ConfigError

ENV_PREFIX: Final = "MARKET_INTEL__"
"""Environment variables named ``MARKET_INTEL__SECTION__KEY`` override config values."""

_KIND: Final = "market_intel.config.kind"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _Invalid:
    """The value of a setting that has a violation (already reported)."""

    def __repr__(self) -> str:
        return "<invalid>"


BAD: Final = _Invalid()


class Partial(SimpleNamespace):
    """The valid settings of a table that has violations, so that checks relating it to other
    settings still run; it never leaves the builder."""


# ---------------------------------------------------------------------------------------------
# Describing values and paths


def quote_key(key: str) -> str:
    """Return ``key`` as written in a TOML dotted key (quoted unless it is bare)."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def join(path: str, key: str) -> str:
    """Return the dotted path of ``key`` inside the table at ``path``."""
    return f"{path}.{quote_key(key)}" if path else quote_key(key)


def toml_value(value: Any) -> str:
    """Return ``value`` written as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return json.dumps(value.name.lower())
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value)).replace("\x7f", "\\u007f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = ", ".join(f"{quote_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"{value!r} has no TOML form")


def describe(value: Any) -> str:
    """Return ``value`` as a violation message shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{...}"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: Any) -> str:
    """Return the TOML-ish type of ``value`` with its article (``a str``, ``an int``)."""
    if isinstance(value, Mapping):
        name = "table"
    elif isinstance(value, list | tuple):
        name = "list"
    else:
        name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def wrong_type(value: Any, expected: str) -> str:
    """Return the message for a value of the wrong type."""
    return f"{describe(value)} is {type_name(value)}; expected {expected}"


def suggestion(word: str, choices: list[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the choice closest to ``word``, or ``''``."""
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def path_key(path: str) -> list[tuple[int, int, str]]:
    """Return a sort key that orders paths part by part, list indices numerically."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r'"(?:[^"\\]|\\.)*"|\d+|[^.\[\]"]+', path)
    ]


class Report:
    """Collect violations; tag those under a path set by an environment variable with it."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []
        self.origins: dict[str, str] = {}

    def __call__(self, path: str, message: str) -> None:
        origins = [
            origin
            for origin in self.origins
            if path == origin or path.startswith((origin + ".", origin + "["))
        ]
        if origins:
            message = f"{message} (set by {self.origins[max(origins, key=len)]})"
        self.violations.append((path, message))

    def __len__(self) -> int:
        return len(self.violations)

    def error(self, source: str | None) -> ConfigError:
        """Return one ``ConfigError`` holding every violation, ordered by path."""
        ordered = sorted(self.violations, key=lambda v: path_key(v[0]))
        return ConfigError(ordered, source)


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """What a conversion may depend on: the directory relative paths are resolved against."""

    base_dir: Path | None = None


Sink = Callable[[str, str], None]


# ---------------------------------------------------------------------------------------------
# Kinds of values


class Kind:
    """What a setting accepts. ``convert`` takes a raw TOML value or an already converted one
    (so direct construction and loading share it) and returns the stored value, or ``BAD``
    after reporting why not."""

    expected: str = "a value"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        """Return the stored form of ``value``, or report a violation and return ``BAD``."""
        raise NotImplementedError

    def build(self, raw: Any, path: str, ctx: Context, report: Sink) -> Any:
        """Return the stored form of a raw TOML value (tables may recurse)."""
        return self.convert(raw, path, ctx, report)

    def dump(self, value: Any) -> Any:
        """Return the plain (TOML/JSON) form of a stored value."""
        return value


def kind(k: Kind) -> dict[str, Kind]:
    """Return the field metadata that gives a dataclass field its kind."""
    return {_KIND: k}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Integer(Kind):
    """An integer in ``lo..hi``; with ``zero``, 0 is also allowed and means ``zero``."""

    def __init__(self, lo: int | None = None, hi: int | None = None, *, zero: str = "") -> None:
        self.lo, self.hi, self.zero = lo, hi, zero
        bounds = f" {lo}..{hi}" if hi is not None else f" >= {lo}" if lo is not None else ""
        self.expected = f"an integer{bounds}" + (f" or 0 ({zero})" if zero else "")

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not _is_int(value):
            report(path, wrong_type(value, self.expected))
            return BAD
        if value == 0 and self.zero:
            return 0
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            report(path, f"{value} is out of range; expected {self.expected}")
            return BAD
        return value


class PowerOfTwo(Kind):
    """A power of two in ``lo..hi``."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.expected = f"a power of two {lo}..{hi}"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not _is_int(value):
            report(path, wrong_type(value, self.expected))
        elif value <= 0 or value & (value - 1):
            report(path, f"{value} is not a power of two")
        elif not self.lo <= value <= self.hi:
            report(path, f"{value} is out of range; expected {self.expected}")
        else:
            return value
        return BAD


class Number(Kind):
    """A finite number ``>= lo`` (an integer is taken as a float)."""

    def __init__(self, lo: float) -> None:
        self.lo = lo
        self.expected = f"a number >= {lo:g}"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(value, int | float) or isinstance(value, bool):
            report(path, wrong_type(value, self.expected))
        elif not math.isfinite(value) or value < self.lo:
            report(path, f"{describe(value)} is out of range; expected {self.expected}")
        else:
            return float(value)
        return BAD


class Boolean(Kind):
    """``true`` or ``false``."""

    expected = "true or false"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if isinstance(value, bool):
            return value
        report(path, wrong_type(value, self.expected))
        return BAD


class Choice(Kind):
    """One of a few strings."""

    def __init__(self, options: tuple[str, ...]) -> None:
        self.options = list(options)
        self.expected = "one of " + ", ".join(repr(o) for o in options)

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(value, str):
            report(path, wrong_type(value, self.expected))
        elif value not in self.options:
            hint = suggestion(value, self.options)
            report(path, f"{describe(value)} is not {self.expected}{hint}")
        else:
            return value
        return BAD


class EnumName(Kind):
    """The name of an enum member, case-insensitive; stored as the member."""

    def __init__(self, enum: type[Enum]) -> None:
        self.enum = enum
        self.options = [m.name.lower() for m in enum]
        self.expected = "one of " + ", ".join(repr(o) for o in self.options)

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if isinstance(value, self.enum):
            return value
        if not isinstance(value, str):
            report(path, wrong_type(value, self.expected))
        elif value.lower() not in self.options:
            hint = suggestion(value, self.options)
            report(path, f"{describe(value)} is not {self.expected}{hint}")
        else:
            return self.enum[value.upper()]
        return BAD

    def dump(self, value: Any) -> Any:
        return value.name.lower()


class Text(Kind):
    """A non-empty string, optionally of a shape given by a regular expression."""

    def __init__(self, pattern: str | None = None, shape: str = "") -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.shape = shape
        self.expected = f"a string {shape}" if shape else "a non-empty string"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(value, str):
            report(path, wrong_type(value, self.expected))
        elif not value:
            report(path, f"'' is empty; expected {self.expected}")
        elif self.pattern and not self.pattern.fullmatch(value):
            report(path, f"{describe(value)} is not {self.shape}")
        else:
            return value
        return BAD


class IPAddress(Kind):
    """An IPv4 or IPv6 address, stored in its canonical text form."""

    expected = "an IP address such as '127.0.0.1' or '::1'"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(value, str):
            report(path, wrong_type(value, self.expected))
            return BAD
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            report(path, f"{describe(value)} is not an IP address")
            return BAD


class FilePath(Kind):
    """A file path; a relative one is taken relative to the config file's directory."""

    def __init__(self, *, must_exist: bool = False) -> None:
        self.must_exist = must_exist
        self.expected = "a file path string"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(value, str | Path) or not str(value):
            report(path, wrong_type(value, self.expected))
            return BAD
        p = Path(value).expanduser()
        if ctx.base_dir is not None and not p.is_absolute():
            p = ctx.base_dir / p
        if self.must_exist and not p.is_file():
            why = "is not a file" if p.exists() else "does not exist"
            report(path, f"'{p}' {why}")
            return BAD
        return p

    def dump(self, value: Any) -> Any:
        return str(value)


class Optional(Kind):
    """``inner`` or nothing (``None``; in TOML, leave the key out)."""

    def __init__(self, inner: Kind) -> None:
        self.inner = inner
        self.expected = inner.expected

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        return None if value is None else self.inner.convert(value, path, ctx, report)

    def dump(self, value: Any) -> Any:
        return None if value is None else self.inner.dump(value)


class ListOf(Kind):
    """A list of ``item`` values, stored as a tuple."""

    def __init__(self, item: Kind, noun: str) -> None:
        self.item = item
        self.expected = f"a list of {noun}"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(value, list | tuple):
            report(path, wrong_type(value, self.expected))
            return BAD
        items = [self.item.convert(v, f"{path}[{i}]", ctx, report) for i, v in enumerate(value)]
        return BAD if any(v is BAD for v in items) else tuple(items)

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]


class FrozenTable(Mapping[str, Any]):
    """A read-only table (unlike ``MappingProxyType``, it pickles, so a config can be sent to
    a spawned process)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] = MappingProxyType({})) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenTable({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenTable], tuple[dict[str, Any]]]:
        return FrozenTable, (self._data,)


def freeze(value: Any) -> Any:
    """Return ``value`` with every table made a read-only mapping and every list a tuple."""
    if isinstance(value, Mapping):
        return FrozenTable({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Return ``value`` with mappings as dicts and tuples as lists (the inverse of ``freeze``)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


class FreeTable(Kind):
    """A table of anything, passed on as is (read-only)."""

    expected = "a table"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            report(path, wrong_type(value, self.expected))
            return BAD
        return freeze(value)

    def dump(self, value: Any) -> Any:
        return thaw(value)


class Section(Kind):
    """A table described by another config dataclass."""

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.expected = "a table"

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if isinstance(value, self.cls):
            return value
        report(path, wrong_type(value, f"a {self.cls.__name__}"))
        return BAD

    def build(self, raw: Any, path: str, ctx: Context, report: Sink) -> Any:
        return build(self.cls, raw, path, ctx, report)

    def dump(self, value: Any) -> Any:
        return to_dict(value)


class NamedTables(Kind):
    """A table of tables, each a ``cls`` whose ``name`` field is its key; stored as a tuple."""

    def __init__(self, cls: type[Any], name_pattern: str, name_shape: str) -> None:
        self.cls = cls
        self.name_pattern = re.compile(name_pattern)
        self.name_shape = name_shape
        self.expected = "a table of tables"

    def _check_names(self, names: list[str], path: str, report: Sink) -> bool:
        ok, seen = True, dict[str, str]()
        for name in names:
            if not self.name_pattern.fullmatch(name):
                report(
                    join(path, name), f"{name!r} is not a valid name; expected {self.name_shape}"
                )
                ok = False
            elif name.lower() in seen:
                other = seen[name.lower()]
                report(join(path, name), f"the name differs from {other!r} only in case")
                ok = False
            seen.setdefault(name.lower(), name)
        return ok

    def convert(self, value: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(value, list | tuple) or not all(isinstance(v, self.cls) for v in value):
            report(path, wrong_type(value, f"a tuple of {self.cls.__name__}"))
            return BAD
        ok = self._check_names([v.name for v in value], path, report)
        return tuple(value) if ok else BAD

    def build(self, raw: Any, path: str, ctx: Context, report: Sink) -> Any:
        if not isinstance(raw, Mapping):
            report(path, wrong_type(raw, self.expected))
            return BAD
        self._check_names(list(raw), path, report)
        items = [
            build(self.cls, t, join(path, n), ctx, report, {"name": n}) for n, t in raw.items()
        ]
        return tuple(v for v in items if v is not BAD)  # the builder knows of any violation

    def dump(self, value: Any) -> Any:
        return {item.name: to_dict(item) for item in value}


# ---------------------------------------------------------------------------------------------
# Building and validating config objects


def settings(cls: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    """Return the fields of a config dataclass that are settings, by name."""
    return {f.name: f for f in dataclasses.fields(cls) if _KIND in f.metadata}


def _kind_of(f: dataclasses.Field[Any]) -> Kind:
    k: Kind = f.metadata[_KIND]
    return k


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return BAD


def _cross_check(cls: type[Any], values: dict[str, Any], path: str, report: Sink) -> None:
    check = getattr(cls, "_cross_check", None)
    if check is None:
        return
    fields = settings(cls)
    good = {n: values[n] if n in values else _default(f) for n, f in fields.items()}
    good = {n: v for n, v in good.items() if v is not BAD}
    # The check names settings by their dotted path relative to ``path``.
    check(good, lambda k, m: report(f"{path}.{k}" if path else k, m))


def build(
    cls: type[Any],
    raw: Any,
    path: str,
    ctx: Context,
    report: Report | Sink,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """Build a ``cls`` from the raw table ``raw`` at ``path``, reporting every violation.

    Unknown keys, missing required keys, values of the wrong kind and the class's cross-checks
    are all reported; the object is constructed only if nothing under ``path`` was.

    Returns:
        The object; if anything under ``path`` had a violation, a ``Partial`` of its valid
        settings (or ``BAD`` if ``raw`` is not a table).
    """
    if not isinstance(raw, Mapping):
        report(path, wrong_type(raw, "a table"))
        return BAD
    count: list[int] = [0]

    def sink(p: str, m: str) -> None:
        count[0] += 1
        report(p, m)

    fields = settings(cls)
    keys = sorted(n for n in fields if n not in (extra or {}))
    for key in raw:
        if key not in keys:
            expected = "; expected one of " + ", ".join(keys) if keys else "; expected no keys"
            sink(join(path, key), f"unknown key{expected}{suggestion(key, keys)}")
    values: dict[str, Any] = dict(extra or {})
    for name in keys:
        f = fields[name]
        if name in raw:
            values[name] = _kind_of(f).build(raw[name], join(path, name), ctx, sink)
        elif _default(f) is BAD:
            sink(join(path, name), f"missing; expected {_kind_of(f).expected}")
            values[name] = BAD
    _cross_check(cls, values, path, sink)
    if not count[0]:
        return cls(**values)
    good = {n: values[n] if n in values else _default(f) for n, f in fields.items()}
    return Partial(**(extra or {}), **{n: v for n, v in good.items() if v is not BAD})


def validate(obj: Any, path: str) -> None:
    """Check a directly constructed config object and store its values in their frozen form.

    Raises:
        ConfigError: if any value is invalid (every violation, at once).
    """
    report = Report()
    ctx = Context()
    values: dict[str, Any] = {}
    for name, f in settings(type(obj)).items():
        values[name] = _kind_of(f).convert(getattr(obj, name), join(path, name), ctx, report)
    _cross_check(type(obj), values, path, report)
    if report:
        raise report.error(None)
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def to_dict(obj: Any) -> dict[str, Any]:
    """Return the plain (TOML/JSON) form of a config object; ``None`` means unset."""
    return {name: _kind_of(f).dump(getattr(obj, name)) for name, f in settings(type(obj)).items()}


def to_toml(data: Mapping[str, Any], header: tuple[str, ...] = ()) -> list[str]:
    """Return the lines of ``data`` written as TOML (unset ``None`` values are left out)."""
    plain = [(k, v) for k, v in data.items() if v is not None and not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    lines: list[str] = []
    if header and (plain or not tables):
        lines.append("[" + ".".join(quote_key(h) for h in header) + "]")
    lines += [f"{quote_key(k)} = {toml_value(v)}" for k, v in plain]
    for k, v in tables:
        if lines:
            lines.append("")
        lines += to_toml(v, (*header, k))
    return lines


# ---------------------------------------------------------------------------------------------
# Environment overrides


def parse_env_value(text: str) -> Any:
    """Return ``text`` parsed as a TOML value, or as a plain string if it is not one."""
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return parsed["v"] if list(parsed) == ["v"] else text


def apply_env(data: dict[str, Any], env: Mapping[str, str], report: Report) -> None:
    """Apply ``MARKET_INTEL__A__B=value`` overrides to the raw table ``data`` in place.

    Name parts match existing keys case-insensitively; the path each variable set is recorded
    in ``report.origins`` so violations there name the variable.
    """
    for variable in sorted(env):
        if not variable.upper().startswith(ENV_PREFIX):
            continue
        parts = variable[len(ENV_PREFIX) :].split("__")
        if not all(parts):
            report("", f"{variable}: a name part between '__' separators is empty")
            continue
        table, path = data, ""
        for i, part in enumerate(parts):
            key = next((k for k in table if k.lower() == part.lower()), part.lower())
            path = join(path, key)
            if i == len(parts) - 1:
                table[key] = parse_env_value(env[variable])
                report.origins[path] = variable
            elif key not in table:
                table[key] = {}
                report.origins[path] = variable
                table = table[key]
            elif not isinstance(table[key], dict):
                report(
                    path, f"is {type_name(table[key])}, not a table; {variable} sets a key in it"
                )
                break
            else:
                table = table[key]
