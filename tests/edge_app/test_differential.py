"""The differential a lab reads: calibrated probabilities, the count corrected for the model's
known confusions with its interval, and the run's light pooled over its frames."""

from __future__ import annotations

import numpy as np
import pytest
from repo_paths import REPO
from synthetic import render_field

from wbc_edge.core.colour import Illumination, colour_lut, measure_illumination, pooled_illumination
from wbc_edge.core.label_shift import (
    confusion_rates,
    corrected_differential,
    estimate_shares,
)
from wbc_edge.core.preprocess_spec import ColourSpec
from wbc_edge.core.temperature import calibrate, fit_temperature, nll, reliability
from wbc_edge.edge_app.light import CALIBRATION_FRAMES, RunLight
from wbc_edge.edge_app.report import count_table
from wbc_edge.edge_app.summary import DifferentialCount

pytestmark = pytest.mark.edge

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
# A model that reads 10 % of neutrophils as eosinophils, 15 % of monocytes as neutrophils.
CONFUSION = np.array([[470, 0, 0, 30], [0, 480, 15, 5], [0, 5, 420, 75], [50, 0, 0, 450]])
SPEC = ColourSpec("reference", (207.0, 207.0, 203.0), (191.0, 170.0, 177.0), "run")


def overconfident(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Predictions right 70 % of the time, each at confidence about 0.97."""
    labels = rng.integers(0, 4, n)
    top = np.where(rng.random(n) < 0.7, labels, (labels + rng.integers(1, 4, n)) % 4)
    logits = rng.normal(0, 0.3, (n, 4))
    logits[np.arange(n), top] += 4.0
    p = np.exp(logits)
    return (p / p.sum(1, keepdims=True)).astype(np.float32), labels


def test_temperature_keeps_labels_and_fixes_overconfidence() -> None:
    probs, labels = overconfident(4000, np.random.default_rng(0))
    t = fit_temperature(probs, labels)
    assert t > 1.5  # an overconfident model is cooled
    fixed = calibrate(probs, t)
    assert (fixed.argmax(1) == probs.argmax(1)).all()
    np.testing.assert_allclose(fixed.sum(1), 1.0, atol=1e-5)
    assert nll(fixed, labels) < nll(probs, labels)
    assert reliability(fixed, labels)[0] < 0.5 * reliability(probs, labels)[0]
    assert calibrate(probs, None) is not None and np.array_equal(calibrate(probs, 1.0), probs)


def observed_counts(true_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a model with CONFUSION's rates reports for cells of these true counts."""
    rates = CONFUSION / CONFUSION.sum(1, keepdims=True)
    return sum(rng.multinomial(int(n), rates[i]) for i, n in enumerate(true_counts))


@pytest.mark.parametrize(
    "true_percent",
    [(3, 30, 7, 60), (1, 10, 4, 85), (18, 25, 7, 50), (3, 27, 18, 52)],
    ids=["normal", "neutrophilia", "eosinophilia", "monocytosis"],
)
def test_the_correction_recovers_any_mix(true_percent: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    true = np.asarray(true_percent) * 100  # 10,000 cells: sampling noise well under a point
    seen = observed_counts(true, rng)
    raw = 100 * seen / seen.sum()
    corrected = 100 * estimate_shares(seen, confusion_rates(CONFUSION))
    assert np.abs(corrected - true_percent).max() < 1.0
    if true_percent[3] >= 50:  # misread neutrophils inflate the eosinophils of raw counts
        assert raw[0] - true_percent[0] > 2.5


def test_the_interval_covers_the_truth_and_few_cells_give_the_raw_count() -> None:
    rng = np.random.default_rng(2)
    true = np.array([3, 30, 7, 60]) * 3  # a 300-cell smear
    seen = observed_counts(true, rng)
    diff = corrected_differential(CLASSES, seen.tolist(), CONFUSION, bootstrap=300)
    assert diff.corrected is not None and diff.low is not None and diff.high is not None
    for i, pct in enumerate((3, 30, 7, 60)):
        assert diff.low[i] <= pct / 100 <= diff.high[i]
        assert diff.low[i] <= diff.corrected[i] <= diff.high[i]
    few = corrected_differential(CLASSES, [1, 5, 1, 10], CONFUSION)
    assert few.corrected is None and "17 cells" in few.note
    none = corrected_differential(CLASSES, seen.tolist(), None)
    assert none.corrected is None and "no out-of-fold confusion" in none.note


def test_count_table_reports_the_estimate_and_keeps_the_raw_count() -> None:
    rng = np.random.default_rng(3)
    seen = observed_counts(np.array([3, 30, 7, 60]) * 3, rng)
    counts = dict(zip(CLASSES, (int(v) for v in seen), strict=True))
    model = {"confusion": CONFUSION.tolist(), "min_cells": 50}
    table = count_table(counts, 0.6, None, model)
    assert table["estimate"] == "corrected"
    eos = table["rows"][0]
    assert eos["raw_percent"] == pytest.approx(
        100 * counts["EOSINOPHIL"] / sum(counts.values()), abs=0.01
    )
    assert eos["percent"] < eos["raw_percent"]  # misread neutrophils taken back out
    assert eos["ci95_low"] <= eos["percent"] <= eos["ci95_high"]
    plain = count_table(counts, 0.6)
    assert plain["estimate"] == "raw" and plain["rows"][0]["percent"] == eos["raw_percent"]


def test_the_printed_summary_shows_both_counts() -> None:
    rng = np.random.default_rng(4)
    seen = observed_counts(np.array([3, 30, 7, 60]) * 3, rng)
    count = DifferentialCount(CLASSES, 0.6, confusion=CONFUSION.tolist())
    for cls, n in zip(CLASSES, seen, strict=True):
        for _ in range(int(n)):
            count.add_cell(cls, 0.9)
    text = count.format()
    assert "differential % (95 % interval)" in text and "raw %" in text
    assert count.to_dict()["differential"]["corrected_percent"] is not None


def camera(rgb: np.ndarray, k: tuple[float, float, float]) -> np.ndarray:
    return np.clip(rgb.astype(np.float32) * np.asarray(k, np.float32) + 0.5, 0, 255).astype(
        np.uint8
    )


def test_the_run_light_is_pooled_then_fixed_and_a_new_lamp_is_reported() -> None:
    rng = np.random.default_rng(5)
    frames = [render_field(rng, n_cells=1)[0] for _ in range(CALIBRATION_FRAMES + 4)]
    light = RunLight(SPEC)
    seen = [measure_illumination(f, SPEC) for f in frames]
    tables = [light.table(s) for s in seen[:CALIBRATION_FRAMES]]
    assert light.fixed is not None and "pooled over the first 16 frames" in light.describe()
    expected = pooled_illumination(seen[:CALIBRATION_FRAMES])
    assert light.fixed == expected
    after = light.table(seen[CALIBRATION_FRAMES])
    assert np.array_equal(after, colour_lut(expected, SPEC))  # one table from now on
    assert tables[0] is not None
    for f in frames[:4]:  # another lamp: reported, not followed
        light.table(measure_illumination(camera(f, (1.25, 1.0, 0.8)), SPEC))
    assert light.drift is not None and "another lamp" in light.describe()
    assert light.fixed == expected


def test_one_image_alone_uses_its_own_light_and_says_so() -> None:
    rgb = render_field(np.random.default_rng(6), n_cells=1)[0]
    light = RunLight(SPEC)
    own = measure_illumination(rgb, SPEC)
    light.prime([own])
    assert light.fixed == Illumination(own.background, own.red_cell)
    assert "one frame's own estimate" in light.describe()


def test_a_profile_fixes_the_light_from_the_first_frame() -> None:
    profile = Illumination((200.0, 190.0, 180.0), (180.0, 150.0, 160.0))
    light = RunLight(SPEC, profile, "the camera profile's")
    rgb = render_field(np.random.default_rng(7), n_cells=1)[0]
    assert np.array_equal(light.table(measure_illumination(rgb, SPEC)), colour_lut(profile, SPEC))
    assert "the camera profile's" in light.describe()


def test_classify_report_gives_the_corrected_differential_and_the_raw_count(
    tmp_path, edge_bundle
) -> None:
    import csv
    import json
    import shutil

    from wbc_edge.core.bundle import CountModel, load_bundle, save_bundle
    from wbc_edge.edge_app.cli import main

    bundle_dir = tmp_path / "bundle"
    shutil.copytree(edge_bundle, bundle_dir)
    bundle = load_bundle(bundle_dir)
    k = len(bundle.classes)
    confusion = (np.eye(k, dtype=int) * 90 + 10).tolist()  # every class misread 10 % of the time
    bundle.count_model = CountModel(1.5, confusion, "a test's confusions", min_cells=1)
    save_bundle(bundle)
    frames = REPO / "samples" / "frames"
    report = tmp_path / "report"
    assert main(["classify", "--model", str(bundle_dir), "--source", str(frames),
                 "--report", str(report)]) in (0, 1)  # fmt: skip
    data = json.loads((report / "report.json").read_text())
    assert data["count"]["estimate"] == "corrected"
    assert data["meta"]["count_model"]["confusion"] == confusion
    with open(report / "count.csv", newline="") as fh:
        rows = {r["class"]: r for r in csv.DictReader(fh)}
    n = data["count"]["cells"]
    assert n > 0
    for row in data["count"]["rows"]:
        got = rows[row["class"]]
        assert got["estimate"] == "corrected"
        assert float(got["raw_percent"]) == pytest.approx(100 * row["cells"] / n, abs=0.01)
        assert float(got["ci95_low"]) <= float(got["percent"]) <= float(got["ci95_high"])
    assert sum(float(rows[c]["percent"]) for c in bundle.classes) == pytest.approx(100, abs=0.1)
    html = (report / "report.html").read_text()
    assert "differential % (corrected)" in html and "raw %" in html


def test_a_folder_is_sampled_evenly_for_the_runs_light(tmp_path) -> None:
    import cv2

    from wbc_edge.edge_app.sources.expand import expand_inputs
    from wbc_edge.edge_app.sources.files import spread_sample

    for i in range(20):  # a folder sorted by what it holds: the first files are alike
        bgr = np.zeros((64, 64, 3), np.uint8)
        bgr[..., 2], bgr[..., 1], bgr[..., 0] = 10 * i, 120, 200  # red carries the file's number
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), bgr)
    inputs = expand_inputs(str(tmp_path))
    picked = [int(rgb[0, 0, 0]) // 10 for rgb in spread_sample(inputs, 4)]
    assert picked == [0, 6, 13, 19]
    assert spread_sample(inputs[:4], 4) == []  # no more files than frames: read them in order
