"""Another camera, another lamp: accuracy and detection under camera shifts, with no flags.

    python benchmarks/robustness.py --model models/default \\
        --kaggle /path/to/kaggle/TRAIN --bccd /path/to/bccd [--cells 600] [--frame-step 3] \\
        [--picture docs/img/robustness_shifts.png] [--only cell|field]

Each shift (white balance, gains per channel, gamma, exposure, magnification, sensor size,
blur, JPEG, noise) is applied to the images as a camera would, and the device's own
pipeline (`edge_app.classify.Classifier`: colour normalisation, run scale, quality, find,
the bundle's default runtime) runs on them with default settings, side by side in one run:

- cell mode, on the bundle's held-out side of its grouped split (Kaggle TRAIN images whose
  source cells the model never saw; `split.csv` names them): accuracy and recall per class;
- field mode, on BCCD frames: white-cell recall and precision against the VOC boxes (IoU
  >= 0.5, counted cells only), label agreement with the unshifted run, the run's scale
  estimate against the unshifted estimate times the known resize factor, and the share of
  frames with exactly one annotated white cell in which exactly one is counted.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detect_bccd import Box, match_pairs, wbc_boxes

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.decode import decode_image
from wbc_edge.core.runtime import open_runtime
from wbc_edge.edge_app.classify import Classifier
from wbc_edge.edge_app.light import CALIBRATION_FRAMES


@dataclass(frozen=True)
class Shift:
    """One camera change: a function of the RGB frame, and how it resizes the frame."""

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    factor: float = 1.0  # resize factor (1: colour or noise only)
    crop_height: float | None = None  # a 16:9 sensor: rows kept after resizing, of the height
    field_only: bool = False


def gains(r: float = 1.0, g: float = 1.0, b: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    k = np.array([r, g, b], np.float32)
    return lambda x: np.clip(x.astype(np.float32) * k + 0.5, 0, 255).astype(np.uint8)


def gamma(value: float) -> Callable[[np.ndarray], np.ndarray]:
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** value + 0.5, 0, 255).astype(np.uint8)
    return lambda x: cv2.LUT(x, lut)


def resize(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return lambda x: cv2.resize(x, None, fx=factor, fy=factor, interpolation=interp)


def sensor_16_9(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    """The same optics on a wider sensor: resize, then keep the middle 9/16 of the width."""

    def apply(x: np.ndarray) -> np.ndarray:
        big = resize(factor)(x)
        h = round(big.shape[1] * 9 / 16)
        top = (big.shape[0] - h) // 2
        return np.ascontiguousarray(big[top : top + h])

    return apply


def blur(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: cv2.GaussianBlur(x, (0, 0), sigma)


def jpeg(quality: int) -> Callable[[np.ndarray], np.ndarray]:
    def apply(x: np.ndarray) -> np.ndarray:
        _, buf = cv2.imencode(".jpg", x[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]

    return apply


def noise(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    def apply(x: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(x.size)  # the same noise for the same frame size
        n = rng.normal(0, sigma, x.shape).astype(np.float32)
        return np.clip(x.astype(np.float32) + n + 0.5, 0, 255).astype(np.uint8)

    return apply


SHIFTS = [
    Shift("as captured", lambda x: x),
    Shift("warm lamp (R x1.12, B x0.85)", gains(1.12, 1.0, 0.85)),
    Shift("cool LED (R x0.88, B x1.12)", gains(0.88, 1.0, 1.12)),
    Shift("green cast (G x1.08)", gains(1.0, 1.08, 1.0)),
    Shift("R x1.15", gains(r=1.15)),
    Shift("R x0.85", gains(r=0.85)),
    Shift("G x1.15", gains(g=1.15)),
    Shift("G x0.85", gains(g=0.85)),
    Shift("B x1.15", gains(b=1.15)),
    Shift("B x0.85", gains(b=0.85)),
    Shift("gamma 0.7 (brighter)", gamma(0.7)),
    Shift("gamma 1.5 (darker)", gamma(1.5)),
    Shift("exposure x1.15", gains(1.15, 1.15, 1.15)),
    Shift("exposure x0.7", gains(0.7, 0.7, 0.7)),
    Shift("blur sigma 1.5 px", blur(1.5)),
    Shift("JPEG quality 25", jpeg(25)),
    Shift("sensor noise sigma 8", noise(8.0)),
    Shift("magnification 0.7x", resize(0.7), 0.7),
    Shift("magnification 1.5x", resize(1.5), 1.5),
    Shift("magnification 2x", resize(2.0), 2.0),
    Shift("1280x960 sensor (2x)", resize(2.0), 2.0, field_only=True),
    Shift("1920x1080 sensor (3x, 16:9)", sensor_16_9(3.0), 3.0, 9 / 16 * 4 / 3, True),
]


def held_out(bundle_dir: Path, data: Path, limit: int) -> list[tuple[Path, str]]:
    """Up to `limit` images of the bundle's test side, evenly over its source cells, in
    turn (one copy of every cell, then a second of each, ...), as a run over new cells."""
    by_cell: dict[str, list[tuple[Path, str]]] = {}
    with open(bundle_dir / "split.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["side"] == "test":
                by_cell.setdefault(row["group"], []).append((data / row["path"], row["class"]))
    cells = [sorted(v) for _, v in sorted(by_cell.items())]
    out: list[tuple[Path, str]] = []
    for k in range(max(map(len, cells), default=0)):
        out += [c[k] for c in cells if k < len(c)]
    step = max(1, len(out) // limit)
    return out[::step][:limit]


def cell_mode(rt, images: list[tuple[np.ndarray, str]], shift: Shift) -> dict:
    clf = Classifier(rt, "cell")
    clf.prime([shift.apply(rgb) for rgb, _ in images[:CALIBRATION_FRAMES]])
    classes = clf.classes
    confusion = np.zeros((len(classes), len(classes)), int)
    missing = flagged = 0
    for rgb, cls in images:
        result = clf.classify(shift.apply(rgb))
        if not result.counted:
            flagged += 1
        if not result.cells:
            missing += 1
            continue
        confusion[classes.index(cls), classes.index(result.cells[0].label)] += 1
    n = len(images)
    recall = {c: confusion[i, i] / max(1, confusion[i].sum()) for i, c in enumerate(classes)}
    return {
        "accuracy": np.trace(confusion) / n,
        "recall": recall,
        "missing": missing,
        "flagged": flagged,
    }


def field_mode(
    rt, frames: list[tuple[str, np.ndarray, list[Box]]], shift: Shift, reference: dict | None
) -> dict:
    clf = Classifier(rt, "field")
    clf.prime([shift.apply(rgb) for _, rgb, _ in frames[:CALIBRATION_FRAMES]])
    tp = fn = fp = agree = compared = one_total = one_ok = flagged = 0
    labels: dict[tuple[str, int], str] = {}
    for name, rgb, truth in frames:
        img = shift.apply(rgb)
        moved = [m for m in (_moved(b, shift, rgb.shape) for b in truth) if m is not None]
        boxes = [b for b, counts in moved if counts]
        ignore = [b for b, counts in moved if not counts]
        result = clf.classify(img)
        counted = result.cells if result.counted else []
        flagged += not result.counted
        found = [c.box for c in counted]
        _, cut = _match_pairs(ignore, found)  # cells the crop cut in half: no error either way
        found = [f for j, f in enumerate(found) if j not in cut]
        counted = [c for j, c in enumerate(counted) if j not in cut]
        got, used = _match_pairs(boxes, found)
        tp += len(got)
        fn += len(boxes) - len(got)
        fp += len(found) - len(used)
        for i, j in got:
            labels[(name, i)] = counted[j].label
            if reference is not None and (name, i) in reference["labels"]:
                compared += 1
                agree += reference["labels"][(name, i)] == counted[j].label
        if len(truth) == 1 and len(boxes) == 1:
            one_total += 1
            one_ok += len(found) == 1
    return {
        "recall": tp / max(1, tp + fn),
        "precision": tp / max(1, tp + fp),
        "agreement": agree / compared if compared else None,
        "scale": clf.scale,
        "exactly_one": one_ok / max(1, one_total),
        "one_total": one_total,
        "flagged": flagged,
        "labels": labels,
    }


def _match_pairs(truth: list[Box], found: list[Box]) -> tuple[list[tuple[int, int]], set[int]]:
    """Matched (truth index, found index) pairs at IoU >= 0.5, and the found indices used."""
    pairs = [(i, j) for _, i, j in match_pairs(truth, found, 0.5)]
    return pairs, {j for _, j in pairs}


def _moved(box: Box, shift: Shift, shape: tuple[int, ...]) -> tuple[Box, bool] | None:
    """An annotated box in the shifted frame's pixels, and whether it counts: a box a 16:9
    crop cut to under half its height is a "don't care" (finding it or not is no error);
    None if the crop removed it."""
    k = shift.factor
    x0, y0, x1, y1 = (round(v * k) for v in box)
    if shift.crop_height is None:
        return (x0, y0, x1, y1), True
    h = round(shape[1] * k * 9 / 16)
    top = (round(shape[0] * k) - h) // 2
    y0c, y1c = max(0, y0 - top), min(h, y1 - top)
    if y1c <= y0c:
        return None
    return (x0, y0c, x1, y1c), (y1c - y0c) >= 0.5 * (y1 - y0)


def load_bccd(data: Path, step: int) -> list[tuple[str, np.ndarray, list[Box]]]:
    frames = []
    for img in sorted((data / "JPEGImages").glob("*.jpg"))[::step]:
        xml_file = data / "Annotations" / f"{img.stem}.xml"
        if xml_file.exists():
            frames.append((img.stem, decode_image(img), wbc_boxes(xml_file)))
    return frames


def shift_picture(rgb: np.ndarray, path: Path) -> None:
    """A montage of one frame under the colour shifts, labelled."""
    tiles = []
    for shift in SHIFTS[:17]:
        tile = cv2.resize(shift.apply(rgb), (256, 192), interpolation=cv2.INTER_AREA).copy()
        cv2.rectangle(tile, (0, 0), (256, 20), (255, 255, 255), -1)
        cv2.putText(tile, shift.name[:34], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        tiles.append(tile)
    while len(tiles) % 6:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i : i + 6], axis=1) for i in range(0, len(tiles), 6)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, axis=0)[:, :, ::-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--kaggle", type=Path, help="Kaggle TRAIN folder (the bundle's split root)")
    ap.add_argument("--bccd", type=Path, help="BCCD folder (JPEGImages, Annotations)")
    ap.add_argument("--cells", type=int, default=600, help="held-out images in cell mode")
    ap.add_argument("--frame-step", type=int, default=3, help="every k-th BCCD frame")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("cell", "field"))
    ap.add_argument("--picture", type=Path, help="write a montage of the shifts here")
    args = ap.parse_args(argv)

    bundle = load_bundle(args.model)
    rt = open_runtime(bundle, threads=args.threads)
    print(f"model {bundle.name} on {rt.name} {rt.precision}; default settings, no flags")
    t0 = time.perf_counter()
    cells = fields = None
    if args.kaggle and args.only != "field":
        held = held_out(args.model, args.kaggle, args.cells)
        cells = [(decode_image(p), c) for p, c in held]
        print(f"cell mode: {len(cells)} held-out images (test side of {bundle.name}'s split)")
    if args.bccd and args.only != "cell":
        fields = load_bccd(args.bccd, args.frame_step)
        n_wbc = sum(len(t) for _, _, t in fields)
        print(f"field mode: {len(fields)} BCCD frames (every {args.frame_step}), {n_wbc} WBC boxes")
        if args.picture:
            shift_picture(fields[0][1], args.picture)
    head = f"{'shift':<30}"
    if cells:
        head += f"{'cell acc':>9}{'Δ':>7}  {'recall E/L/M/N':<23}"
    if fields:
        head += f"{'WBC rec':>8}{'Δ':>7}{'prec':>6}{'agree':>7}{'scale':>7}{'err':>7}{'one':>6}"
        head += f"{'flag':>5}"
    print(head)
    base_cell = base_field = None
    for shift in SHIFTS:
        line = f"{shift.name:<30}"
        if cells:
            if shift.field_only:
                line += f"{'n/a':>9}{'':>7}  {'':<23}"
            else:
                r = cell_mode(rt, cells, shift)
                base_cell = base_cell or r
                rec = "/".join(f"{v:.2f}" for v in r["recall"].values())
                line += (
                    f"{r['accuracy']:>9.3f}{100 * (r['accuracy'] - base_cell['accuracy']):>+7.1f}"
                )
                line += f"  {rec:<23}"
        if fields:
            r = field_mode(rt, fields, shift, base_field)
            base_field = base_field or r
            expected = base_field["scale"] * shift.factor
            err = 100 * (r["scale"] / expected - 1)
            agree = f"{r['agreement']:.3f}" if r["agreement"] is not None else "-"
            line += f"{r['recall']:>8.3f}{100 * (r['recall'] - base_field['recall']):>+7.1f}"
            line += f"{r['precision']:>6.2f}{agree:>7}{r['scale']:>7.2f}{err:>+6.1f}%"
            line += f"{r['exactly_one']:>6.3f}{r['flagged']:>5}"
        print(line, flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if fields:
        print(
            "one: frames with exactly one annotated WBC in which exactly one is counted "
            f"({base_field['one_total']} such frames); err: scale against the unshifted "
            "estimate times the resize factor; flag: frames a quality flag kept uncounted"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
