"""Frozen-feature linear probe: how far a pretrained backbone's features go without training it.

`extract_features` runs a backbone (e.g. EfficientNet-Lite0 without its head) over prepared
uint8 crops normalised by the bundle spec; `fit_softmax` is a multinomial logistic regression
in numpy (L2-regularised, solved by accelerated gradient descent); `probe_folds` scores it on
(grouped) K-fold sides, standardising features on the training folds only.

    python -m wbc_edge.train.probe /data/kaggle-blood-cells/TRAIN --variant 0 --folds 5
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from wbc_edge.core.errors import DataError
from wbc_edge.core.preprocess import normalise
from wbc_edge.core.preprocess_spec import PreprocessSpec

log = logging.getLogger(__name__)


def extract_features(
    model, images_uint8: np.ndarray, spec: PreprocessSpec, batch_size: int = 64
) -> np.ndarray:
    """(N, D) float32 features of prepared uint8 images; 4-D outputs are average-pooled."""
    import keras

    want = (spec.height, spec.width)
    if tuple(images_uint8.shape[1:3]) != want:
        raise ValueError(f"images are {images_uint8.shape[1:3]}, the spec says {want}")
    parts = []
    for start in range(0, len(images_uint8), batch_size):
        x = normalise(images_uint8[start : start + batch_size], spec)
        f = keras.ops.convert_to_numpy(model.predict_on_batch(x))  # compiled, inference mode
        parts.append((f.mean(axis=(1, 2)) if f.ndim == 4 else f).astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


@dataclass
class SoftmaxModel:
    """A linear classifier on standardised features: logits = ((x - mean) / scale) @ W + b."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (D, K)
    bias: np.ndarray  # (K,)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weights + self.bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(features))


def fit_softmax(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int | None = None,
    l2: float = 1e-3,
    iterations: int = 500,
) -> SoftmaxModel:
    """Minimise mean cross-entropy + l2/2·‖W‖² (bias unpenalised) on standardised features.

    Equals scikit-learn's `LogisticRegression(C=1 / (l2 * N))`. The objective is convex and
    smooth; FISTA with the step 1/L (L from the features' largest eigenvalue) converges.
    """
    x, mean, scale = _standardise(features)
    y = np.asarray(labels, dtype=np.int64)
    k = int(n_classes if n_classes is not None else y.max() + 1)
    n, d = x.shape
    onehot = np.eye(k, dtype=np.float64)[y]
    xb = np.hstack([x, np.ones((n, 1))])
    step = 1.0 / (0.5 * _largest_eigenvalue(xb) / n + l2)
    penalty = np.ones((d + 1, 1))
    penalty[-1] = 0.0  # no decay on the bias
    w = np.zeros((d + 1, k))
    z, t = w.copy(), 1.0
    for _ in range(iterations):
        grad = xb.T @ (_softmax(xb @ z) - onehot) / n + l2 * penalty * z
        w_next = z - step * grad
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = w_next + (t - 1) / t_next * (w_next - w)
        w, t = w_next, t_next
    return SoftmaxModel(mean, scale, w[:-1].astype(np.float32), w[-1].astype(np.float32))


@dataclass
class ProbeResult:
    """Held-out accuracy per fold, from a linear probe trained on the other folds."""

    fold_accuracy: dict[str, float]
    fold_macro_recall: dict[str, float]
    confusion: list[list[int]]  # summed over folds, rows = true class
    settings: dict = field(default_factory=dict)

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean(list(self.fold_accuracy.values())))

    @property
    def std_accuracy(self) -> float:
        """Sample standard deviation over folds (ddof=1), as `wbc-train --kfold` reports."""
        values = list(self.fold_accuracy.values())
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def probe_folds(
    features: np.ndarray, labels: np.ndarray, sides: list[str], l2: float = 1e-3
) -> ProbeResult:
    """Train on every fold but one, score the held-out fold, for each fold in `sides`."""
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max() + 1)
    sides_arr = np.asarray(sides)
    acc, recall = {}, {}
    confusion = np.zeros((k, k), dtype=np.int64)
    for fold in sorted(set(sides)):
        test = sides_arr == fold
        model = fit_softmax(features[~test], labels[~test], k, l2=l2)
        pred = model.logits(features[test]).argmax(axis=1)
        truth = labels[test]
        np.add.at(confusion, (truth, pred), 1)
        acc[fold] = float(np.mean(pred == truth))
        per_class = [np.mean(pred[truth == c] == c) for c in range(k) if np.any(truth == c)]
        recall[fold] = float(np.mean(per_class))
    return ProbeResult(acc, recall, confusion.tolist(), {"l2": l2})


def _standardise(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    mean = f.mean(axis=0)
    scale = f.std(axis=0)
    scale[scale < 1e-8] = 1.0
    return (f - mean) / scale, mean.astype(np.float32), scale.astype(np.float32)


def _largest_eigenvalue(x: np.ndarray, iterations: int = 50) -> float:
    v = np.random.default_rng(0).standard_normal(x.shape[1])
    for _ in range(iterations):
        v = x.T @ (x @ v)
        v /= np.linalg.norm(v)
    return float(v @ (x.T @ (x @ v)))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- measurement on a data folder --------------------------------------------------------


def lite_probe_spec(
    variant: int = 0, crop_size: int = 150, input_size: int | None = None
) -> PreprocessSpec:
    """The nucleus-crop spec with the Lite normalisation, at `input_size` (default: the
    variant's own)."""
    from wbc_edge.core.preprocess_spec import CropSpec
    from wbc_edge.train.efficientnet_lite import LITE_INPUT_SIZE, LITE_PREPROCESS

    size = input_size or LITE_INPUT_SIZE[variant]
    return PreprocessSpec(
        height=size, width=size, crop=CropSpec("nucleus", crop_size), norm=LITE_PREPROCESS
    )


def main(argv: list[str] | None = None) -> int:
    from wbc_edge.core.cli_support import run_cli

    return run_cli("wbc-probe", lambda: _probe_command(sys.argv[1:] if argv is None else argv))


def _probe_command(argv: list[str]) -> int:
    from wbc_edge.core.cli_support import add_version

    p = argparse.ArgumentParser(
        prog="python -m wbc_edge.train.probe", description=__doc__.splitlines()[0]
    )
    add_version(p)
    p.add_argument("data_root", type=Path, help="folder of class folders (e.g. Kaggle TRAIN)")
    p.add_argument("--variant", type=int, default=0, choices=[0, 1, 2])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop-size", type=int, default=150)
    p.add_argument("--input-size", type=int, default=None, help="default: the variant's own")
    p.add_argument("--l2", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--groups", type=Path, default=None, help="path,class,group CSV")
    p.add_argument("--cache", type=Path, default=None, help="features .npz to reuse or write")
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    args = p.parse_args(argv)

    from wbc_edge.core.dataset import splits
    from wbc_edge.core.dataset.cell_groups import resolve_groups
    from wbc_edge.core.dataset.data import list_images

    image_set = list_images(args.data_root)
    groups, origin = resolve_groups(image_set, args.groups)
    spec = lite_probe_spec(args.variant, args.crop_size, args.input_size)
    features, kept = _features(image_set, spec, args)
    index = {id(r): i for i, r in enumerate(image_set.records)}
    keep = [index[id(r)] for r in kept]
    labels = image_set.labels()[keep]
    names = [image_set.records[i].label for i in keep]
    sides = splits.kfold(names, args.folds, seed=args.seed, groups=[groups[i] for i in keep])
    result = probe_folds(features, labels, sides, l2=args.l2)
    result.settings.update(
        variant=args.variant,
        folds=args.folds,
        seed=args.seed,
        groups=origin,
        crop_size=args.crop_size,
        input_size=spec.height,
        images=len(keep),
        classes=image_set.classes,
    )
    print(f"EfficientNet-Lite{args.variant} frozen features + linear probe, {args.folds} folds")
    for fold, a in result.fold_accuracy.items():
        print(f"  {fold}: accuracy {a:.4f}  macro recall {result.fold_macro_recall[fold]:.4f}")
    print(f"  mean accuracy {result.mean_accuracy:.4f} ± {result.std_accuracy:.4f}")
    if args.out:
        payload = {**asdict(result), "mean_accuracy": result.mean_accuracy}
        args.out.write_text(json.dumps(payload, indent=2))
    return 0


def _features(image_set, spec: PreprocessSpec, args) -> tuple[np.ndarray, list]:
    from wbc_edge.core.dataset.data import load_images
    from wbc_edge.train.efficientnet_lite import build_efficientnet_lite
    from wbc_edge.train.pth_weights import load_lite_weights

    if args.cache and args.cache.exists():
        cached = np.load(args.cache, allow_pickle=False)
        made_for = (int(cached["variant"]), int(cached["crop_size"]), int(cached["input_size"]))
        if made_for != (args.variant, args.crop_size, spec.height):
            raise DataError(
                "features of Lite{} at crop {}, input {}, not of this run".format(*made_for),
                args.cache,
            )
        paths = {str(p): i for i, p in enumerate(cached["paths"])}
        kept = [r for r in image_set.records if r.path.as_posix() in paths]
        rows = [paths[r.path.as_posix()] for r in kept]
        log.info("features for %d images from %s", len(kept), args.cache)
        return cached["features"][rows], kept
    t0 = time.perf_counter()
    loaded = load_images(image_set, spec)
    log.info("%d crops prepared in %.0f s", len(loaded.records), time.perf_counter() - t0)
    shape = (spec.height, spec.width, 3)
    model = build_efficientnet_lite(args.variant, shape, include_top=False, pooling="avg")
    load_lite_weights(model, args.variant)
    t0 = time.perf_counter()
    features = extract_features(model, loaded.images, spec, args.batch_size)
    log.info("features extracted in %.0f s", time.perf_counter() - t0)
    if args.cache:
        paths = np.array([r.path.as_posix() for r in loaded.records])
        np.savez_compressed(
            args.cache,
            features=features,
            paths=paths,
            variant=args.variant,
            crop_size=args.crop_size,
            input_size=spec.height,
        )
    return features, loaded.records


if __name__ == "__main__":
    sys.exit(main())
