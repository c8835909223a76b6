"""Multiply-accumulates per cell of a model artifact, read from its own graph.

Counted: convolutions (regular, depthwise/grouped, transposed) and dense layers (fully
connected, Gemm, MatMul) — the layers that hold nearly all of a CNN's arithmetic. Pooling,
activations and element-wise ops are left out. One cell = one image of the batch.

    artifact_macs(path, "tflite")  # also "onnx" (needs the `onnx` package), "openvino"

Returns None where the graph cannot be read here (a package missing, an op with unknown
shapes): the benchmark then prints "-", never a guess.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def artifact_macs(path: Path | str, fmt: str) -> int | None:
    """MACs per cell of the artifact at `path` (format: tflite, onnx or openvino)."""
    counter = COUNTERS.get(fmt)
    if counter is None:
        return None
    try:
        return counter(Path(path))
    except Exception as exc:  # a missing package or an unreadable graph: no number
        log.debug("MACs of %s: %s", path, exc)
        return None


def tflite_macs(path: Path) -> int:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in interp.get_tensor_details()}
    total = 0
    for op in interp._get_ops_details():
        ins = [shapes.get(i) for i in op["inputs"] if i >= 0]
        outs = [shapes.get(i) for i in op["outputs"] if i >= 0]
        if len(ins) < 2 or not outs or None in ins[:2] or outs[0] is None:
            continue
        total += _tflite_op(op["op_name"], ins, outs[0])
    return total


def _tflite_op(name: str, ins: list[list[int]], out: list[int]) -> int:
    per_cell = math.prod(out[1:]) if len(out) > 1 else math.prod(out)
    if name == "CONV_2D":  # weights (Cout, kh, kw, Cin)
        return per_cell * math.prod(ins[1][1:])
    if name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, Cout)
        return per_cell * ins[1][1] * ins[1][2]
    if name == "FULLY_CONNECTED":  # weights (units, K)
        return per_cell * ins[1][-1]
    if name == "TRANSPOSE_CONV" and len(ins) >= 3:  # output shape, weights, input
        return math.prod(ins[2][1:]) * math.prod(ins[1][:3])
    return 0


def onnx_macs(path: Path) -> int:
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    shapes: dict[str, list[int]] = {i.name: list(i.dims) for i in graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
    total = 0
    for node in graph.node:
        ins = [shapes.get(n) for n in node.input]
        out = shapes.get(node.output[0]) if node.output else None
        if out is None or len(ins) < 2 or ins[0] is None or ins[1] is None:
            continue
        total += _onnx_op(node, ins, out)
    return total


def _onnx_op(node: Any, ins: list[list[int]], out: list[int]) -> int:
    per_cell = math.prod(out[1:]) if len(out) > 1 else math.prod(out)
    if node.op_type == "Conv":  # weights (Cout, Cin/group, kh, kw); output NCHW
        return per_cell * math.prod(ins[1][1:])
    if node.op_type == "ConvTranspose":  # weights (Cin, Cout/group, kh, kw)
        return math.prod(ins[0][1:]) * math.prod(ins[1][1:])
    if node.op_type in ("Gemm", "MatMul") and len(ins[1]) == 2:
        # K x units from the weights (either orientation): a flatten's output, the data input,
        # often has no static shape
        return math.prod(out[1:-1]) * math.prod(ins[1])
    return 0


def openvino_macs(path: Path) -> int:
    import openvino as ov

    model = ov.Core().read_model(str(path))
    total = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"):
            continue
        out = _static(op.output(0).get_partial_shape())
        a, w = (_static(op.input(i).get_partial_shape()) for i in (0, 1))
        if out is None or a is None or w is None:
            continue
        per_cell = math.prod(out[1:])
        if kind == "Convolution":  # weights (Cout, Cin, kh, kw)
            total += per_cell * math.prod(w[1:])
        elif kind == "GroupConvolution":  # weights (G, Cout/G, Cin/G, kh, kw)
            total += per_cell * math.prod(w[2:])
        elif kind == "ConvolutionBackpropData":  # weights (Cin, Cout, kh, kw)
            total += math.prod(a[1:]) * math.prod(w[1:])
        else:
            transpose_a = op.get_attributes().get("transpose_a", False)
            total += per_cell * (a[-2] if transpose_a else a[-1])
    return total


def _static(shape: Any) -> list[int] | None:
    if shape.rank.is_dynamic:
        return None
    return [d.get_length() if d.is_static else 1 for d in shape]


# One counter per device format of core.vocab.FORMAT_TABLE (a test walks the table).
COUNTERS: dict[str, Callable[[Path], int]] = {
    "tflite": tflite_macs,
    "onnx": onnx_macs,
    "openvino": openvino_macs,
}
