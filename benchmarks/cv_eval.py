"""What pays on unseen cells? Test-time views and ensembles, scored on K-fold held-out folds.

    python benchmarks/cv_eval.py DATA_ROOT RUN [RUN ...] [--views 8] [--out cv_eval.json]

Each RUN is a `wbc-train --kfold K` folder; runs given together must share their folds (same
data, seed and groups), which is checked. For every fold, each run's fold model predicts its
held-out images in 1, 2, 4 and 8 dihedral views (flips and 90° rotations, probabilities
averaged); an ensemble averages the runs' probabilities. Printed: accuracy and the lowest
per-class recall, mean ± sd over folds, side by side, with the model calls each cell costs;
then, per run, the source cells it misreads (most of their held-out copies wrong, one view).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.data import ImageSet, list_images
from wbc_edge.core.dataset.metrics import classification_metrics
from wbc_edge.train.dataset import load_cached, predict_probabilities

# The eight symmetries of the square, in the order views are added.
VIEWS = [(0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True)]
VIEW_COUNTS = (1, 2, 4, 8)


def view(images: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = np.rot90(images, turns, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if flip else out)


def held_out(fold_dir: Path, everything: ImageSet) -> ImageSet:
    """The fold's held-out images (its manifest's `test` side), in the data's order."""
    wanted = {r.path for r in splits.read_manifest(fold_dir / "split.csv") if r.side == "test"}
    records = [r for r in everything.records if r.path.as_posix() in wanted]
    return ImageSet(everything.root, records, everything.classes)


def fold_views(fold_dir: Path, images: ImageSet, views: int = 8) -> tuple[np.ndarray, list[str]]:
    """(views, N, classes) probabilities of the fold model, first `views` of VIEWS, and the
    paths kept."""
    import keras

    bundle = load_bundle(fold_dir)
    loaded = load_cached(images, bundle.preprocessing, None)  # seconds; no cache file
    model = keras.saving.load_model(fold_dir / "model.keras")
    probs = [
        predict_probabilities(model, view(loaded.images, t, f), bundle.preprocessing)
        for t, f in VIEWS[:views]
    ]
    return np.stack(probs), [r.path.as_posix() for r in loaded.records]


def score(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[float, list[float]]:
    """Accuracy and every class's recall, in `classes` order."""
    m = classification_metrics(labels, probs.argmax(axis=1), classes)
    return m["accuracy"], [m["per_class"][c]["recall"] for c in classes]


@dataclass(frozen=True)
class Misread:
    """A source cell most of whose held-out copies a model calls another class."""

    label: str
    group: str
    predicted: str
    copies_wrong: int
    copies: int
    example: str  # one copy's path, relative to the data root

    def __str__(self) -> str:
        return (f"{self.label} {self.group} → {self.predicted} "
                f"({self.copies_wrong} of {self.copies} copies)")  # fmt: skip


def misread_cells(rows: list[tuple[str, str, str, str]]) -> list[Misread]:
    """Cells whose copies are mostly misread; `rows`: (path, group, true, predicted) per image."""
    votes: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    example: dict[tuple[str, str], str] = {}
    for path, group, label, predicted in rows:
        votes[(label, group)][predicted] += 1
        example.setdefault((label, group), path)
    out = []
    for (label, group), count in sorted(votes.items()):
        n = sum(count.values())
        if count[label] * 2 < n:
            top, k = count.most_common(1)[0]
            out.append(Misread(label, group, top, k, n, example[(label, group)]))
    return out


def plot_misread(
    cells: list[Misread], run: Path, data_root: Path, path: Path, title: str | None = None
) -> None:
    """One copy of every misread cell as the model sees it (its crop), captioned."""
    from wbc_edge.core.preprocess import decode_image, prepare
    from wbc_edge.train.report import _pyplot

    spec = load_bundle(run / "folds" / "fold0").preprocessing
    plt = _pyplot()
    cols = min(8, max(1, len(cells)))
    rows = -(-len(cells) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, cell in zip(axes.flat, cells, strict=False):
        crop = prepare(decode_image(data_root / cell.example), spec)
        ax.imshow(crop[..., ::-1] if spec.color_order == "BGR" else crop)
        ax.set_title(f"{cell.group}\n→ {cell.predicted[:3]} {cell.copies_wrong}/{cell.copies}",
                     fontsize=7)  # fmt: skip
    fig.suptitle(title or f"{run.name}: source cells misread on their held-out fold", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_root", type=Path)
    p.add_argument("runs", type=Path, nargs="+", help="K-fold run folders")
    p.add_argument("--views", type=int, choices=VIEW_COUNTS, default=8, help="most views tried")
    p.add_argument("--out", type=Path)
    p.add_argument("--misread-png", type=Path, help="picture of the first run's misread cells")
    args = p.parse_args()
    view_counts = [n for n in VIEW_COUNTS if n <= args.views]
    everything = list_images(args.data_root)
    folds = sorted(d.name for d in (args.runs[0] / "folds").iterdir())
    names = [r.name for r in args.runs]
    combos = [c for n in range(1, len(names) + 1) for c in itertools.combinations(names, n)]
    results: dict[str, dict[int, list[tuple[float, list[float]]]]] = {
        "+".join(c): {n: [] for n in view_counts} for c in combos
    }
    per_cell: dict[str, list[tuple[str, str, str, str]]] = {n: [] for n in names}
    group_of = {r.path: r.group for r in splits.read_manifest(args.runs[0] / "split.csv")}
    for fold in folds:
        images = held_out(args.runs[0] / "folds" / fold, everything)
        per_run, kept = {}, None
        for run in args.runs:
            if held_out(run / "folds" / fold, everything).records != images.records:
                raise SystemExit(f"{run} and {args.runs[0]} do not share {fold}")
            probs, paths = fold_views(run / "folds" / fold, images, args.views)
            kept = paths if kept is None else kept
            if paths != kept:
                raise SystemExit(f"{run}: different images usable in {fold}")
            per_run[run.name] = probs
        by_path = {r.path.as_posix(): r.label for r in images.records}
        labels = np.array([everything.classes.index(by_path[p]) for p in kept])
        for name, probs in per_run.items():
            predicted = probs[0].argmax(axis=1)
            per_cell[name] += [
                (p, group_of[p], by_path[p], everything.classes[c])
                for p, c in zip(kept, predicted, strict=True)
            ]
        for combo in combos:
            stacked = np.mean([per_run[n] for n in combo], axis=0)
            for n in view_counts:
                results["+".join(combo)][n].append(
                    score(stacked[:n].mean(axis=0), labels, everything.classes)
                )
        print(f"{fold}: done ({len(kept)} images)", flush=True)
    print(f"\naccuracy (lowest class recall), mean ± sd over {len(folds)} grouped folds")
    print("| model(s) | " + " | ".join(f"{n} view{'s' * (n > 1)}" for n in view_counts) + " |")
    print("| --- |" + " --- |" * len(view_counts))
    for combo, by_views in results.items():
        cells = []
        for n in view_counts:
            acc = np.array([a for a, _ in by_views[n]])
            low = np.array([min(r) for _, r in by_views[n]])
            cells.append(f"{acc.mean():.4f} ± {acc.std(ddof=1):.4f} ({low.mean():.3f})")
        calls = f"{len(combo.split('+'))} model(s) × views"
        print(f"| {combo} ({calls}) | " + " | ".join(cells) + " |")
    classes = everything.classes
    print("\nrecall per class, one view, mean ± sd over folds")
    print("| model(s) | " + " | ".join(classes) + " |")
    print("| --- |" + " --- |" * len(classes))
    for combo, by_views in results.items():
        recalls = np.array([r for _, r in by_views[1]])
        mean, sd = recalls.mean(axis=0), recalls.std(axis=0, ddof=1)
        cells = [f"{m:.3f} ± {d:.3f}" for m, d in zip(mean, sd, strict=True)]
        print(f"| {combo} | " + " | ".join(cells) + " |")
    for name, rows in per_cell.items():
        wrong = misread_cells(rows)
        total = len({(label, group) for _, group, label, _ in rows})
        print(f"\n{name}: {len(wrong)} of {total} source cells misread (one view)")
        for cell in wrong:
            print(f"  {cell}")
        if args.misread_png and name == names[0]:
            plot_misread(wrong, args.runs[0], args.data_root, args.misread_png)
            print(f"  picture: {args.misread_png}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
