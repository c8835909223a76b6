"""The export formats `wbc-convert` can write, and the options each accepts.

Each row is a row of the core table (`core.vocab.FORMAT_TABLE`: name, file suffix, precisions,
exporter module, runtimes) plus the options the converter accepts for it; the
converter, the parity check and the benchmark all loop over `FORMATS`. A request is checked
against the table before anything is converted (`plan`), so a typo fails in a second with one
line instead of after a minute of conversion.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_edge.core.errors import WbcError
from wbc_edge.core.vocab import FORMAT_TABLE, PRECISIONS, FormatRow, artifact_key


class ConvertError(WbcError):
    """A conversion request the table does not allow, or an input conversion cannot use."""


@dataclass(frozen=True)
class Option:
    """One option a format accepts: its values, default, and the precisions it applies to."""

    name: str
    help: str
    default: Any
    parse: Callable[[str], Any] = str
    choices: tuple[Any, ...] | None = None
    precisions: tuple[str, ...] | None = None  # None: every precision of the row

    def check(self, value: Any, where: Path | str) -> Any:
        try:
            value = self.parse(value) if isinstance(value, str) else value
        except ValueError:
            raise ConvertError(f"option {self.name}: cannot read {value!r}", where) from None
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ConvertError(f"option {self.name}={value} is not one of {allowed}", where)
        return value


@dataclass(frozen=True)
class Format:
    """A core format row with the converter's options for it. `module` (convert.<module>) has
    `convert(job, source, calib)`."""

    row: FormatRow
    options: tuple[Option, ...] = ()

    @property
    def name(self) -> str:  # the bundle's artifact format
        return self.row.name

    @property
    def suffix(self) -> str:
        return self.row.suffix

    @property
    def precisions(self) -> tuple[str, ...]:
        return self.row.precisions

    @property
    def module(self) -> str:
        assert self.row.exporter is not None
        return self.row.exporter

    @property
    def extra_suffixes(self) -> tuple[str, ...]:  # files written beside it, hashed with it
        return self.row.extra_suffixes

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def converter(self) -> Callable[..., Path]:
        """The backend module's `convert` function (imported only when needed)."""
        return importlib.import_module(f"wbc_edge.convert.{self.module}").convert


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _layer_list(text: str) -> str:
    """'last, first' → 'first,last'; empty → 'none'."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    return ",".join(sorted(names)) if names else "none"


def _opset(text: str) -> int:
    return int(text)


# The converter's options per format; every core row with an exporter is a row here.
_OPTIONS: dict[str, tuple[Option, ...]] = {
    "tflite": (
        Option(
            "io_dtype",
            "dtype of the INT8 model's input (and output, with float_layers=none)",
            "int8",
            choices=("int8", "uint8"),
            precisions=("int8",),
        ),
        Option(
            "float_layers",
            "ops an INT8 model keeps in float: the first convolution (on the pixels), the "
            "last dense layer (the class scores), both, or none (plain full INT8)",
            "first,last",
            _layer_list,
            choices=("first,last", "first", "last", "none"),
            precisions=("int8",),
        ),
        Option(
            "dense_per_channel",
            "per-channel weights for dense layers too (more accurate; tflite-runtime 2.14, "
            "the last 32-bit Pi build, cannot load them)",
            False,
            _flag,
            choices=(False, True),
            precisions=("dynamic", "int8"),
        ),
    ),
    "onnx": (Option("opset", "ONNX opset written by tf2onnx", 17, _opset, tuple(range(13, 19))),),
}

FORMATS: tuple[Format, ...] = tuple(
    Format(row, _OPTIONS.get(row.name, ())) for row in FORMAT_TABLE if row.exporter
)
# What `wbc-convert` writes when asked for nothing in particular (`--int8`).
INT8_FORMATS: tuple[str, ...] = tuple(f.name for f in FORMATS if f.row.int8_default)

FORMAT_NAMES = tuple(f.name for f in FORMATS)


def get_format(name: str) -> Format:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise KeyError(name)


@dataclass(frozen=True)
class Job:
    """One artifact to write: a row of the table, a precision and its checked options."""

    format: Format
    precision: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return artifact_key(self.format.name, self.precision)

    @property
    def file(self) -> str:
        """File name inside the bundle, e.g. model_int8.tflite."""
        return f"model_{self.precision}{self.format.suffix}"

    @property
    def extra_files(self) -> list[str]:
        """The other files the artifact needs (an OpenVINO IR's .bin of weights)."""
        stem = self.file.removesuffix(self.format.suffix)
        return [stem + s for s in self.format.extra_suffixes]


def plan(
    formats: Sequence[str],
    precisions: Sequence[str],
    options: dict[str, dict[str, Any]] | None = None,
    where: Path | str = "wbc-convert",
) -> tuple[list[Job], list[str]]:
    """Check a request against the table; return the jobs and notes on pairs left out.

    Every named format and precision must exist, every precision must be offered by at least
    one named format, and every option must belong to a named format's row. Pairs a format
    does not offer (onnx × int8) are left out with a note, not an error.
    """
    options = options or {}
    for name in formats:
        if name not in FORMAT_NAMES:
            raise ConvertError(
                f"unknown format {name!r} (formats: {', '.join(FORMAT_NAMES)})", where
            )
    for p in precisions:
        if p not in PRECISIONS:
            raise ConvertError(
                f"unknown precision {p!r} (precisions: {', '.join(PRECISIONS)})", where
            )
        if not any(p in get_format(f).precisions for f in formats):
            offered = "; ".join(f"{f}: {', '.join(get_format(f).precisions)}" for f in formats)
            raise ConvertError(f"no requested format offers precision {p} ({offered})", where)
    for fname, opts in options.items():
        if fname not in formats:
            raise ConvertError(f"options given for {fname}, which is not being converted", where)
        row = get_format(fname)
        for oname in opts:
            opt = row.option(oname)
            if opt is None:
                accepted = ", ".join(o.name for o in row.options) or "none"
                raise ConvertError(f"{fname} has no option {oname!r} (accepts: {accepted})", where)
            if opt.precisions and not set(opt.precisions) & set(precisions):
                raise ConvertError(
                    f"{fname} option {oname} applies to {', '.join(opt.precisions)} only, "
                    "which is not being converted",
                    where,
                )
    jobs, notes = [], []
    for fname in formats:
        row = get_format(fname)
        for p in precisions:
            if p not in row.precisions:
                notes.append(f"{fname}: no {p} (offers {', '.join(row.precisions)})")
                continue
            jobs.append(Job(row, p, _job_options(row, p, options.get(fname, {}), where)))
    return jobs, notes


def _job_options(row: Format, precision: str, given: dict[str, Any], where: Path | str) -> dict:
    out = {}
    for opt in row.options:
        if opt.precisions is not None and precision not in opt.precisions:
            continue
        out[opt.name] = opt.check(given.get(opt.name, opt.default), where)
    return out


def parse_option(text: str, where: Path | str = "--option") -> tuple[str, str, str]:
    """`format.name=value` → (format, name, value)."""
    key, sep, value = text.partition("=")
    fname, dot, oname = key.partition(".")
    if not sep or not dot or not fname or not oname:
        raise ConvertError(f"option {text!r} is not FORMAT.NAME=VALUE (e.g. onnx.opset=17)", where)
    return fname.strip(), oname.strip(), value.strip()
