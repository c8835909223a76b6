"""`wbc-train adapt`: fine-tune a bundle's model on a lab's reviewed cells into a child bundle.

1. The lab's cells (`train.lab_cells`): every cell a technician confirmed or corrected, the crop
   exactly as the device saw it; whole runs/slides held out to test on.
2. Fine-tuning from the parent's weights on the lab's learning cells mixed with a class-balanced
   sample of the parent's own training side (`replay`), so the old cells are not forgotten: each
   batch is about `lab_share` lab cells (repeated, augmented), the rest original; a low learning
   rate, a few short epochs: minutes on a CPU.
3. The proof (`train.adapt_scores`): parent and child on the held-out lab cells (accuracy,
   recall per class, differential error) and on the parent's original held-out side (no
   forgetting beyond the tolerances). The verdict is recorded; only a child that wins may be
   installed (`wbc-train ship` and `wbc-edge models install` refuse the others).

The child bundle holds model.keras, the parent's split manifest (same original data), the lab
cells it learned from (`lab_cells.npz`, so that INT8 calibration sees them too) and its
provenance: the parent, the reports, the cells per class, the settings, the CPU time. The
parent's `count_model` is not inherited (its confusion matrix is the parent's): the child's
differential is the raw count until `wbc-train count-model` measures its own.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.bundle import Bundle, load_bundle, new_bundle, save_bundle
from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.data import ImageRecord, ImageSet
from wbc_edge.core.digest import sha256_file
from wbc_edge.core.errors import BundleError, DataError
from wbc_edge.core.safe_io import atomic_write
from wbc_edge.train import adapt_scores
from wbc_edge.train.lab_cells import MIN_LEARN, MIN_TEST, LabCells, hold_out, read_reviewed

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
LAB_CELLS_FILE = "lab_cells.npz"
MICROSCOPE_AUGMENT = "flips,rot90,scale=0.1,shift=0.05,hue=8,sat=0.2,bright=0.15,blur=0.3"
COUNT_MODEL_DROPPED = (
    "not inherited: the parent's confusion matrix describes the parent's errors, not the "
    "child's; the child's differential is the raw count until `wbc-train count-model` "
    "measures its own"
)


@dataclass
class AdaptConfig:
    """How the child is fine-tuned and judged."""

    epochs: int = 6
    steps_per_epoch: int = 25
    batch_size: int = 32
    lr: float = 3e-4
    lab_share: float = 0.5  # of each batch, lab cells
    replay: int = 1200  # original training images mixed in (class-balanced sample)
    original_images: int = 1200  # original held-out images the forgetting check uses (at most)
    augment: str | None = None  # None: the parent's training augmentation, else the microscope's
    label_smoothing: float = 0.1
    seed: int = 0
    min_learn: int = MIN_LEARN
    min_test: int = MIN_TEST
    hold_out_fraction: float = 0.3
    accuracy_tolerance: float = adapt_scores.ACCURACY_TOLERANCE
    recall_tolerance: float = adapt_scores.RECALL_TOLERANCE
    cache_dir: Path | None = None

    def settings(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["cache_dir"] = None if self.cache_dir is None else str(self.cache_dir)
        return d


@dataclass
class Original:
    """The parent's own data: a replay sample of its train side, and its held-out side."""

    replay_x: np.ndarray
    replay_y: np.ndarray
    held_x: np.ndarray
    held_y: np.ndarray
    held_groups: list[str]
    held_side: str
    root: Path


@dataclass
class AdaptResult:
    out: Path
    verdict: adapt_scores.Verdict
    record: dict[str, Any] = field(default_factory=dict)


def adapt_bundle(
    parent_dir: Path,
    reports: list[Path],
    out_dir: Path,
    cfg: AdaptConfig,
    data_root: Path | None = None,
    name: str | None = None,
) -> AdaptResult:
    """The whole stage: read the lab's cells, hold out runs, fine-tune, judge, write the child."""
    parent = load_bundle(parent_dir)
    keras_file = _keras_file(parent)
    _check_out(out_dir, parent)
    lab = read_reviewed(reports, parent.classes, parent.preprocessing)
    split = hold_out(lab, cfg.min_learn, cfg.min_test, cfg.hold_out_fraction)
    root = original_root(parent, data_root)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    original = load_original(parent, root, cfg)
    import keras

    from wbc_edge.train.dataset import predict_probabilities

    parent_model = keras.saving.load_model(keras_file, compile=False)
    child = keras.saving.load_model(keras_file, compile=False)
    t_fit, cpu_fit = time.perf_counter(), time.process_time()
    fine_tune(
        child, parent, lab.crops[split.learn], lab.labels[split.learn],
        original.replay_x, original.replay_y, cfg,
    )  # fmt: skip
    fit_s, fit_cpu = time.perf_counter() - t_fit, time.process_time() - cpu_fit
    spec, classes = parent.preprocessing, parent.classes
    test_x, test_y = lab.crops[split.test], lab.labels[split.test]
    test_groups = [lab.files[i] for i in split.test]
    confusion = _confusion(parent)
    evaluation = {}
    for who, model in (("parent", parent_model), ("child", child)):
        lab_probs = predict_probabilities(model, test_x, spec)
        held_probs = predict_probabilities(model, original.held_x, spec)
        evaluation[who] = {
            "lab": adapt_scores.scores(
                classes, test_y, lab_probs, test_groups, confusion if who == "parent" else None
            ),
            "original": adapt_scores.scores(
                classes, original.held_y, held_probs, original.held_groups
            ),
        }
    verdict = adapt_scores.verdict(
        evaluation["parent"]["lab"], evaluation["child"]["lab"],
        evaluation["parent"]["original"], evaluation["child"]["original"],
        cfg.accuracy_tolerance, cfg.recall_tolerance,
    )  # fmt: skip
    timing = {
        "fine_tune_cpu_s": round(fit_cpu, 1),
        "fine_tune_wall_s": round(fit_s, 1),
        "total_cpu_s": round(time.process_time() - cpu0, 1),
        "total_wall_s": round(time.perf_counter() - wall0, 1),
    }
    record = {
        "parent": {
            "name": parent.name,
            "folder": str(parent.root),
            "bundle_sha256": sha256_file(parent.path),
        },
        "reports": lab.reports,
        "cells": {
            "learn": lab.per_class(split.learn),
            "held_out": lab.per_class(split.test),
            "held_out_by": split.by,
            "held_out_units": split.held_out,
        },
        "original": {
            "data_root": _recorded_root(parent) or str(root),
            "replay_images": len(original.replay_y),
            "held_out_side": original.held_side,
            "held_out_images": len(original.held_y),
            "held_out_source_cells": len(set(original.held_groups)),
        },
        "settings": cfg.settings() | {"augment": _augment(parent, cfg)},
        "evaluation": evaluation,
        "tolerance": {"accuracy": cfg.accuracy_tolerance, "recall": cfg.recall_tolerance},
        "verdict": verdict.to_dict(),
        "count_model": COUNT_MODEL_DROPPED if parent.count_model is not None else "parent had none",
        "timing": timing,
    }
    write_child(out_dir, parent, child, lab, split.learn, record, name)
    return AdaptResult(Path(out_dir), verdict, record)


def fine_tune(
    model,
    parent: Bundle,
    lab_x: np.ndarray,
    lab_y: np.ndarray,
    replay_x: np.ndarray,
    replay_y: np.ndarray,
    cfg: AdaptConfig,
) -> None:
    """Fine-tune `model` in place on the lab's cells mixed with the replayed original cells."""
    import keras

    from wbc_edge.train.augment import Augment
    from wbc_edge.train.dataset import CellBatches, balanced_class_weights

    keras.utils.set_random_seed(cfg.seed)
    n = len(parent.classes)
    share = min(max(cfg.lab_share, 0.05), 0.95)
    lab_reps, replay_reps = _repeats(len(lab_x), len(replay_x), share)
    x = np.concatenate(
        [np.repeat(replay_x, replay_reps, axis=0), np.repeat(lab_x, lab_reps, axis=0)]
    )
    y = np.concatenate([np.repeat(replay_y, replay_reps), np.repeat(lab_y, lab_reps)])
    batches = CellBatches(
        x, y, n, parent.preprocessing, cfg.batch_size,
        augment=Augment.parse(_augment(parent, cfg)), shuffle=True, seed=cfg.seed,
        class_weights=balanced_class_weights(y, n), max_batches=cfg.steps_per_epoch,
    )  # fmt: skip
    steps = max(1, cfg.epochs * len(batches))
    lr = keras.optimizers.schedules.CosineDecay(cfg.lr, steps, alpha=0.1)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    model.compile(keras.optimizers.Adam(lr), loss)
    model.fit(batches, epochs=cfg.epochs, verbose=0)


def _repeats(n_lab: int, n_replay: int, share: float) -> tuple[int, int]:
    """How often to repeat the lab cells and the replayed cells so that about `share` of what
    the model sees is the lab's."""
    want = share / (1 - share)  # lab per replayed cell
    if n_lab * 1.0 < want * n_replay:
        return max(1, round(want * n_replay / max(1, n_lab))), 1
    return 1, max(1, round(n_lab / (want * max(1, n_replay))))


def original_root(parent: Bundle, data_root: Path | None) -> Path:
    """Where the parent's training data is: `data_root`, else the root it records."""
    if data_root is not None:
        if not Path(data_root).is_dir():
            raise DataError("--data-root: no such folder", data_root)
        return Path(data_root)
    recorded = _recorded_root(parent)
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    raise DataError(
        f"the parent's training data ({recorded or 'not recorded'}) is not here: pass "
        "--data-root (the folder its split.csv paths are relative to); the child learns from "
        "it too, so old classes are not forgotten",
        parent.path,
    )


def load_original(
    parent: Bundle, root: Path, cfg: AdaptConfig, held_side: str | None = None
) -> Original:
    """The replay sample of the parent's train side and its held-out side (`held_side`, else
    test, else val), prepared by the bundle's own preprocessing (cached as `wbc-train` does)."""
    from wbc_edge.train.dataset import load_cached

    manifest = parent.root / "split.csv"
    if not manifest.is_file():
        raise BundleError("has no split.csv: the original held-out cells are unknown", manifest)
    rows = splits.read_manifest(manifest)
    sides = {r.side for r in rows}
    if held_side is None:
        held_side = "test" if "test" in sides else "val" if "val" in sides else None
    if held_side is None or "train" not in sides:
        raise DataError("needs a train side and a held-out (test or val) side", manifest)
    rng = np.random.default_rng(cfg.seed)
    train = _balanced([r for r in rows if r.side == "train"], cfg.replay, rng, parent.classes)
    held = _balanced([r for r in rows if r.side == held_side], cfg.original_images, rng,
                     parent.classes)  # fmt: skip
    out = []
    for chosen in (train, held):
        missing = [r.path for r in chosen if not (root / r.path).is_file()]
        if missing:
            raise DataError(f"{len(missing)} images of split.csv are missing, e.g. {missing[0]}",
                            root)  # fmt: skip
        records = [ImageRecord(Path(r.path), r.label) for r in chosen]
        loaded = load_cached(ImageSet(root, records, parent.classes), parent.preprocessing,
                             cfg.cache_dir)  # fmt: skip
        index = {c: i for i, c in enumerate(parent.classes)}
        group = {r.path: r.group for r in chosen}
        labels = np.array([index[r.label] for r in loaded.records], np.int64)
        out.append((loaded.images, labels, [group[r.path.as_posix()] for r in loaded.records]))
    (rx, ry, _), (hx, hy, hg) = out
    return Original(rx, ry, hx, hy, hg, held_side, root)


def write_child(
    out_dir: Path,
    parent: Bundle,
    model,
    lab: LabCells,
    learn: np.ndarray,
    record: dict[str, Any],
    name: str | None,
) -> Path:
    """The child bundle: model.keras, split.csv, lab_cells.npz and bundle.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_FILE)
    shutil.copyfile(parent.root / "split.csv", out_dir / "split.csv")
    buf = io.BytesIO()
    files = np.array([lab.files[i] for i in learn], dtype=str)
    np.savez_compressed(buf, crops=lab.crops[learn], labels=lab.labels[learn], files=files)
    atomic_write(out_dir / LAB_CELLS_FILE, buf.getvalue())
    record["lab_cells"] = {
        "file": LAB_CELLS_FILE,
        "sha256": sha256_file(out_dir / LAB_CELLS_FILE),
        "n": len(learn),
        "what": "the lab's learning cells as the model takes them (uint8), for INT8 calibration",
    }
    prov = {k: parent.provenance[k] for k in ("data", "split", "split_manifest", "groups")
            if k in parent.provenance}  # fmt: skip
    prov["training"] = parent.provenance.get("training")
    child = new_bundle(
        out_dir, name or out_dir.resolve().name, parent.classes, parent.preprocessing,
        **prov, adaptation=record,
    )  # fmt: skip
    child.add_artifact("keras", "fp32", MODEL_FILE)
    ev = record["evaluation"]
    for who in ("parent", "child"):
        for where in ("lab", "original"):
            values = {k: v for k, v in ev[who][where].items()}
            child.add_metrics(f"adapt:{where}-held-out:{who}", values)
    save_bundle(child)
    return out_dir


def _balanced(rows: list, n: int, rng: np.random.Generator, classes: list[str]) -> list:
    """At most `n` rows, an equal share per class, drawn with `rng` (all rows if fewer)."""
    if len(rows) <= n:
        return rows
    by_class = {c: [r for r in rows if r.label == c] for c in classes}
    per = max(1, n // max(1, sum(1 for v in by_class.values() if v)))
    out = []
    for c in classes:
        pool = by_class[c]
        idx = rng.permutation(len(pool))[:per]
        out += [pool[i] for i in sorted(idx)]
    return out


def _keras_file(parent: Bundle) -> Path:
    art = parent.find("keras")
    if art is None or not (parent.root / art.file).is_file():
        raise BundleError(
            "has no Keras model (model.keras): adapt fine-tunes the float model, which a "
            "device-only bundle does not carry; adapt the bundle it was converted from",
            parent.path,
        )
    return parent.root / art.file


def _check_out(out_dir: Path, parent: Bundle) -> None:
    out_dir = Path(out_dir)
    if out_dir.resolve() == parent.root.resolve():
        raise DataError("--out is the parent bundle: the child never replaces it there", out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "bundle.json").is_file():
        raise DataError("--out holds files but no bundle: choose a new or empty folder", out_dir)


def _confusion(parent: Bundle) -> np.ndarray | None:
    cm = parent.count_model
    return None if cm is None else np.asarray(cm.confusion)


def _augment(parent: Bundle, cfg: AdaptConfig) -> str:
    if cfg.augment is not None:
        return cfg.augment
    training = parent.provenance.get("training")
    recorded = training.get("augment") if isinstance(training, dict) else None
    return recorded if isinstance(recorded, str) and recorded else MICROSCOPE_AUGMENT


def _recorded_root(parent: Bundle) -> str | None:
    data = parent.provenance.get("data")
    root = data.get("root") if isinstance(data, dict) else data
    return root if isinstance(root, str) else None
