"""The shipped default under another camera: same cells and labels, flags instead of guesses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from repo_paths import REPO

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.decode import decode_image
from wbc_edge.core.runtime import open_runtime
from wbc_edge.edge_app.classify import Classifier

pytestmark = pytest.mark.edge

ROOT = REPO
FRAMES = sorted(p for p in (ROOT / "samples" / "frames").glob("*.jpg") if "no_wbc" not in p.name)


def gains(rgb: np.ndarray, r: float, g: float, b: float) -> np.ndarray:
    x = rgb.astype(np.float32) * np.array([r, g, b], np.float32)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def runtime():
    with open_runtime(load_bundle(ROOT / "models" / "default"), threads=1) as rt:
        yield rt


def labels(rt, frames: list[np.ndarray]) -> list[list[str]]:
    clf = Classifier(rt, "field")
    return [[c.label for c in clf.classify(f).cells] for f in frames]


@pytest.mark.parametrize(
    ("name", "shift"),
    [
        ("warm lamp", lambda x: gains(x, 1.12, 1.0, 0.85)),
        ("cool LED", lambda x: gains(x, 0.88, 1.0, 1.12)),
        ("1280x960 sensor", lambda x: cv2.resize(x, None, fx=2, fy=2)),
    ],
)
def test_another_camera_gives_the_same_cells_and_labels(runtime, name: str, shift) -> None:
    frames = [decode_image(p) for p in FRAMES]
    assert labels(runtime, [shift(f) for f in frames]) == labels(runtime, frames)


def test_the_scale_is_measured_and_follows_the_sensor(runtime) -> None:
    frames = [decode_image(p) for p in FRAMES]
    small, big = Classifier(runtime, "field"), Classifier(runtime, "field")
    for f in frames:
        small.classify(f)
        big.classify(cv2.resize(f, None, fx=2, fy=2))
    assert 1.8 < small.scale < 2.6
    assert big.scale / small.scale == pytest.approx(2.0, rel=0.05)


def test_frames_unfit_to_count_from_are_flagged_not_counted(runtime) -> None:
    clf = Classifier(runtime, "field")
    frame = decode_image(FRAMES[0])
    glass = np.full_like(frame, 210)
    blurred = cv2.GaussianBlur(frame, (0, 0), 10)
    for rgb, flag in ((glass, "no_red_cells"), (blurred, "out_of_focus")):
        result = clf.classify(rgb)
        assert flag in result.quality.flags and not result.counted
    assert clf.classify(frame).counted
