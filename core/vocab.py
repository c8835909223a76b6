"""The project's one vocabulary: artifact formats, precisions and device runtimes.

`FORMAT_TABLE` holds one row per artifact format: its file suffix, the precisions it offers,
the converter module that writes it and the device runtimes that load it, each with its rank
in `auto`'s choice and the line that says what to install. The bundle validates against these
names, the converter (`convert.formats`) adds its options to each row, the device runtime
(`core.runtime`), `wbc-edge bench`/`verify` and the MACs counter loop over the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# Every artifact format a bundle may list (keras and savedmodel are the float sources).
Format = Literal["keras", "savedmodel", "tflite", "onnx", "openvino"]
FORMATS: tuple[str, ...] = get_args(Format)
# Every precision an artifact may have; `dynamic` = weight-only int8 (TFLite).
Precision = Literal["fp32", "fp16", "dynamic", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
# Precision preference of the device's `auto` choice, best first.
PRECISION_ORDER = ("int8", "fp16", "dynamic", "fp32")


@dataclass(frozen=True)
class RuntimeRow:
    """A device runtime: the module imported lazily, what to install, its rank in `auto`."""

    name: str
    module: str
    distribution: str  # the pip distribution whose version the parity report quotes
    install: str
    rank: int  # between backends, after GPU, parity status and precision (0 first)


@dataclass(frozen=True)
class FormatRow:
    """One artifact format: what writes it (`convert.<exporter>`) and what loads it."""

    name: str
    suffix: str
    precisions: tuple[str, ...]
    exporter: str | None = None  # None: a float source the converter reads, never writes
    runtimes: tuple[RuntimeRow, ...] = ()  # the device runtimes that load it, preferred first
    extra_suffixes: tuple[str, ...] = ()  # files written beside it, hashed with it
    int8_default: bool = False  # part of `wbc-convert`'s default (`--int8`)


LITERT = RuntimeRow(
    "litert",
    "ai_edge_litert.interpreter",
    "ai-edge-litert",
    "pip install 'wbc-edge[edge]' (ai-edge-litert)",
    0,
)
TFLITE_RUNTIME = RuntimeRow(
    "tflite-runtime",
    "tflite_runtime.interpreter",
    "tflite-runtime",
    "pip install tflite-runtime 'numpy<2' (32-bit Pi OS; see docs/install-pi.md)",
    1,
)
OPENVINO = RuntimeRow(
    "openvino", "openvino", "openvino", "pip install 'wbc-edge[edge]' (openvino)", 2
)
ONNXRUNTIME = RuntimeRow(
    "onnxruntime",
    "onnxruntime",
    "onnxruntime",
    "pip install 'wbc-edge[edge]' (onnxruntime; onnxruntime-gpu on a Jetson)",
    3,
)

FORMAT_TABLE: tuple[FormatRow, ...] = (
    FormatRow("keras", ".keras", ("fp32",)),
    FormatRow("savedmodel", "", ("fp32",)),
    FormatRow(
        "tflite", ".tflite", PRECISIONS, "tflite", (LITERT, TFLITE_RUNTIME), int8_default=True
    ),
    FormatRow("onnx", ".onnx", ("fp32",), "onnx", (ONNXRUNTIME,)),
    FormatRow(
        "openvino",
        ".xml",
        ("fp32", "fp16", "int8"),
        "openvino",
        (OPENVINO,),
        extra_suffixes=(".bin",),
        int8_default=True,
    ),
)
# The device runtimes, and the ones that can run each format, in order of preference.
RUNTIME_TABLE: dict[str, RuntimeRow] = {r.name: r for f in FORMAT_TABLE for r in f.runtimes}
RUNTIMES: tuple[str, ...] = tuple(RUNTIME_TABLE)
FORMAT_RUNTIMES: dict[str, tuple[str, ...]] = {
    f.name: tuple(r.name for r in f.runtimes) for f in FORMAT_TABLE if f.runtimes
}


def format_row(name: str) -> FormatRow:
    """The table's row for a format name (KeyError for an unknown one)."""
    for row in FORMAT_TABLE:
        if row.name == name:
            return row
    raise KeyError(name)


def artifact_key(format: str, precision: str) -> str:
    """An artifact's name on the command line and in reports, e.g. `tflite-int8`."""
    return f"{format}-{precision}"
