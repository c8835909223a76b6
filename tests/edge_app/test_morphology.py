"""Morphology per found cell: synthetic cells of known geometry measure as drawn, at any scale,
and the JSONL record and the run report carry the measurements."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from repo_paths import REPO
from report_meta import report_meta

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.nucleus import locate_cell
from wbc_edge.core.preprocess_spec import NucleusParams
from wbc_edge.edge_app.classify import Classifier, classify_media
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.morphology import FEATURES, UM_PER_PX, count_lobes, measure_cell
from wbc_edge.edge_app.sources.files import MediaFrame

ROOT = REPO
DEFAULT = ROOT / "models" / "default"
PARAMS = NucleusParams()
# colours as after the colour step: glass, chromatin (B - G 120), violet cytoplasm (B - G 35)
GLASS, CHROMATIN, CYTOPLASM = (207, 207, 203), (100, 60, 180), (190, 165, 200)
GRANULE = (215, 150, 140)  # red/orange: R above B


def cell_image(scale: float = 1.0, nucleus_r: int = 20, cell_r: int = 32) -> np.ndarray:
    """A 320x240 training-scale slide (times `scale`) with one round cell at the centre."""
    w, h = round(320 * scale), round(240 * scale)
    rgb = np.full((h, w, 3), GLASS, np.uint8)
    centre = (w // 2, h // 2)
    cv2.circle(rgb, centre, round(cell_r * scale), CYTOPLASM, -1)
    cv2.circle(rgb, centre, round(nucleus_r * scale), CHROMATIN, -1)
    return rgb


def measure(rgb: np.ndarray, scale: float = 1.0, known: bool = False):
    nucleus = locate_cell(rgb, PARAMS, scale)
    assert nucleus is not None
    return measure_cell(rgb, nucleus, PARAMS, scale, 150, known)


@pytest.mark.parametrize("scale", [1.0, 2.0, 0.75])
def test_a_round_cell_measures_its_drawn_areas_in_training_px_at_any_scale(scale: float) -> None:
    m = measure(cell_image(scale), scale)
    assert m.nucleus_area_px == pytest.approx(math.pi * 20**2, rel=0.05)
    assert m.cell_area_px == pytest.approx(math.pi * 32**2, rel=0.05)
    assert m.nc_ratio == pytest.approx((20 / 32) ** 2, rel=0.06)
    assert m.lobes == 1
    assert m.solidity > 0.95 and m.convexity > 0.95 and m.elongation > 0.95
    assert m.nucleus_stain == pytest.approx(120, abs=3)
    assert (m.cytoplasm_r, m.cytoplasm_g, m.cytoplasm_b) == pytest.approx(CYTOPLASM, abs=4)
    assert m.granule_score == pytest.approx(0.0, abs=0.02)
    assert m.vector().shape == (len(FEATURES),)


def test_areas_are_given_in_square_micrometres_only_when_the_scale_is_known() -> None:
    known = measure(cell_image(), known=True).to_record()
    unknown = measure(cell_image(), known=False).to_record()
    assert known["nucleus_area_um2"] == pytest.approx(known["nucleus_area_px"] * UM_PER_PX**2, 0.01)
    assert known["cell_area_um2"] == pytest.approx(known["cell_area_px"] * UM_PER_PX**2, 0.01)
    assert unknown["nucleus_area_um2"] is None and unknown["cell_area_um2"] is None
    # a red cell (7.5 µm) is the ruler: a nucleus 52 training px across is 7.5 µm across
    assert pytest.approx(7.5) == 52 * UM_PER_PX


def two_lobes(bridge: int) -> np.ndarray:
    """A nucleus of two discs 12 px in radius, 34 px apart, joined by a bar `bridge` px wide."""
    rgb = np.full((240, 320, 3), GLASS, np.uint8)
    cv2.circle(rgb, (143, 120), 30, CYTOPLASM, -1)
    cv2.circle(rgb, (177, 120), 30, CYTOPLASM, -1)
    cv2.circle(rgb, (143, 120), 12, CHROMATIN, -1)
    cv2.circle(rgb, (177, 120), 12, CHROMATIN, -1)
    if bridge:
        cv2.rectangle(rgb, (143, 120 - bridge // 2), (177, 120 + bridge // 2), CHROMATIN, -1)
    return rgb


@pytest.mark.parametrize("bridge", [0, 3])
def test_two_separated_or_thinly_joined_blobs_are_two_lobes(bridge: int) -> None:
    m = measure(two_lobes(bridge))
    assert m.lobes == 2
    assert m.nucleus_area_px == pytest.approx(2 * math.pi * 144 + bridge * 10, rel=0.08)
    assert m.solidity < 0.9  # the waist between the lobes


def test_count_lobes_of_masks() -> None:
    mask = np.zeros((100, 100), np.uint8)
    assert count_lobes(mask) == 0
    cv2.circle(mask, (50, 50), 20, 1, -1)
    assert count_lobes(mask) == 1
    cv2.circle(mask, (50, 50), 20, 0, -1)
    for x in (20, 50, 80):  # three lobes on a thin strand
        cv2.circle(mask, (x, 50), 10, 1, -1)
    cv2.line(mask, (20, 50), (80, 50), 1, 2)
    assert count_lobes(mask) == 3


def test_red_granules_in_the_cytoplasm_give_the_granule_score() -> None:
    rgb = cell_image()
    ring = np.zeros(rgb.shape[:2], bool)
    yy, xx = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    r = np.hypot(xx - 160, yy - 120)
    ring = (r > 21) & (r < 31)
    specks = ring & (xx % 4 == 0) & (yy % 4 == 0)  # one pixel in 16, spread through the ring
    rgb[specks] = GRANULE
    m = measure(rgb)
    assert m.granule_score == pytest.approx(specks.sum() / ring.sum(), abs=0.02)
    assert m.granule_score > 0.04
    assert m.cell_area_px == pytest.approx(math.pi * 32**2, rel=0.05)  # specks stay in the cell


class FixedRuntime:
    """The default bundle's contract with a model that always answers its first class."""

    name, precision = "fake", "fp32"

    def __init__(self) -> None:
        self.bundle = load_bundle(DEFAULT, verify=False)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        out = np.full((len(batch), len(self.bundle.classes)), 0.1, np.float32)
        out[:, 0] = 0.7
        return out


def test_the_jsonl_record_carries_the_measurements(tmp_path: Path) -> None:
    classifier = Classifier(FixedRuntime(), mode="cell", scale=1.0)
    log = tmp_path / "cells.jsonl"
    frame = MediaFrame("cell.png", 0, cell_image())
    with JsonlWriter(log) as writer:
        classify_media([frame], classifier, writer)
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    m = record["morphology"]
    assert m["nucleus_area_px"] == pytest.approx(math.pi * 20**2, rel=0.05)
    assert m["nucleus_area_um2"] == pytest.approx(m["nucleus_area_px"] * UM_PER_PX**2, rel=0.01)
    assert m["lobes"] == 1 and m["nc_ratio"] == pytest.approx(0.39, abs=0.03)
    assert len(m["cytoplasm_rgb"]) == 3 and 0.0 <= m["granule_score"] <= 1.0
    assert "measure" in classifier.classify(cell_image()).timings


def test_the_run_report_carries_the_measurements(tmp_path: Path) -> None:
    from wbc_edge.edge_app.report import RunReport
    from wbc_edge.edge_app.summary import DifferentialCount

    runtime = FixedRuntime()
    classifier = Classifier(runtime, mode="cell", scale=1.0)
    classifier.keep_crops = True
    classes = list(runtime.bundle.classes)
    meta = report_meta(runtime.bundle.preprocessing, classes, mode="cell", scale=1.0)
    report = RunReport(tmp_path, meta, classes)
    count = DifferentialCount(classes, 0.6)
    classify_media([MediaFrame("cell.png", 0, two_lobes(3))], classifier, JsonlWriter(None),
                   on_frame=report)  # fmt: skip
    html = report.write(count).read_text()
    (cell,) = json.loads((tmp_path / "report.json").read_text())["cells"]
    assert cell["morphology"]["lobes"] == 2
    assert "N:C" in html and "2 lobes" in html
    row = (tmp_path / "cells.csv").read_text().splitlines()
    assert (
        "lobes" in row[0].split(",") and row[1].split(",")[row[0].split(",").index("lobes")] == "2"
    )
