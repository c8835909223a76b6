"""Does measured morphology add to the CNN on unseen cells? Out-of-fold fusion on K-fold folds.

    python benchmarks/fusion_cv.py DATA_ROOT RUN [--cache DIR] [--misread-png F] [--out F]

RUN is a `wbc-train --kfold K` folder (`--keep-checkpoints` for the last-epoch rows). Every
image of DATA_ROOT is measured once with the device's own code (the colour step, the nucleus
finder, `edge_app.morphology`). Each fold model predicts its own held-out images with the
colour step as shipped (`colour_cv.prepared`): its validation-chosen epoch (`model.keras`) and
its last epoch (`checkpoints/last.keras`). Rows, all on the same folds:

- CNN alone (each checkpoint);
- measurements only: a logistic regression on the measurements, trained on the other folds;
- fused: a logistic regression on the CNN's log-probabilities and the measurements, trained
  only on the other folds' out-of-fold rows (their own fold models' held-out probabilities,
  never in-fold ones) and scored on fold k;
- averaged: the CNN's and the measurements-only model's probabilities averaged;
- the fused row's second level on the CNN's log-probabilities alone (what stacking costs).

A cell whose nucleus is not found counts as misread in every row. Printed: accuracy per fold
and mean ± sd, per-class recall, and the source cells misread before (CNN) and after (fused).
Measurements and probabilities are cached in --cache, so reruns cost seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from colour_cv import prepared
from cv_eval import misread_cells, plot_misread

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.colour import correct_colour
from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.data import ImageSet, list_images
from wbc_edge.core.decode import decode_image
from wbc_edge.core.nucleus import locate_cell
from wbc_edge.edge_app import morphology
from wbc_edge.train.dataset import predict_probabilities
from wbc_edge.train.model_spec import measure_colour_spec
from wbc_edge.train.probe import fit_softmax

CHECKPOINTS = {"validation-chosen epoch": "model.keras", "last epoch": "checkpoints/last.keras"}
PICTURES = {"CNN, validation-chosen epoch": "cnn", "fused (CNN log-probs + measurements)": "fused"}
FLOOR = 1e-4  # probabilities are clipped here before the log


def cache_key(*parts: str) -> str:
    """A short hash of the measuring code and the inputs, so a change re-measures."""
    code = Path(morphology.__file__).read_bytes()
    return hashlib.sha256(code + "|".join(parts).encode()).hexdigest()[:12]


def measure_all(everything: ImageSet, spec, cache: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(N, F) measurements of every image (NaN: no nucleus), found mask, median ms per cell."""
    file = cache / f"features-{cache_key(str(everything.root), str(spec.colour))}.npz"
    if file.is_file():
        z = np.load(file)
        return z["features"], z["found"], float(z["ms"])
    feats = np.full((len(everything.records), len(morphology.FEATURES)), np.nan)
    ms = []
    for i, rec in enumerate(everything.records):
        corrected, _ = correct_colour(decode_image(everything.root / rec.path), spec.colour)
        nucleus = locate_cell(corrected, spec.nucleus, 1.0)
        if nucleus is None:
            continue
        t = time.perf_counter()
        m = morphology.measure_cell(corrected, nucleus, spec.nucleus, 1.0, spec.crop.size)
        ms.append(1000 * (time.perf_counter() - t))
        feats[i] = m.vector()
        if i % 1000 == 0:
            print(f"measured {i} of {len(everything.records)}", flush=True)
    found = ~np.isnan(feats[:, 0])
    np.savez(file, features=feats, found=found, ms=np.median(ms))
    return feats, found, float(np.median(ms))


def fold_probs(fold: Path, which: str, everything: ImageSet, idx: np.ndarray, spec, cache: Path):
    """(len(idx), C) probabilities of one fold checkpoint on its held-out images (NaN rows:
    no nucleus found), with the colour step as shipped."""
    import keras

    file = cache / f"cnn-{fold.parent.parent.name}-{fold.name}-{Path(which).stem}.npy"
    if file.is_file():
        return np.load(file)
    decoded = [decode_image(everything.root / everything.records[i].path) for i in idx]
    crops, found = prepared(decoded, lambda x: x, spec)
    model = keras.saving.load_model(fold / which)
    probs = np.full((len(idx), len(everything.classes)), np.nan, np.float32)
    if found.any():
        probs[found] = predict_probabilities(model, crops, spec)
    np.save(file, probs)
    return probs


def logistic(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int
) -> np.ndarray:
    """Probabilities of a standardised multinomial logistic regression, C = 1 fixed: the
    linear probe's (`train.probe.fit_softmax`, whose l2 = 1 / (C·N))."""
    model = fit_softmax(x_train, y_train, n_classes, l2=1.0 / len(x_train), iterations=2000)
    return model.predict_proba(x_test)


def out_of_fold(x: np.ndarray, y: np.ndarray, fold: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Probabilities of each fold's rows from a model trained on the other folds' rows only."""
    out = np.full((len(y), int(y.max()) + 1), np.nan)
    for k in np.unique(fold):
        train, test = usable & (fold != k), usable & (fold == k)
        if not train.any() or not test.any():
            continue  # no other fold finished yet: these rows stay misses
        out[test] = logistic(x[train], y[train], x[test], out.shape[1])
    return out


def predictions(probs: np.ndarray) -> np.ndarray:
    """Class index per row; -1 where the row has no probabilities (no nucleus: a miss)."""
    missing = np.isnan(probs).any(axis=1)
    return np.where(missing, -1, np.nan_to_num(probs).argmax(axis=1))


def fold_scores(pred: np.ndarray, y: np.ndarray, fold: np.ndarray, n_classes: int):
    """(accuracy per fold, recall per fold and class)."""
    acc, recall = [], []
    for k in np.unique(fold):
        p, t = pred[fold == k], y[fold == k]
        acc.append(float(np.mean(p == t)))
        recall.append([float(np.mean(p[t == c] == c)) for c in range(n_classes)])
    return np.array(acc), np.array(recall)


def in_run(run: Path, everything: ImageSet) -> tuple[ImageSet, np.ndarray, np.ndarray]:
    """The images the run split (those training skipped are left out, as cv_eval does), each
    one's held-out fold number and its source-cell group, from the run's manifest."""
    rows = {r.path: r for r in splits.read_manifest(run / "split.csv")}
    records = [r for r in everything.records if r.path.as_posix() in rows]
    fold = np.array([int(rows[r.path.as_posix()].side.removeprefix("fold")) for r in records])
    groups = np.array([rows[r.path.as_posix()].group for r in records])
    return ImageSet(everything.root, records, everything.classes), fold, groups


def cnn_rows(run: Path, everything: ImageSet, fold: np.ndarray, spec, cache: Path):
    """Out-of-fold CNN probabilities per checkpoint kind (NaN where not available)."""
    out = {}
    for kind, which in CHECKPOINTS.items():
        probs = np.full((len(fold), len(everything.classes)), np.nan)
        for k in np.unique(fold):
            fold_dir = run / "folds" / f"fold{k}"
            if not (fold_dir / "report.json").is_file() or not (fold_dir / which).is_file():
                print(f"{fold_dir / which}: not there (yet), fold {k} skipped")
                continue
            held = {
                r.path for r in splits.read_manifest(fold_dir / "split.csv") if r.side == "test"
            }
            idx = np.flatnonzero(fold == k)
            if held != {everything.records[i].path.as_posix() for i in idx}:
                raise SystemExit(f"{fold_dir}: its test side is not fold {k} of {run}/split.csv")
            probs[idx] = fold_probs(fold_dir, which, everything, idx, spec, cache)
            trained = json.loads((fold_dir / "report.json").read_text())
            epochs = f"best epoch {trained['best_epoch']} of {trained['epochs_run']} run"
            print(f"{kind}: fold {k} predicted ({epochs})", flush=True)
        out[f"CNN, {kind}"] = probs
    return out


def misread_rows(pred: np.ndarray, y: np.ndarray, groups, everything: ImageSet):
    names = everything.classes
    return misread_cells([
        (r.path.as_posix(), g, names[t], names[p] if p >= 0 else "(no prediction)")
        for r, g, t, p in zip(everything.records, groups, y, pred, strict=True)
    ])  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--cache", type=Path, default=Path("runs/fusion"))
    ap.add_argument("--folds", help="only images of these folds, e.g. 0,1 (default: all)")
    ap.add_argument(
        "--misread-png", type=Path, help="F: pictures F_cnn.png and F_fused.png of misread cells"
    )
    ap.add_argument("--out", type=Path, help="write the numbers as JSON")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    everything = list_images(args.data_root)
    classes = everything.classes
    finished = sorted((args.run / "folds").glob("fold*/report.json"))  # written last
    if not finished:
        raise SystemExit(f"{args.run}: no finished fold yet (no folds/fold*/report.json)")
    spec = load_bundle(finished[0].parent).preprocessing  # every fold's: one recipe
    colour_file = args.cache / "colour.json"
    if colour_file.is_file():
        colour = type(spec.colour)(**json.loads(colour_file.read_text()))
    else:
        colour = measure_colour_spec(everything)
        colour_file.write_text(json.dumps(dataclasses.asdict(colour)))
    spec = dataclasses.replace(spec, colour=colour)  # the colour step, as shipped
    everything, fold, groups = in_run(args.run, everything)
    feats, found, ms = measure_all(everything, spec, args.cache)
    print(f"measurements: {found.sum()} of {len(found)} images, {ms:.2f} ms per cell (median)")
    y = np.array([classes.index(r.label) for r in everything.records])
    rows = cnn_rows(args.run, everything, fold, spec, args.cache)
    rows["measurements only"] = out_of_fold(feats, y, fold, found)
    cnn = rows.get("CNN, validation-chosen epoch")
    if cnn is not None:
        usable = found & ~np.isnan(cnn).any(axis=1)
        fused_x = np.concatenate([np.log(np.clip(np.nan_to_num(cnn), FLOOR, 1)), feats], axis=1)
        rows["fused (CNN log-probs + measurements)"] = out_of_fold(fused_x, y, fold, usable)
        n = len(classes)  # the same second level without the measurements: what it costs alone
        rows["second level on CNN log-probs only"] = out_of_fold(fused_x[:, :n], y, fold, usable)
        rows["averaged (CNN, measurements only)"] = (cnn + rows["measurements only"]) / 2
    keep = np.ones(len(y), bool)
    if args.folds:
        keep = np.isin(fold, [int(k) for k in args.folds.split(",")])
    report(rows, y, fold, groups, keep, everything, args)
    return 0


def report(rows, y, fold, groups, keep, everything: ImageSet, args) -> None:
    """Print the tables and the misread cells; write --out and --misread-png."""
    classes = everything.classes
    results, preds = {}, {}
    print("\n| row | accuracy per fold | mean ± sd | " + " | ".join(classes) + " |")
    print("| --- | --- | --- |" + " --- |" * len(classes))
    for name, probs in rows.items():
        pred = predictions(probs)
        preds[name] = pred
        acc, recall = fold_scores(pred[keep], y[keep], fold[keep], len(classes))
        sd = acc.std(ddof=1) if len(acc) > 1 else float("nan")
        cells = " | ".join(f"{v:.3f}" for v in recall.mean(axis=0))
        per = ", ".join(f"{a:.3f}" for a in acc)
        print(f"| {name} | {per} | {acc.mean():.4f} ± {sd:.4f} | {cells} |")
        results[name] = {"accuracy": acc.tolist(), "recall": recall.tolist()}
    sub = [r for r, k in zip(everything.records, keep, strict=True) if k]
    subset = ImageSet(everything.root, sub, classes)
    misread = {}
    for name, pred in preds.items():
        cells = misread_rows(pred[keep], y[keep], groups[keep], subset)
        misread[name] = {f"{c.label} {c.group}" for c in cells}
        print(f"\n{name}: {len(cells)} source cells misread")
        for c in cells:
            print(f"  {c}")
        tag = PICTURES.get(name)
        if args.misread_png and tag and cells:
            png = args.misread_png.with_name(f"{args.misread_png.stem}_{tag}.png")
            title = f"{args.run.name}, {name}: source cells misread on their held-out fold"
            plot_misread(cells, args.run, args.data_root, png, title)
            print(f"  picture: {png}")
        results[name]["misread"] = sorted(misread[name])
    before, after = (
        misread.get("CNN, validation-chosen epoch"),
        misread.get("fused (CNN log-probs + measurements)"),
    )
    if before is not None and after is not None:
        print(f"\nfused vs CNN: fixed {sorted(before - after)}, broken {sorted(after - before)}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
