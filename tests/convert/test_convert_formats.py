"""The format table and request checking (no TensorFlow needed)."""

from __future__ import annotations

import importlib.util

import pytest

from wbc_edge.convert.formats import FORMATS, ConvertError, get_format, parse_option, plan
from wbc_edge.core.vocab import FORMATS as BUNDLE_FORMATS
from wbc_edge.core.vocab import PRECISIONS


def test_every_row_is_a_bundle_format_with_a_backend_module():
    for row in FORMATS:
        assert row.name in BUNDLE_FORMATS
        assert set(row.precisions) <= set(PRECISIONS)
        assert importlib.util.find_spec(f"wbc_edge.convert.{row.module}") is not None
        assert row.suffix.startswith(".")


def test_plan_crosses_formats_and_precisions_and_notes_missing_pairs():
    jobs, notes = plan(["tflite", "onnx", "openvino"], ["fp32", "int8"])
    assert [j.key for j in jobs] == [
        "tflite-fp32",
        "tflite-int8",
        "onnx-fp32",
        "openvino-fp32",
        "openvino-int8",
    ]
    assert notes == ["onnx: no int8 (offers fp32)"]
    int8 = jobs[1]
    assert int8.file == "model_int8.tflite"
    assert int8.options == {
        "io_dtype": "int8",
        "float_layers": "first,last",
        "dense_per_channel": False,
    }
    assert jobs[0].options == {}  # io_dtype and dense_per_channel apply to int8 only
    assert jobs[2].options == {"opset": 17}


def test_options_are_checked_against_the_row():
    jobs, _ = plan(
        ["tflite", "onnx"],
        ["fp32", "int8"],
        {"tflite": {"io_dtype": "uint8"}, "onnx": {"opset": "13"}},
    )
    assert {j.key: j.options for j in jobs} == {
        "tflite-fp32": {},
        "tflite-int8": {
            "io_dtype": "uint8",
            "float_layers": "first,last",
            "dense_per_channel": False,
        },
        "onnx-fp32": {"opset": 13},
    }
    jobs, _ = plan(["tflite"], ["int8"], {"tflite": {"dense_per_channel": "true"}})
    assert jobs[0].options["dense_per_channel"] is True


@pytest.mark.parametrize(
    ("formats", "precisions", "options", "message"),
    [
        (["tflite", "caffe"], ["fp32"], {}, "unknown format 'caffe'"),
        (["tflite"], ["int4"], {}, "unknown precision 'int4'"),
        (["onnx"], ["int8"], {}, "no requested format offers precision int8"),
        (["tflite"], ["int8"], {"tflite": {"opset": "17"}}, "tflite has no option 'opset'"),
        (["tflite"], ["fp32"], {"tflite": {"io_dtype": "uint8"}}, "applies to int8 only"),
        (["tflite"], ["int8"], {"tflite": {"io_dtype": "int16"}}, "io_dtype=int16 is not one"),
        (["onnx"], ["fp32"], {"onnx": {"opset": "x"}}, "cannot read 'x'"),
        (["tflite"], ["int8"], {"tflite": {"dense_per_channel": "maybe"}}, "cannot read 'maybe'"),
        (["onnx"], ["fp32"], {"openvino": {}}, "not being converted"),
    ],
)
def test_bad_requests_fail_with_one_line(formats, precisions, options, message):
    with pytest.raises(ConvertError) as err:
        plan(formats, precisions, options, where="models/x")
    text = str(err.value)
    assert message in text and text.startswith("models/x: ") and "\n" not in text


def test_parse_option():
    assert parse_option("onnx.opset=13") == ("onnx", "opset", "13")
    with pytest.raises(ConvertError, match=r"FORMAT\.NAME=VALUE"):
        parse_option("opset=13")
    assert get_format("openvino").suffix == ".xml"
