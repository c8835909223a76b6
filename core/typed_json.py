"""Strict decoding of parsed JSON into dataclasses: every problem is one line naming its field.

`decode(Cls, data, "artifacts[2]", problems)` walks the dataclass's type hints and checks each
value against them: `int` is never a float or a bool (`96.0` is refused), `float` accepts an int
but never NaN/±Infinity or a bool, `Literal[...]` lists its choices, `tuple[float, float,
float]` needs exactly three numbers, unknown keys of an object are refused, and `Any` takes any
JSON value that holds no non-finite number. Problems are appended as `path: message` and
decoding goes on, so one pass lists them all; the result is `None` where a value could not be
decoded. A dataclass that declares `open_keys: ClassVar[bool] = True` is a declared shape of an
object that may hold more keys (a report's `meta`, a bundle's `provenance`): the keys it names
are checked, the others only for non-finite numbers; a field declared with `metadata={"key": k}`
reads the key `k` (a JSON key that is a Python keyword, `class`). `decode_file` decodes a whole
file and raises one WbcError naming the file with every problem, one per line. Pure Python, no
schema library: the device runs it too.
"""

from __future__ import annotations

import dataclasses
import math
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from wbc_edge.core.errors import WbcError

T = TypeVar("T")


def decode_file(
    kind: Any, data: Any, file: Path | str, error: type[WbcError] = WbcError, path: str = ""
) -> Any:
    """`data` (parsed from `file`) decoded as `kind`; `error` listing every problem otherwise."""
    problems: list[str] = []
    value = decode(kind, data, path, problems)
    raise_problems(problems, file, error)
    return value


def raise_problems(problems: list[str], file: Path | str, error: type[WbcError] = WbcError) -> None:
    """Nothing when `problems` is empty, else `error` with one line per problem, each naming
    the file (the first through the error's path); `.problems` keeps the list."""
    if problems:
        text = problems[0] + "".join(f"\n{file}: {p}" for p in problems[1:])
        err = error(text, file)
        err.problems = list(problems)  # type: ignore[attr-defined]
        raise err


def decode(kind: Any, value: Any, path: str, problems: list[str]) -> Any:
    """`value` decoded as `kind` (a type hint); problems are appended to `problems`."""
    origin = get_origin(kind)
    if kind is Any:
        _check_finite(value, path, problems)
        return value
    if origin is Literal:
        return _literal(get_args(kind), value, path, problems)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(kind) if a is not type(None)]
        if value is None and len(args) < len(get_args(kind)):
            return None
        if len(args) != 1:
            raise TypeError(f"typed_json decodes X | None only, not {kind!r}")  # a schema bug
        return decode(args[0], value, path, problems)
    if origin is list:
        if not isinstance(value, list):
            return _wrong("a list", value, path, problems)
        (item,) = get_args(kind)
        return [decode(item, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is tuple:
        return _tuple(get_args(kind), value, path, problems)
    if origin is dict:
        if not isinstance(value, dict):
            return _wrong("an object", value, path, problems)
        _, item = get_args(kind)
        return {k: decode(item, v, _join(path, k), problems) for k, v in value.items()}
    if dataclasses.is_dataclass(kind):
        return decode_dataclass(kind, value, path, problems)
    return _scalar(kind, value, path, problems)


def decode_dataclass(cls: type[T], value: Any, path: str, problems: list[str]) -> T | None:
    """An instance of `cls` from a JSON object; None if any of its fields had a problem."""
    if not isinstance(value, dict):
        return _wrong("an object", value, path, problems)
    before = len(problems)
    hints = get_type_hints(cls)
    fields = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}
    open_keys = getattr(cls, "open_keys", False)
    for key in value:
        if key in fields:
            continue
        if open_keys:
            _check_finite(value[key], _join(path, str(key)), problems)
        else:
            problems.append(f"{_join(path, str(key))}: unknown field")
    kwargs = {}
    for key, f in fields.items():
        if key in value:
            kwargs[f.name] = decode(hints[f.name], value[key], _join(path, key), problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{_join(path, key)}: missing")
    return cls(**kwargs) if len(problems) == before else None


def describe(value: Any) -> str:
    """A JSON value as a person reads it in a message: 5, '250', a list, an object, null."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _scalar(kind: type, value: Any, path: str, problems: list[str]) -> Any:
    if kind is bool:
        return value if isinstance(value, bool) else _wrong("true or false", value, path, problems)
    if kind is str:
        return value if isinstance(value, str) else _wrong("a string", value, path, problems)
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return _wrong("an integer", value, path, problems)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _wrong("a number", value, path, problems)
        if not math.isfinite(value):
            return _wrong("a finite number", value, path, problems)
        return float(value)
    raise TypeError(f"typed_json cannot decode {kind!r}")  # a schema bug, not user input


def _literal(choices: tuple, value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, (str, int)) and not isinstance(value, bool) and value in choices:
        return value
    return _wrong(f"one of {', '.join(repr(c) for c in choices)}", value, path, problems)


def _tuple(args: tuple, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, list) or len(value) != len(args):
        return _wrong(f"a list of {len(args)} values", value, path, problems)
    pairs = enumerate(zip(args, value, strict=True))
    return tuple(decode(a, v, f"{path}[{i}]", problems) for i, (a, v) in pairs)


def _check_finite(value: Any, path: str, problems: list[str]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{path}: expected a finite number, got {value}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, _join(path, str(k)), problems)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]", problems)


def _wrong(expected: str, value: Any, path: str, problems: list[str]) -> None:
    problems.append(f"{path}: expected {expected}, got {describe(value)}")
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
