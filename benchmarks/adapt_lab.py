"""Teach it your lab, measured on a SIMULATED other lab (no second lab's images are available).

    python benchmarks/adapt_lab.py --model models/default --data-root PATH/TO/kaggle/TRAIN

The other lab is the parent's own held-out cells (its split.csv `test` side: source cells it
never trained on) seen through a different stain, optics and sensor, applied to the raw image
before the device's preprocessing (its colour step included, light pooled per run):

- stain: colour deconvolution (Ruifrok & Johnston 2001) into a nuclear stain, a counterstain and a
  residual; the nuclear stain's colour is replaced by a Giemsa-like magenta-violet and made 20 %
  denser, the counterstain (red cells) and the glass are left alone, so the colour step, which
  reads only the glass and the red cells, cannot undo it;
- optics: 10 % more magnification (about the centre) and a Gaussian blur (sigma 1.0 px);
- sensor: Gaussian read noise (sigma 3 levels) and JPEG at quality 85.

The shifted source cells are split per class into a reviewed half and an evaluation half (no
source cell on both sides). For N in 25/50/100, N reviewed cells (an equal share per class,
spread over the reviewed source cells) adapt the parent with `train.adapt.fine_tune`, mixed
with its original training side; parent and child are scored on every shifted image of the
evaluation half (accuracy, recall per class, differential error, `train.adapt_scores`), and the
child on the original validation side, unshifted (no forgetting). Prints a markdown table and
the CPU time of each fine-tuning.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.dataset import splits
from wbc_edge.core.decode import decode_image
from wbc_edge.train.adapt import AdaptConfig, fine_tune, load_original
from wbc_edge.train.adapt_scores import scores
from wbc_edge.train.dataset import default_cache_dir, predict_probabilities
from wbc_edge.train.out_of_fold import prepare_run

# Ruifrok & Johnston's haematoxylin / eosin optical-density vectors (RGB), and a Giemsa-like
# azure-eosinate nuclear stain: absorbs green most, then red, blue least (magenta-violet).
NUCLEAR = np.array([0.65, 0.70, 0.29])
COUNTER = np.array([0.07, 0.99, 0.11])
GIEMSA = np.array([0.40, 0.85, 0.34])


def stain_matrix(first: np.ndarray) -> np.ndarray:
    """Rows: the nuclear stain `first`, the counterstain and the residual of the original pair
    (kept, so the glass and the red cells are re-made as they were)."""
    m = [v / np.linalg.norm(v) for v in (NUCLEAR, COUNTER)]
    third = np.cross(m[0], m[1])
    return np.stack([first / np.linalg.norm(first), m[1], third / np.linalg.norm(third)])


def other_lab(rgb: np.ndarray, seed: int) -> np.ndarray:
    """The simulated lab's camera image of the same cell (see the module)."""
    od = -np.log((rgb.astype(np.float64) + 1.0) / 256.0)
    conc = od.reshape(-1, 3) @ np.linalg.inv(stain_matrix(NUCLEAR))
    conc[:, 0] *= 1.2
    out = np.exp(-(conc @ stain_matrix(GIEMSA))) * 256.0 - 1.0
    img = np.clip(out.reshape(rgb.shape), 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    zoom = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, 1.1)
    img = cv2.warpAffine(img, zoom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    noise = np.random.default_rng(seed).normal(0.0, 3.0, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    _, jpg = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1]


def lab_crops(bundle, root: Path, rows: list) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The device's crops of the shifted images, the light pooled over the lab's run."""
    shifted = [other_lab(decode_image(root / r.path), i) for i, r in enumerate(rows)]
    way = "run" if bundle.preprocessing.colour.estimate == "run" else "image"
    crops, found = prepare_run(shifted, bundle.preprocessing, way)
    index = {c: i for i, c in enumerate(bundle.classes)}
    kept = [r for r, f in zip(rows, found, strict=True) if f]
    return crops, np.array([index[r.label] for r in kept]), [r.group for r in kept]


def split_cells(labels: np.ndarray, groups: list[str], seed: int) -> tuple[set, set]:
    """Per class, half the source cells (at least one) reviewed, the rest for evaluation."""
    rng = np.random.default_rng(seed)
    reviewed, held = set(), set()
    for k in np.unique(labels):
        cells = sorted({g for g, y in zip(groups, labels, strict=True) if y == k})
        cells = [cells[i] for i in rng.permutation(len(cells))]
        half = max(1, len(cells) // 2)
        reviewed |= set(cells[:half])
        held |= set(cells[half:])
    return reviewed, held


def draw_reviewed(labels, groups, reviewed: set, n: int, k: int, seed: int) -> np.ndarray:
    """n images of reviewed source cells, n/k per class, round-robin over its cells."""
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(k):
        by_cell: dict[str, list[int]] = {}
        for i, (g, y) in enumerate(zip(groups, labels, strict=True)):
            if y == c and g in reviewed:
                by_cell.setdefault(g, []).append(i)
        pools = [list(rng.permutation(v)) for _, v in sorted(by_cell.items())]
        take, j = n // k, 0
        while take and any(pools):
            pool = pools[j % len(pools)]
            if pool:
                picked.append(int(pool.pop()))
                take -= 1
            j += 1
    return np.array(sorted(picked))


def fmt(s: dict, classes: list[str]) -> str:
    err = s.get("differential_error_corrected_mean", s["differential_error_raw_mean"])
    per = s.get("differential_error_corrected", s["differential_error_raw"])
    recall = " | ".join(f"{s['recall'][c]:.3f}" for c in classes)
    errs = " / ".join(f"{per[c]:.1f}" for c in classes)
    return f"{s['accuracy']:.3f} | {recall} | {err:.1f} ({errs})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--sizes", default="25,50,100")
    ap.add_argument("--epochs", type=int, default=AdaptConfig.epochs)
    ap.add_argument("--steps-per-epoch", type=int, default=AdaptConfig.steps_per_epoch)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import keras

    parent = load_bundle(args.model)
    cfg = AdaptConfig(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, seed=args.seed,
                      cache_dir=default_cache_dir())  # fmt: skip
    t0 = time.perf_counter()
    original = load_original(parent, args.data_root, cfg, held_side="val")
    rows = [r for r in splits.read_manifest(parent.root / "split.csv") if r.side == "test"]
    crops, labels, groups = lab_crops(parent, args.data_root, rows)
    reviewed, held = split_cells(labels, groups, args.seed)
    ev = np.array([i for i, g in enumerate(groups) if g in held])
    print(f"prepared in {time.perf_counter() - t0:.0f} s: {len(crops)} shifted images of "
          f"{len(set(groups))} source cells; evaluation: {len(ev)} images of {len(held)} cells; "
          f"reviewed pool: {len(reviewed)} cells")  # fmt: skip
    classes, spec = parent.classes, parent.preprocessing
    keras_file = parent.root / "model.keras"
    confusion = None if parent.count_model is None else np.asarray(parent.count_model.confusion)
    model = keras.saving.load_model(keras_file, compile=False)
    g_ev = [groups[i] for i in ev]

    def measure(net) -> tuple[dict, dict]:
        lab = scores(classes, labels[ev], predict_probabilities(net, crops[ev], spec), g_ev,
                     confusion if net is model else None)  # fmt: skip
        probs = predict_probabilities(net, original.held_x, spec)
        return lab, scores(classes, original.held_y, probs, original.held_groups)

    rows_out = [("parent", "-", s) for s in measure(model)]
    for n in (int(v) for v in args.sizes.split(",")):
        pick = draw_reviewed(labels, groups, reviewed, n, len(classes), args.seed)
        child = keras.saving.load_model(keras_file, compile=False)
        cpu, wall = time.process_time(), time.perf_counter()
        fine_tune(child, parent, crops[pick], labels[pick], original.replay_x,
                  original.replay_y, cfg)  # fmt: skip
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        timing = f"{cpu / 60:.1f} CPU min ({wall / 60:.1f} min wall)"
        rows_out += [(f"child, {len(pick)} cells", timing, s) for s in measure(child)]
    how = "corrected" if confusion is not None else "raw"
    head = " | ".join(c[:3] for c in classes)
    print(
        f"\n| model | fine-tuning | on | accuracy | recall {head} | "
        f"differential error, pp: mean ({head}) |"
    )
    print("| --- | --- | --- | --- |" + " --- |" * len(classes) + " --- |")
    for i, (who, timing, s) in enumerate(rows_out):
        where = "simulated lab, held-out cells" if i % 2 == 0 else "original val side (unshifted)"
        print(f"| {who} | {timing} | {where} | {fmt(s, classes)} |")
    print(f"\nparent differential: {how} (its count model) on the lab; children: raw count. "
          f"Total {(time.perf_counter() - t0) / 60:.1f} min wall.")  # fmt: skip


if __name__ == "__main__":
    main()
