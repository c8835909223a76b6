"""Batches for Keras from uint8 arrays in memory: numpy augmentation, then the one normalisation.

Images are decoded, cropped and resized once (`core.dataset.data.load_images`, cached as .npz by
`load_cached`); each batch is augmented by `train.augment` (flips, rotations, zoom, shift,
colour, blur) and normalised by `core.preprocess.normalise`, the same function the device
uses. No TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from wbc_edge.core.dataset.data import ImageRecord, ImageSet, LoadedImages, load_images
from wbc_edge.core.preprocess import normalise
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.train.augment import Augment, augment_batch
from wbc_edge.train.devices import Replicas

log = logging.getLogger(__name__)


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (k · count_c) per class (scikit-learn's 'balanced'); absent classes get 0."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


class CellBatches(keras.utils.PyDataset):
    """(x, y[, sample_weight]) batches: augmented, normalised float32 and one-hot labels.

    Shuffled every epoch when `shuffle`; the augmentation of batch i in epoch e depends only on
    (seed, e, i), so runs repeat exactly whatever the worker count. `max_batches` caps an epoch.
    `mixup` > 0 blends every image with another of its batch after augmentation (mixup, Zhang
    et al. 2018): weight λ ~ Beta(mixup, mixup), kept ≥ 0.5 for the image itself; labels and
    sample weights are blended alike.

    Data parallel (`replicas`): each batch is made whole, the same in every process, and this
    process returns its rows of it (`Replicas`), so the global batch is the one a single
    device would see. A last batch whose size does not divide by the device count is cut to
    a multiple of it (`pad_partial` False: training, whose batch-norm statistics must not
    see filler) or padded with zero-weight copies of its first row (`pad_partial` True:
    validation, in inference mode; every batch then carries weights, so accuracy is exact
    and the loss of that batch averages in the filler's zeros).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        n_classes: int,
        spec: PreprocessSpec,
        batch_size: int,
        *,
        augment: Augment | None = None,
        shuffle: bool = False,
        seed: int = 0,
        class_weights: np.ndarray | None = None,
        max_batches: int | None = None,
        mixup: float = 0.0,
        replicas: Replicas | None = None,
        pad_partial: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images, self.labels = images, np.asarray(labels, np.int64)
        self.n_classes, self.spec, self.batch_size = n_classes, spec, int(batch_size)
        self.augment = augment if augment is not None and augment.active else None
        if self.augment is not None and self.augment.lamp and spec.color_order != "RGB":
            raise ValueError("augment lamp: the model's colour order must be RGB")
        self.shuffle, self.seed = shuffle, seed
        self.class_weights = class_weights
        self.max_batches = max_batches
        self.mixup = float(mixup)
        self.replicas = replicas or Replicas()
        self.pad_partial = pad_partial and self.replicas.parallel
        self.epoch = 0
        self.order = self._order()

    def __len__(self) -> int:
        n = len(self.images) // self.batch_size
        rest = len(self.images) % self.batch_size
        if rest and (self.pad_partial or rest >= self.replicas.devices):
            n += 1
        return min(n, self.max_batches) if self.max_batches else n

    def __getitem__(self, i: int):
        x, y, w = self._global_batch(i)
        devices, rows = self.replicas.devices, len(x)
        if rows % devices and self.pad_partial:
            fill = devices - rows % devices
            x, y = (np.concatenate([a, np.repeat(a[:1], fill, 0)]) for a in (x, y))
            w = np.concatenate([np.ones(rows) if w is None else w, np.zeros(fill)])
        elif self.pad_partial and w is None:
            w = np.ones(rows)
        keep = len(x) - len(x) % devices
        share = keep // self.replicas.processes
        part = slice(self.replicas.process * share, (self.replicas.process + 1) * share)
        if w is None:
            return x[part], y[part]
        return x[part], y[part], w[part].astype(np.float32)

    def _global_batch(self, i: int):
        """Batch i whole, as one device sees it: (x, y, sample weights or None)."""
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        x = self.images[idx]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if self.augment is not None:
            x = augment_batch(x, self.augment, rng, self.spec.colour)
        y = np.eye(self.n_classes, dtype=np.float32)[self.labels[idx]]
        x = normalise(x, self.spec)
        w = None if self.class_weights is None else self.class_weights[self.labels[idx]]
        if self.mixup > 0:
            x, y, w = _mix(x, y, w, self.mixup, rng)
        return x, y, w

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle and augment as in epoch `epoch` (a resumed run continues the sequence)."""
        self.epoch = epoch
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, self.epoch, 7]).permutation(len(self.images))


def _mix(
    x: np.ndarray, y: np.ndarray, w: np.ndarray | None, alpha: float, rng: np.random.Generator
):
    """Mixup of a batch with a shuffled copy of itself; λ ≥ 0.5 for each image's own part."""
    lam = rng.beta(alpha, alpha, len(x)).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    partner = rng.permutation(len(x))
    x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[partner]
    y = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
    if w is not None:
        w = lam * w + (1 - lam) * w[partner]
    return x.astype(np.float32), y, w


def predict_probabilities(
    model: keras.Model,
    images: np.ndarray,
    spec: PreprocessSpec,
    batch_size: int = 64,
    eager: bool = False,
) -> np.ndarray:
    """Class probabilities for uint8 images, normalised batch by batch (bounded memory).

    `eager` calls the model directly (no graph tracing: quicker for a handful of images)."""

    def predict(x: np.ndarray) -> np.ndarray:
        if eager:
            return keras.ops.convert_to_numpy(model(x, training=False))
        return np.asarray(model.predict_on_batch(x))

    out = [
        predict(normalise(images[i : i + batch_size], spec))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def default_cache_dir() -> Path:
    """$WBC_CACHE, else $XDG_CACHE_HOME/wbc-edge, else ~/.cache/wbc-edge (never the repo)."""
    if os.environ.get("WBC_CACHE"):
        return Path(os.environ["WBC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wbc-edge"


def load_cached(
    image_set: ImageSet,
    spec: PreprocessSpec,
    cache_dir: Path | None,
    records: Sequence[ImageRecord] | None = None,
) -> LoadedImages:
    """`load_images`, cached as .npz keyed by data root + spec + file list (sizes, times).

    A second run with the same data and spec skips decoding. `cache_dir` None: no cache.
    """
    records = list(image_set.records if records is None else records)
    if cache_dir is None:
        return load_images(image_set, spec, records, progress=_progress)
    file = Path(cache_dir) / "images" / f"{_cache_key(image_set, spec, records)}.npz"
    if file.is_file():
        try:
            return _read_cache(file, records)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable image cache %s (%s)", file, exc)
    loaded = load_images(image_set, spec, records, progress=_progress)
    _write_cache(file, loaded)
    return loaded


# Raise when `core.preprocess.prepare` changes what it makes from the same spec, so that a
# cache of prepared images from older code is never read as current.
PREPARE_VERSION = 2


def _cache_key(image_set: ImageSet, spec: PreprocessSpec, records: list[ImageRecord]) -> str:
    h = hashlib.sha256()
    h.update(f"prepare v{PREPARE_VERSION}\n".encode())
    h.update(str(Path(image_set.root).resolve()).encode())
    h.update(json.dumps(spec.to_dict(), sort_keys=True).encode())
    for r in records:
        st = (image_set.root / r.path).stat()
        h.update(f"{r.path.as_posix()}|{r.label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    name = Path(image_set.root).resolve().name or "data"
    return f"{name}-{spec.height}x{spec.width}-{h.hexdigest()[:16]}"


def _read_cache(file: Path, records: list[ImageRecord]) -> LoadedImages:
    with np.load(file, allow_pickle=False) as z:
        images, paths = z["images"], [str(p) for p in z["paths"]]
        skipped = json.loads(str(z["skipped"]))
    by_path = {r.path.as_posix(): r for r in records}
    log.info("loaded %d prepared images from the cache %s", len(images), file)
    return LoadedImages(images, [by_path[p] for p in paths], skipped)


def _write_cache(file: Path, loaded: LoadedImages) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.stem}.{os.getpid()}.tmp.npz")
    paths = np.array([r.path.as_posix() for r in loaded.records], dtype=str)
    np.savez(tmp, images=loaded.images, paths=paths, skipped=json.dumps(loaded.skipped))
    os.replace(tmp, file)
    log.info("cached %d prepared images in %s", len(loaded.images), file)


def _progress(done: int, total: int) -> None:
    step = max(1, total // 10)
    if done % step == 0 or done == total:
        log.info("prepared %d/%d images", done, total)
