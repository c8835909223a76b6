"""The "how to add" tables (docs/architecture.md): each is the one place to edit, and every row
has what the rest of the program needs from it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from wbc_edge.core import runtime
from wbc_edge.core.vocab import (
    FORMAT_RUNTIMES,
    FORMAT_TABLE,
    FORMATS,
    PRECISIONS,
    RUNTIME_TABLE,
    RUNTIMES,
    artifact_key,
)
from wbc_edge.edge_app.macs import COUNTERS
from wbc_edge.edge_app.sources.forms import FORMS

pytestmark = pytest.mark.edge
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_the_format_table_names_every_bundle_format_once():
    assert tuple(row.name for row in FORMAT_TABLE) == FORMATS
    for row in FORMAT_TABLE:
        assert set(row.precisions) <= set(PRECISIONS)
        assert row.suffix == "" or row.suffix.startswith(".")
        assert row.runtimes or row.exporter is None  # a written format must load somewhere


def test_every_exporter_is_a_convert_module():
    for row in FORMAT_TABLE:
        if row.exporter is not None:
            assert (Path(__file__).parents[1] / "convert" / f"{row.exporter}.py").is_file()


def test_every_runtime_has_a_backend_class_a_rank_and_an_install_hint():
    assert set(runtime._BACKENDS) == set(RUNTIMES)
    ranks = [r.rank for r in RUNTIME_TABLE.values()]
    assert sorted(ranks) == list(range(len(ranks)))  # a strict order, no ties
    for name, row in RUNTIME_TABLE.items():
        assert runtime._BACKENDS[name].name == name
        assert row.install.startswith("pip install")


def test_every_device_format_has_a_macs_counter():
    assert set(COUNTERS) == set(FORMAT_RUNTIMES)


def test_the_artifact_key_is_format_dash_precision():
    assert artifact_key("tflite", "int8") == "tflite-int8"


def test_every_camera_form_has_an_example_its_pattern_matches():
    for form in FORMS:
        assert form.pattern.fullmatch(form.example), form.form


def test_the_architecture_doc_names_each_table():
    text = DOC.read_text()
    section = text[text.index("## How to add") :]
    for name in ("FORMAT_TABLE", "@backend", "MODELS", "FORMS", "COUNTERS"):
        assert re.search(re.escape(name), section), name


def test_every_model_row_says_how_its_base_is_built():
    if importlib.util.find_spec("keras") is None:
        pytest.skip("the training extra is not installed")
    from wbc_edge.train.models import MODELS

    for info in MODELS.values():
        sources = [info.keras_app, info.trunk, info.lite_variant]
        if info.family == "custom":
            assert sources == [None, None, None]
        else:
            assert sum(s is not None for s in sources) == 1, info.name
        assert info.params > 0
