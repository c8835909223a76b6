"""Parity arithmetic and calibration choice on hand-made inputs (no TensorFlow needed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wbc_edge.convert.calibration import Labelled, bundle_data, stratified_pick
from wbc_edge.convert.parity import Thresholds, compare, scores
from wbc_edge.convert.source import HeldOut
from wbc_edge.core.bundle import new_bundle
from wbc_edge.core.errors import BundleError
from wbc_edge.core.preprocess_spec import PreprocessSpec

CLASSES = ["A", "B", "C"]


def held_out(labels: list[int]) -> HeldOut:
    n = len(labels)
    return HeldOut(
        np.zeros((n, 8, 8, 3), np.float32),
        np.array(labels),
        [f"f{i}.png" for i in range(n)],
        Path("."),
        "test",
    )


def onehot(preds: list[int], confidence: float = 0.9) -> np.ndarray:
    p = np.full((len(preds), 3), (1 - confidence) / 2, np.float32)
    p[np.arange(len(preds)), preds] = confidence
    return p


def test_scores_match_hand_counts():
    s = scores(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0]), 3)
    assert s.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.recall == pytest.approx([0.5, 1.0, 0.5])
    # precision A 1/2, B 2/3, C 1/1 → F1 = 2PR/(P+R)
    assert s.f1 == pytest.approx([0.5, 0.8, 2 / 3], abs=1e-6)


def test_compare_reports_flips_drop_and_prob_differences():
    labels = [0, 1, 2, 0]
    f = onehot([0, 1, 2, 0])
    a = onehot([0, 1, 1, 0], 0.8)
    out = compare(f, a, held_out(labels), CLASSES, Thresholds(0.99, 0.01))
    assert out["agreement"] == 0.75
    assert out["drop"] == pytest.approx(0.25)
    assert out["max_abs_prob_diff"] == pytest.approx(0.8)  # C: 0.9 vs 0.1
    assert [x["file"] for x in out["flipped"]] == ["f2.png"]
    assert out["flipped"][0] == {
        "file": "f2.png",
        "label": "C",
        "float": "C",
        "artifact": "B",
        "float_confidence": 0.9,
        "artifact_confidence": 0.8,
    }
    assert out["recall_change"] == pytest.approx([0.0, 0.0, -1.0])
    assert out["class_flips"] == [{"from": "C", "to": "B", "n": 1}]
    assert not out["passed"] and len(out["reasons"]) == 3
    assert out["reasons"][2] == "C recall fell 100.00 points (1.000 → 0.000) > 2.00"


WBC = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]


def moves_one_class() -> tuple[np.ndarray, np.ndarray, HeldOut]:
    """1,300 cells (100 neutrophils): the artifact turns 3 neutrophils the float model got
    right into eosinophils and gets 3 lymphocytes right that the float model missed: accuracy
    flat, agreement 0.9954, NEUTROPHIL recall 3 points lower."""
    labels = np.repeat([0, 1, 2, 3], [400, 400, 400, 100])
    float_pred = labels.copy()
    float_pred[400:403] = 2  # three lymphocytes the float model calls monocytes
    art_pred = float_pred.copy()
    art_pred[400:403] = 1  # the artifact gets them right
    art_pred[1200:1203] = 0  # and moves three neutrophils into eosinophils
    f, a = np.full((len(labels), 4), 0.02, np.float32), np.full((len(labels), 4), 0.02, np.float32)
    f[np.arange(len(labels)), float_pred] = 0.94
    a[np.arange(len(labels)), art_pred] = 0.94
    ho = HeldOut(
        np.zeros((len(labels), 1, 1, 3)), labels, [f"{i}.png" for i in labels], Path("."), "t"
    )
    return f, a, ho


def test_an_int8_that_moves_one_class_fails_the_per_class_gate():
    f, a, ho = moves_one_class()
    old_gate = Thresholds(0.99, 0.01, max_class_drop=1.0)
    out = compare(f, a, ho, WBC, old_gate)
    assert out["agreement"] == pytest.approx(1 - 6 / 1300) and out["drop"] == 0.0
    assert out["passed"]  # agreement and accuracy alone let it through
    out = compare(f, a, ho, WBC, Thresholds(0.99, 0.01))  # the default: 2 points per class
    assert not out["passed"]
    assert out["reasons"] == ["NEUTROPHIL recall fell 3.00 points (1.000 → 0.970) > 2.00"]
    assert out["recall_change"] == pytest.approx([0.0, 0.0075, 0.0, -0.03])
    assert out["class_flips"] == [
        {"from": "MONOCYTE", "to": "LYMPHOCYTE", "n": 3},
        {"from": "NEUTROPHIL", "to": "EOSINOPHIL", "n": 3},
    ]
    assert compare(f, a, ho, WBC, Thresholds(0.99, 0.01, max_class_drop=0.03))["passed"]


def test_largest_probability_shifts_come_first():
    labels = [0, 1, 2, 0]
    f = onehot([0, 1, 2, 0])
    a = f.copy()
    a[1] = [0.3, 0.6, 0.1]  # B 0.9 → 0.6: shift 0.3
    a[3] = [0.8, 0.15, 0.05]  # A 0.9 → 0.8: shift 0.1
    out = compare(f, a, held_out(labels), CLASSES, Thresholds())
    shifts = out["largest_shifts"]
    assert [s["file"] for s in shifts] == ["f1.png", "f3.png"]  # unchanged images left out
    assert shifts[0]["shift"] == pytest.approx(0.3) and shifts[0]["artifact_confidence"] == 0.6


@pytest.mark.parametrize(
    ("min_agreement", "max_drop", "passed"),
    [(0.99, 0.01, True), (1.0, 0.0, True), (0.0, 1.0, True)],  # outside 0..1: refused
)
def test_thresholds_on_identical_predictions(min_agreement, max_drop, passed):
    f = onehot([0, 1, 2])
    out = compare(f, f.copy(), held_out([0, 1, 2]), CLASSES, Thresholds(min_agreement, max_drop))
    assert out["agreement"] == 1.0 and out["drop"] == 0.0
    assert out["passed"] is passed


def test_stratified_pick_interleaves_classes_and_source_cells():
    rows = [
        Labelled(f"{c}/{g}_{k}.jpg", c, f"{c}{g}") for c in "AB" for g in range(3) for k in range(5)
    ]
    rows += [Labelled(f"C/{k}.jpg", "C", "C0") for k in range(2)]  # a small class
    order = stratified_pick(rows, seed=1)
    assert sorted(order, key=lambda r: r.path) == sorted(rows, key=lambda r: r.path)
    assert Counter(r.label for r in order[:8]) == {"A": 3, "B": 3, "C": 2}
    # within the first 3 picks of a class, every source cell appears once
    for c in "AB":
        picked = [r.group for r in order if r.label == c][:3]
        assert sorted(picked) == [f"{c}0", f"{c}1", f"{c}2"]
    assert stratified_pick(rows, seed=1) == order  # deterministic


@pytest.mark.parametrize(
    "prov",
    [
        lambda root: {"data": str(root), "split_manifest": "split.csv"},
        lambda root: {"data": {"root": str(root)}, "split": {"manifest": "split.csv"}},  # wbc-train
    ],
)
def test_bundle_data_reads_both_provenance_forms(tmp_path: Path, prov):
    data = tmp_path / "data"
    data.mkdir()
    bundle = new_bundle(tmp_path / "b", "x", CLASSES, PreprocessSpec(), **prov(data))
    bundle.root.mkdir()
    (bundle.root / "split.csv").write_text("path,class,group,side\n")
    assert bundle_data(bundle) == (data, bundle.root / "split.csv")


def test_bundle_without_data_provenance_says_what_to_pass(tmp_path: Path):
    bundle = new_bundle(tmp_path / "b", "x", CLASSES, PreprocessSpec())
    with pytest.raises(BundleError, match="--calib-data"):
        bundle_data(bundle)


@pytest.mark.parametrize("option", ["--min-agreement", "--max-drop", "--max-class-drop"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.01", "1.5", "2", "half"])
def test_gate_thresholds_outside_0_to_1_are_refused_in_one_line(option, value, capsys, tmp_path):
    from wbc_edge.convert.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--int8", f"{option}={value}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("wbc-convert: error: argument ") and option in err[-1]
    assert value in err[-1] and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("value", ["0", "1", "0.5"])
def test_gate_thresholds_at_the_ends_of_the_range_are_accepted(value):
    from wbc_edge.convert.cli import parser

    args = parser().parse_args(["b", "--min-agreement", value, "--max-drop", value])
    assert args.min_agreement == args.max_drop == float(value)


def test_openvino_errors_keep_the_reason_not_the_source_frames():
    from wbc_edge.core.errors import first_line

    exc = RuntimeError(
        "Exception from src/inference/src/cpp/core.cpp:117:\n"
        "Exception from src/inference/src/dev/plugin.cpp:54:\n"
        "Check 'false' failed at src/plugins/intel_cpu/src/graph.cpp:1234:\n"
        "[CPU] Cannot create the executor: not enough memory\n"
    )
    assert first_line(exc) == "[CPU] Cannot create the executor: not enough memory"
    assert first_line(ValueError("plain\nsecond")) == "plain"
    assert first_line(KeyError()) == "KeyError"


@pytest.mark.parametrize(("flag", "kind"), [("--data-root", "folder"), ("--groups", "file")])
def test_a_data_root_or_groups_file_that_is_not_there_is_one_line(flag, kind, capsys, tmp_path):
    from wbc_edge.convert.cli import main

    missing = tmp_path / "nope"
    assert main([str(tmp_path), "--int8", flag, str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"wbc-convert: {missing}: {flag}: no such {kind}"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 1.01])
def test_thresholds_from_python_are_range_checked_too(bad):
    with pytest.raises(ValueError, match="must be a number from 0 to 1"):
        Thresholds(min_agreement=bad)
    with pytest.raises(ValueError, match="must be a number from 0 to 1"):
        Thresholds(max_drop=bad)
    with pytest.raises(ValueError, match="must be a number from 0 to 1"):
        Thresholds(max_class_drop=bad)
