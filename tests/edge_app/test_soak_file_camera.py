"""Soak: a `file:` camera looping over good and hostile images, for a bounded number of loops.

The count must be exactly the good frames' cells times the loops (no replay from the start, no
frame counted twice), every hostile file an error record in every loop, and memory flat.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from repo_paths import REPO
from synthetic import png_header

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.runtime import open_runtime
from wbc_edge.edge_app.classify import Classifier
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.live import LiveOptions, LiveRun
from wbc_edge.edge_app.sources import FileCamera, FrameStream

pytestmark = pytest.mark.edge

ROOT = REPO
DEFAULT = ROOT / "models" / "default"
FRAME = ROOT / "samples" / "frames" / "BloodImage_00000.jpg"  # one white cell
LOOPS = 25
WARM_UP = 5  # loops before memory is measured (caches, first-call allocations)


def soak_folder(root: Path) -> tuple[Path, int, int]:
    """Hostile files sort first, so every loop reads all of them before its good frames."""
    root.mkdir()
    (root / "a_bomb.png").write_bytes(png_header(100_000, 100_000))
    (root / "b_big.png").write_bytes(png_header(9000, 9000))
    (root / "c_garbage.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "d_cut.png").write_bytes(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1][:40])
    cv2.imwrite(str(root / "e_grey.png"), np.full((64, 64), 90, np.uint8))
    shutil.copy(FRAME, root / "y_good.jpg")
    shutil.copy(FRAME, root / "z_good.jpg")
    return root, 2, 5  # folder, good frames (one cell each), hostile files


def test_file_camera_soak_counts_exactly_and_memory_stays_flat(tmp_path: Path) -> None:
    folder, good, hostile = soak_folder(tmp_path / "soak")
    out = tmp_path / "soak.jsonl"
    frames = good * LOOPS
    used: list[int] = []

    def measured(stream):
        for i, item in enumerate(stream):
            if i in (good * WARM_UP, frames - 1):
                used.append(tracemalloc.get_traced_memory()[0])
            yield item

    with open_runtime(load_bundle(DEFAULT), runtime="litert") as rt:
        classifier = Classifier(rt, "field")
        camera = FileCamera(str(folder), loop=True)
        stop = threading.Event()
        with JsonlWriter(out) as writer:
            live = LiveRun(classifier, writer, LiveOptions("soak", max_frames=frames), camera)
            logging.disable(logging.WARNING)  # pytest keeps every log record: not ours to count
            tracemalloc.start()
            try:
                count = live.run(measured(FrameStream(camera, stop)), stop)
            finally:
                tracemalloc.stop()
                logging.disable(logging.NOTSET)
    assert count.frames == frames and count.cells == good * LOOPS  # one cell per good frame
    assert count.errors == hostile * LOOPS
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum("label" in r for r in records) == good * LOOPS
    assert sum("error" in r for r in records) == hostile * LOOPS
    growth = used[1] - used[0]
    assert growth < 256 * 1024, f"memory grew {growth / 1024:.0f} KiB over {LOOPS - WARM_UP} loops"
