"""The project's one vocabulary: artifact formats, precisions and device runtimes.

The bundle validates against these names, the converter's table (`convert.formats`) offers a
subset of them per row, and the device runtime picks backends and ranks artifacts with them.
"""

from __future__ import annotations

from typing import Literal, get_args

# Every artifact format a bundle may list (keras and savedmodel are the float sources).
Format = Literal["keras", "savedmodel", "tflite", "onnx", "openvino"]
FORMATS: tuple[str, ...] = get_args(Format)
# Every precision an artifact may have; `dynamic` = weight-only int8 (TFLite).
Precision = Literal["fp32", "fp16", "dynamic", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
# Precision preference of the device's `auto` choice, best first.
PRECISION_ORDER = ("int8", "fp16", "dynamic", "fp32")
# The device runtimes, and the ones that can run each format, in order of preference.
RUNTIMES = ("litert", "tflite-runtime", "onnxruntime", "openvino")
FORMAT_RUNTIMES = {
    "tflite": ("litert", "tflite-runtime"),
    "onnx": ("onnxruntime",),
    "openvino": ("openvino",),
}
