"""ONNX backend: tf2onnx from the Keras model, opset from the table, checked by onnx.checker."""

from __future__ import annotations

import logging
from typing import Any

from wbc_edge.convert.formats import Job
from wbc_edge.convert.source import ConvertContext

log = logging.getLogger(__name__)

INPUT_NAME = "image"


def convert(job: Job, ctx: ConvertContext) -> dict[str, Any]:
    """Write `ctx.out_dir / job.file` (fp32); return the options to record."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    opset = int(job.options["opset"])
    h, w, c = ctx.source.input_shape
    # Keras 3 has no save spec for tf2onnx to read: the signature is given explicitly.
    signature = (tf.TensorSpec((None, h, w, c), tf.float32, name=INPUT_NAME),)
    path = ctx.out_dir / job.file
    tf2onnx.convert.from_keras(
        ctx.source.keras_model, input_signature=signature, opset=opset, output_path=str(path)
    )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return {"opset": opset, "input_name": INPUT_NAME, "checked": "onnx.checker"}
