"""The stage moves: the shift between frames is measured, a cell sliding across the view keeps
one track, and no track carries over into a new field (the issue's 5 fields x 10 frames)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from repo_paths import REPO

from wbc_edge.core.decode import decode_stain_image
from wbc_edge.edge_app.field_change import FieldMotion
from wbc_edge.edge_app.tracking import StageTracker

pytestmark = pytest.mark.edge

FRAMES = sorted((REPO / "samples" / "frames").glob("*.jpg"))
CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
W, H = 400, 300


@dataclass
class Cell:
    box: tuple[int, int, int, int] | None
    probs: dict[str, float]


def cell(box, label: str) -> Cell:
    return Cell(box, {c: (0.97 if c == label else 0.01) for c in CLASSES})


@pytest.fixture(scope="module")
def fields() -> list[np.ndarray]:
    """The five 640x480 sample fields (the crop of a sixth is smaller)."""
    out = [decode_stain_image(p) for p in FRAMES]
    return [f for f in out if f.shape[:2] == (480, 640)]


def window(rgb: np.ndarray, x: int, y: int) -> np.ndarray:
    return np.ascontiguousarray(rgb[y : y + H, x : x + W])


def test_the_shift_between_two_views_of_one_field_is_measured(fields) -> None:
    for rgb in fields:
        motion = FieldMotion()
        assert motion.update(window(rgb, 100, 80)).kind == "new"
        moved = motion.update(window(rgb, 160, 50))  # the view moved right 60, up 30
        assert moved.kind == "same"
        assert moved.shift == pytest.approx((-60, 30), abs=1.5)  # the slide's content moved


def test_another_field_is_unsure_then_new_and_blur_is_not_a_new_field(fields) -> None:
    motion = FieldMotion()
    motion.update(window(fields[0], 0, 0))
    assert motion.update(window(fields[1], 0, 0)).kind == "unsure"
    assert motion.update(window(fields[1], 0, 0)).kind == "new"
    blurred = cv2.blur(window(fields[1], 20, 0), (31, 1))  # a fast move, 31 px of motion blur
    assert motion.update(blurred).kind == "same"
    assert motion.fields == 2


def test_five_fields_of_ten_frames_give_five_cells_never_one_track_across_fields(fields) -> None:
    """The issue's clip: a cell at the same place in each of 5 fields, 10 frames each."""
    tracker = StageTracker(CLASSES)
    rng = np.random.default_rng(0)
    counted, tracks_by_field = [], {}
    for f in range(50):
        field, label = f // 10, CLASSES[(f // 10) % 4]
        noise = rng.integers(-3, 4, (H, W, 3))
        rgb = np.clip(window(fields[field], 100, 80).astype(int) + noise, 0, 255).astype(np.uint8)
        ids, ended = tracker.update(f, rgb, [cell((150, 100, 250, 200), label)])
        counted += ended
        if ids[0][0] is not None:
            tracks_by_field.setdefault(ids[0][0], set()).add(field)
    counted += tracker.finish()
    assert len(counted) == 5 and all(len(v) == 1 for v in tracks_by_field.values())
    labels = [CLASSES[int(np.argmax(t.mean_probs()))] for t in counted]
    assert labels == [CLASSES[i % 4] for i in range(5)]  # no cell folded into another


def test_a_cell_sliding_across_the_view_keeps_one_track(fields) -> None:
    """The stage pans 50 px a frame: the cell's box moves further than IoU tracking reaches."""
    tracker = StageTracker(CLASSES)
    counted = []
    for f in range(5):
        x = 40 + 50 * f
        rgb = window(fields[2], x, 100)
        if f == 2:
            rgb = cv2.blur(rgb, (25, 1))  # blurred while moving
        box = (260 - x + 40, 120, 260 - x + 40 + 70, 190)
        _, ended = tracker.update(f, rgb, [cell(box, "MONOCYTE")])
        counted += ended
    counted += tracker.finish()
    assert len(counted) == 1 and counted[0].frames == 5
