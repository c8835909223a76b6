"""Counting each cell once while the stage moves: synthetic clips made from BCCD fields.

    python benchmarks/moving_stage.py DATA/bccd/JPEGImages [--fields 8] [--model models/default]

Each clip is a camera window (480x360) over real BCCD fields: held still, jumping between
fields (10 frames a field, and 3 at a low frame rate), or panning over a 2x2 mosaic of fields
at several speeds (px per frame), with motion blur while moving in one clip. Every frame goes
through the device's cell finder (`CellFinder`, the bundle's preprocessing) and the live
loop's tracker (`edge_app.tracking.StageTracker`), and, side by side, the tracker without the
stage (IoU only, as before field-change detection).

Cells present: the white cells the finder found in any frame, told apart by where they lie on
the slide (the window's offset is known: detections overlapping by IoU >= 0.3 there are one
cell). Counted: the tracks the live loop would count. Merged: a track that holds two cells
present; doubled: a cell present counted by more than one track; missed: a cell present no
track holds. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.decode import decode_stain_image
from wbc_edge.edge_app.finder import CellFinder
from wbc_edge.edge_app.tracking import CellTracker, StageTracker, _iou

W, H = 480, 360
CLASSES = ["A"]
PROBS = {"A": 1.0}


@dataclass
class Cell:
    box: tuple[int, int, int, int]
    probs: dict[str, float]


@dataclass
class Frame:
    rgb: np.ndarray
    place: int  # which slide (field or mosaic) the window lies on
    x: int  # the window's offset on it
    y: int


def noisy(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.integers(-3, 4, rgb.shape)
    return np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def centred(field: np.ndarray, finder: CellFinder) -> tuple[int, int]:
    """The window's offset that puts the field's first white cell at the window's centre, so
    every field's cell lies where the last field's was (what merged cells across fields)."""
    boxes = [b for b in finder.find(field, observe=False).boxes if b is not None]
    if not boxes:
        return 80, 60
    cx, cy = (boxes[0][0] + boxes[0][2]) // 2, (boxes[0][1] + boxes[0][3]) // 2
    h, w = field.shape[:2]
    return int(np.clip(cx - W // 2, 0, w - W)), int(np.clip(cy - H // 2, 0, h - H))


def still(fields, offsets, rng, n: int = 30) -> Iterator[Frame]:
    for i, (f, (x, y)) in enumerate(zip(fields, offsets, strict=True)):
        for _ in range(n):
            yield Frame(noisy(f[y : y + H, x : x + W], rng), i, x, y)


def jumps(fields, offsets, rng, per_field: int) -> Iterator[Frame]:
    for i, (f, (x, y)) in enumerate(zip(fields, offsets, strict=True)):
        for _ in range(per_field):
            yield Frame(noisy(f[y : y + H, x : x + W], rng), i, x, y)


def pans(mosaics, rng, step: int, blur: bool = False) -> Iterator[Frame]:
    """Diagonally across each mosaic, `step` px a frame (blurred along the move if `blur`)."""
    for k, mosaic in enumerate(mosaics):
        for fr in pan(mosaic, rng, step, blur):
            fr.place = k
            yield fr


def pan(mosaic, rng, step: int, blur: bool = False) -> Iterator[Frame]:
    mh, mw = mosaic.shape[:2]
    n = max(2, round(np.hypot(mw - W, mh - H) / step))
    for i in range(n + 1):
        x, y = round((mw - W) * i / n), round((mh - H) * i / n)
        rgb = np.ascontiguousarray(mosaic[y : y + H, x : x + W])
        if blur and 0 < i < n:
            k = max(3, step // 2) | 1
            rgb = cv2.blur(rgb, (k, max(1, k * (mh - H) // (mw - W))))
        yield Frame(noisy(rgb, rng), 0, x, y)


def measure(frames: list[Frame], finder: CellFinder, stage: bool) -> dict[str, int]:
    """Run one clip through the finder and a tracker; cells present, counted, merged, ..."""
    tracker = StageTracker(CLASSES) if stage else CellTracker(CLASSES)
    slide_boxes, owners = [], []  # each detection: its box on the slide, its track
    counted = 0
    for i, fr in enumerate(frames):
        boxes = [b for b in finder.find(fr.rgb).boxes if b is not None]
        cells = [Cell(b, PROBS) for b in boxes]
        if stage:
            ids, ended = tracker.update(i, fr.rgb, cells)
        else:
            ids = tracker.update(i, cells)
            ended = tracker.expire(i)
        counted += len(ended)
        for b, (track, _) in zip(boxes, ids, strict=True):
            slide_boxes.append((fr.place, (b[0] + fr.x, b[1] + fr.y, b[2] + fr.x, b[3] + fr.y)))
            owners.append(track)
    counted += len(tracker.finish())
    cluster = _clusters(slide_boxes)
    present = len(set(cluster))
    by_track: dict[int, set[int]] = {}
    by_cell: dict[int, set[int]] = {}
    for c, t in zip(cluster, owners, strict=True):
        if t is not None:
            by_track.setdefault(t, set()).add(c)
            by_cell.setdefault(c, set()).add(t)
    return {
        "frames": len(frames),
        "present": present,
        "counted": counted,
        "merged": sum(len(v) > 1 for v in by_track.values()),
        "doubled": sum(len(v) > 1 for v in by_cell.values()),
        "missed": present - len(by_cell),
    }


def _clusters(boxes: list[tuple[int, tuple]]) -> list[int]:
    """Union-find of detections on the same slide overlapping by IoU >= 0.3."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (pi, bi) in enumerate(boxes):
        for j in range(i):
            pj, bj = boxes[j]
            if pi == pj and _iou(bi, bj) >= 0.3:
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(boxes))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="folder of BCCD JPEGImages")
    ap.add_argument("--fields", type=int, default=12, help="BCCD fields to use (>= 4)")
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--seed", type=int, default=0, help="of the noise")
    args = ap.parse_args(argv)
    files = sorted(args.data.glob("*.jpg"))
    if len(files) < max(5, args.fields):
        print(
            f"moving_stage: {args.data}: needs {max(5, args.fields)} .jpg fields", file=sys.stderr
        )
        return 2
    rng = np.random.default_rng(args.seed)
    # Spread over the set: BCCD holds overlapping views of one slide under nearby numbers,
    # which are one field moved, not two fields.
    picked = np.linspace(0, len(files) - 1, args.fields).round().astype(int)
    fields = [decode_stain_image(files[i]) for i in picked]
    fields = [f for f in fields if f.shape[:2] == (480, 640)]
    quads = [fields[i : i + 4] for i in range(0, len(fields) - 3, 4)]
    mosaics = [np.vstack([np.hstack(q[0:2]), np.hstack(q[2:4])]) for q in quads]
    spec = load_bundle(args.model).preprocessing
    finder = CellFinder(spec, "field")
    finder.prime_light(fields)
    finder.prime_scale(fields)
    offsets = [centred(f, finder) for f in fields]
    n = len(fields)
    clips = {
        f"still, {n} fields x 30 frames": list(still(fields, offsets, rng)),
        f"jumps, {n} fields x 10 frames": list(jumps(fields, offsets, rng, 10)),
        f"jumps, low frame rate ({n} x 2)": list(jumps(fields, offsets, rng, 2)),
        "pan 8 px/frame": list(pans(mosaics, rng, 8)),
        "pan 30 px/frame": list(pans(mosaics, rng, 30)),
        "pan 90 px/frame (low frame rate)": list(pans(mosaics, rng, 90)),
        "pan 40 px/frame, blurred while moving": list(pans(mosaics, rng, 40, blur=True)),
    }
    print(
        f"{n} BCCD fields ({len(mosaics)} 2x2 mosaics for the pans), window {W}x{H}, "
        f"{finder.run_scale.describe()}"
    )
    print(
        "| clip | frames | cells present | counted | merged | doubled | missed | off "
        "| IoU only: counted | merged | doubled |"
    )
    print("| --- " * 11 + "|")
    for name, frames in clips.items():
        m = measure(frames, finder, stage=True)
        old = measure(frames, finder, stage=False)
        off = 100.0 * (m["counted"] - m["present"]) / max(1, m["present"])
        print(
            f"| {name} | {m['frames']} | {m['present']} | {m['counted']} | {m['merged']} "
            f"| {m['doubled']} | {m['missed']} | {off:+.0f} % | {old['counted']} "
            f"| {old['merged']} | {old['doubled']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
