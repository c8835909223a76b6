"""The absolute quality floor: a chance-level float model is flagged in convert, recorded in
bundle.json, and the edge app warns when it loads it (no TensorFlow)."""

from __future__ import annotations

import json
import shutil

import numpy as np
from repo_paths import REPO

from wbc_edge.convert.quality_floor import quality_record
from wbc_edge.core.bundle import load_bundle
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.model_quality import quality_warning

ROOT = REPO
CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
LABELS = np.repeat(np.arange(4), 25)


def record(preds: np.ndarray, labels: np.ndarray = LABELS) -> dict:
    return quality_record(labels, preds, CLASSES, "test set", "2026-01-01T00:00:00+00:00")


def test_one_class_for_everything_is_below_the_floor():
    q = record(np.full(len(LABELS), 3))  # NEUTROPHIL for every cell, accuracy 0.25
    assert q["passed"] is False and q["accuracy"] == 0.25 and q["chance"] == 0.25
    assert "accuracy 0.250 < 0.450" in q["reason"]
    assert "recall below 0.3 for EOSINOPHIL, LYMPHOCYTE, MONOCYTE" in q["reason"]
    assert all(isinstance(v, (int, float, str, bool)) for v in q.values())  # flat, for the schema


def test_a_good_model_passes_and_a_collapsed_class_alone_fails():
    good = LABELS.copy()
    good[::10] = (good[::10] + 1) % 4  # 90 % right, every class recalled
    assert record(good)["passed"] and record(good)["reason"] == ""
    collapsed = good.copy()
    collapsed[LABELS == 2] = 1  # MONOCYTE never predicted, accuracy still 0.7
    q = record(collapsed)
    assert not q["passed"] and q["worst_class"] == "MONOCYTE" and q["worst_recall"] == 0.0
    assert q["reason"] == "recall below 0.3 for MONOCYTE"


def test_chance_is_the_commonest_class_share():
    labels = np.array([0] * 80 + [1] * 20)
    q = record(np.zeros(100, np.int64), labels)  # always the majority class: 0.8 "accuracy"
    assert q["chance"] == 0.8 and not q["passed"]


def test_edge_warns_in_one_line_when_it_loads_a_bundle_below_the_floor(tmp_path, caplog):
    bundle = shutil.copytree(ROOT / "models" / "default", tmp_path / "b")
    data = json.loads((bundle / "bundle.json").read_text())
    data["quality"] = record(np.full(len(LABELS), 3))
    (bundle / "bundle.json").write_text(json.dumps(data))
    loaded = load_bundle(bundle)
    assert loaded.quality == data["quality"]  # read back as written
    cells = ROOT / "samples" / "cells" / "NEUTROPHIL"
    argv = ["classify", "--model", str(bundle), "--source", str(cells), "--mode", "cell"]
    assert main([*argv, "--runtime", "litert"]) == 0
    lines = [r for r in caplog.records if "quality floor" in r.getMessage()]  # stderr via run_cli
    assert len(lines) == 1 and lines[0].levelname == "WARNING"
    message = lines[0].getMessage()
    assert "\n" not in message and "recall below 0.3" in message
    assert message.startswith(f"warning: model '{loaded.name}' is below")


def test_bundles_without_a_record_or_above_the_floor_load_quietly():
    assert quality_warning({}, "old") is None  # converted before the floor existed
    good = LABELS.copy()
    assert quality_warning(record(good), "good") is None
    assert "below the quality floor" in quality_warning(record(np.zeros(100, int)), "bad")
