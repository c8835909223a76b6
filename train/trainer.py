"""Train a zoo model on a folder of labelled cell images and write a model bundle with its report.

Keras 3 only (TensorFlow, JAX or torch backend); images are decoded once into uint8 arrays
(cached) and fed by `train.dataset.CellBatches`, which normalises with the one preprocessing.
`train_bundle` is the whole stage as one function; `wbc-train` is a thin CLI on top.
"""

from __future__ import annotations

import time
from pathlib import Path

from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.data import ImageSet, list_images
from wbc_edge.core.errors import DataError
from wbc_edge.train import checks
from wbc_edge.train.bundle_writer import write_bundle
from wbc_edge.train.config import MANIFEST_FILE, TrainConfig
from wbc_edge.train.dataset import default_cache_dir, load_cached
from wbc_edge.train.fitting import TrainData, train_run
from wbc_edge.train.kfold import train_kfold
from wbc_edge.train.model_spec import model_spec
from wbc_edge.train.models import parse_weights, preflight
from wbc_edge.train.split_plan import make_split, sides_for_single, subsample


def train_bundle(
    data_root: Path,
    out_dir: Path,
    config: TrainConfig,
    groups_csv: Path | None = None,
    max_steps: int | None = None,
) -> Path:
    """Train `config.model` on `data_root` and write a bundle (model.keras, report, split
    manifest) into `out_dir`; returns `out_dir`.

    `max_steps` caps the batches of every epoch (tests train two steps). With `config.kfold`,
    each fold is a bundle under `out_dir/folds/fold<i>`, and `out_dir` gets fold 0's model plus
    every fold's metrics and their mean ± sd.
    """
    t0 = time.perf_counter()
    data_root, out_dir = Path(data_root), Path(out_dir)
    cfg = config.resolved()
    weights = parse_weights(cfg.weights)
    info = preflight(cfg.model, int(cfg.input_size), weights)  # type: ignore[arg-type]
    images = subsample(list_images(data_root), cfg.images_per_class, cfg.data_seed)
    spec = model_spec(info, cfg, images)
    t_load = time.perf_counter()
    cache_dir = (cfg.cache_dir or default_cache_dir()) if cfg.cache else None
    loaded = load_cached(images, spec, cache_dir)
    load_s = time.perf_counter() - t_load
    kept = ImageSet(images.root, loaded.records, images.classes)
    if not kept.records:
        raise DataError("no usable images (every file was unreadable or had no cell)", data_root)
    checks.check_classes(kept, data_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = make_split(kept, cfg, groups_csv, out_dir)
    labels = [r.label for r in kept.records]
    checks.check_split(labels, plan.groups, plan.sides, plan.name, plan.kind, data_root)
    splits.write_manifest(out_dir / MANIFEST_FILE, kept.records, plan.groups, plan.sides)
    data = TrainData(kept, loaded.images, kept.labels(), spec, plan, loaded.skipped, load_s)
    context = {"data_root": data_root, "groups_csv": groups_csv, "t0": t0}
    if cfg.kfold:
        return train_kfold(data, cfg, out_dir, max_steps, context)
    result = train_run(data, cfg, out_dir, sides_for_single(plan), max_steps)
    return write_bundle(data, cfg, out_dir, result, context)
