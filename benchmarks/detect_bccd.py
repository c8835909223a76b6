"""How well field mode finds white cells: recall/precision at IoU >= 0.5 on the BCCD frames.

    python benchmarks/detect_bccd.py [--data /path/to/bccd] [--model models/default]
                                     [--scale 2] [--min-area 250 600] [--list]

Runs `edge_app.finder.CellFinder` (what the device does before the model) on every frame of
BCCD (JPEGImages + Pascal VOC Annotations) and matches its boxes to the annotated `WBC`
boxes greedily by IoU. One row per detector setting, measured side by side in this run: the
first row uses NucleusParams as shipped, the others override `min_area` (training pixels).
With `--model`, the bundle's preprocessing is used as the device uses it: each frame
colour-normalised first, field mode's own detector parameters, and (unless `--scale`) the
scale measured from the red cells of the first frames (`edge_app.scale.RunScale`).
Frames where an annotated WBC was missed are listed, and with --list the unmatched detections
too (BCCD leaves a few white cells unannotated; look before calling them false positives).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.decode import decode_image
from wbc_edge.core.field import DEFAULT_FIELD_SCALE
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.edge_app.finder import CellFinder
from wbc_edge.edge_app.light import CALIBRATION_FRAMES

Box = tuple[int, int, int, int]


def wbc_boxes(xml_file: Path) -> list[Box]:
    """The annotated WBC boxes of one VOC file (x0, y0, x1, y1)."""
    boxes = []
    for obj in ET.parse(xml_file).getroot().iter("object"):
        if (obj.findtext("name") or "").strip() != "WBC":
            continue
        bb = obj.find("bndbox")
        x0, y0, x1, y1 = (round(float(bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x0, y0, x1, y1))
    return boxes


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list[Box], found: list[Box], threshold: float) -> tuple[list[float], set[int]]:
    """Greedy matching, best IoU first: IoUs of matched truths and the indices of used boxes."""
    pairs = match_pairs(truth, found, threshold)
    return [value for value, _, _ in pairs], {j for _, _, j in pairs}


def match_pairs(
    truth: list[Box], found: list[Box], threshold: float
) -> list[tuple[float, int, int]]:
    """Greedy matching, best IoU first: (IoU, truth index, found index) of each matched pair."""
    pairs = sorted(
        ((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True
    )
    used_t: set[int] = set()
    used_f: set[int] = set()
    out = []
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            out.append((value, i, j))
    return out


def evaluate(frames, spec: PreprocessSpec, scale: float | None, threshold: float) -> dict:
    tp = fp = fn = 0
    ious: list[float] = []
    missed: list[str] = []
    unmatched: list[str] = []
    seconds = 0.0
    finder = CellFinder(spec, "field", scale)
    first = [rgb for _, rgb, _ in frames[:CALIBRATION_FRAMES]]
    finder.prime_light(first)  # the run's light and scale from its first frames, as classify
    finder.prime_scale(first)
    one = [0, 0]  # frames with exactly one annotated WBC; of them, those with one found
    for name, rgb, truth in frames:
        t0 = time.perf_counter()
        found = finder.find(rgb).boxes
        seconds += time.perf_counter() - t0
        got, used = match(truth, found, threshold)
        tp += len(got)
        fn += len(truth) - len(got)
        fp += len(found) - len(used)
        ious += got
        if len(truth) == 1:
            one[0] += 1
            one[1] += len(found) == 1
        if len(got) < len(truth):
            missed.append(
                f"{name} (annotated {len(truth)}, found {len(found)}, matched {len(got)})"
            )
        unmatched += [f"{name} {found[j]}" for j in range(len(found)) if j not in used]
    n = len(frames)
    return {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "recall": tp / max(1, tp + fn),
        "precision": tp / max(1, tp + fp),
        "fp_per_frame": fp / max(1, n),
        "mean_iou": sum(ious) / max(1, len(ious)),
        "ms_per_frame": 1000 * seconds / max(1, n),
        "missed": missed,
        "unmatched": unmatched,
        "scale": finder.scale,
        "exactly_one": one[1] / max(1, one[0]),
        "one_frames": one[0],
    }


def load_frames(data: Path) -> list[tuple[str, object, list[Box]]]:
    images = sorted((data / "JPEGImages").glob("*.jpg"))
    if not images:
        raise SystemExit(f"detect_bccd: no JPEGImages/*.jpg under {data}")
    frames = []
    for img in images:
        xml_file = data / "Annotations" / f"{img.stem}.xml"
        if xml_file.exists():
            frames.append((img.stem, decode_image(img), wbc_boxes(xml_file)))
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the BCCD folder")
    ap.add_argument("--model", type=Path, help="use this bundle's preprocessing (see above)")
    ap.add_argument("--scale", type=float, help="default: 2, or measured with --model")
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument(
        "--min-area",
        type=int,
        nargs="*",
        default=[600],
        help="extra rows with NucleusParams.min_area overridden (training px)",
    )
    ap.add_argument("--list", action="store_true", help="also list unmatched detections")
    args = ap.parse_args(argv)

    frames = load_frames(args.data)
    n_truth = sum(len(t) for _, _, t in frames)
    base = load_bundle(args.model).preprocessing if args.model else PreprocessSpec()
    if args.scale is None and not args.model:
        args.scale = DEFAULT_FIELD_SCALE
    print(
        f"BCCD: {len(frames)} frames, {n_truth} annotated WBC boxes, "
        f"{sum(1 for *_, t in frames if not t)} frames without one; scale "
        f"{'measured' if args.scale is None else format(args.scale, 'g')}, "
        f"IoU >= {args.iou:g}"
    )
    settings = [("shipped", base)] + [
        (
            f"min_area={m}",
            dataclasses.replace(
                base, nucleus=dataclasses.replace(base.nucleus, min_area=m, field_min_area=m)
            ),
        )
        for m in args.min_area
        if m != base.nucleus.min_area
    ]
    print(
        f"{'nucleus params':<16}{'recall':>8}{'precision':>11}{'FP/frame':>10}"
        f"{'TP':>6}{'FN':>5}{'FP':>5}{'mean IoU':>10}{'one':>7}{'scale':>7}{'ms/frame':>10}"
    )
    results = []
    for label, spec in settings:
        r = evaluate(frames, spec, args.scale, args.iou)
        results.append((label, r))
        print(
            f"{label:<16}{r['recall']:>8.3f}{r['precision']:>11.3f}{r['fp_per_frame']:>10.3f}"
            f"{r['tp']:>6}{r['fn']:>5}{r['fp']:>5}{r['mean_iou']:>10.3f}"
            f"{r['exactly_one']:>7.3f}{r['scale']:>7.2f}{r['ms_per_frame']:>10.1f}"
        )
    label, first = results[0]
    print(
        f"one: of the {first['one_frames']} frames with exactly one annotated WBC, the share in "
        "which exactly one is found; scale: the run's (camera px per training px)"
    )
    print(f"\nframes with a missed WBC ({label}): {len(first['missed'])}")
    for line in first["missed"]:
        print(f"  {line}")
    if args.list:
        print(f"\nunmatched detections ({label}): {len(first['unmatched'])}")
        for line in first["unmatched"]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
