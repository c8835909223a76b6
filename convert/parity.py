"""The parity check: does an artifact classify the held-out images as the float Keras model does?

Both see the same preprocessed tensors (one preprocessing function); the artifact runs through
the device's runtime interface (`open_runtime(bundle, artifact).predict(batch) -> probs`), so
parity measures the code path the device runs. Reported per artifact: top-1 agreement with the
float model, accuracy of both and the drop, per-class recall and F1 of both and the change of
each class's recall, both confusion matrices, the flips counted by class pair (float's answer →
artifact's answer), max and mean absolute probability difference, the images that flipped class
and those whose probabilities moved most.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from wbc_edge.convert.source import HeldOut
from wbc_edge.core.bundle import Artifact, Bundle
from wbc_edge.core.dataset import metrics

log = logging.getLogger(__name__)

BATCH = 32
LATENCY_IMAGES = 30  # batch-1 predictions timed per artifact for the latency column
LARGEST_SHIFTS = 8  # images with the largest probability change kept per artifact


class Predictor(Protocol):
    def predict(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Thresholds:
    """An artifact passes when agreement >= min_agreement, accuracy drop <= max_drop and no
    class's recall falls by more than max_class_drop (all fractions: 0.01 = one point)."""

    min_agreement: float = 0.99
    max_drop: float = 0.01
    max_class_drop: float = 0.02

    def __post_init__(self) -> None:  # a NaN threshold would turn the gate off in silence
        for name in ("min_agreement", "max_drop", "max_class_drop"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a number from 0 to 1, got {value}")


@dataclass
class Scores:
    """Accuracy, per-class recall/F1 and the confusion matrix (rows: true, columns: predicted)."""

    accuracy: float
    recall: list[float]
    f1: list[float]
    confusion: list[list[int]]


@dataclass
class ArtifactParity:
    """Parity of one artifact against the float model on the held-out set."""

    key: str
    format: str
    precision: str
    file: str
    size_bytes: int
    options: dict[str, Any]
    runtime: dict[str, Any]
    agreement: float
    float_scores: Scores
    artifact_scores: Scores
    drop: float  # accuracy_float - accuracy_artifact, a fraction
    max_abs_prob_diff: float
    mean_abs_prob_diff: float
    predictions: list[int]
    confidences: list[float]
    flipped: list[dict[str, Any]]
    recall_change: list[float]  # artifact recall - float recall, per class (0 for absent ones)
    class_flips: list[dict[str, Any]]  # {"from", "to", "n"}: float's answer → artifact's
    largest_shifts: list[dict[str, Any]]  # the images whose probabilities moved most
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    latency_ms: float | None = None  # batch-1 median ms per image, measured with the parity run

    @property
    def status(self) -> str:
        return "ok" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status
        d["accuracy_float"] = self.float_scores.accuracy
        d["accuracy_artifact"] = self.artifact_scores.accuracy
        d["drop_points"] = 100.0 * self.drop
        return d


def scores(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> Scores:
    """Accuracy, per-class recall and F1, and the confusion matrix."""
    cm = metrics.confusion_matrix(labels, preds, n_classes)
    _, recall, f1 = metrics.per_class(cm)
    return Scores(metrics.accuracy(cm), recall.round(6).tolist(), f1.round(6).tolist(), cm.tolist())


def predict_all(model: Predictor, images: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Probabilities for all images, in batches."""
    out = [np.asarray(model.predict(images[i : i + batch])) for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float32)


def compare(
    float_probs: np.ndarray,
    art_probs: np.ndarray,
    held_out: HeldOut,
    classes: list[str],
    thresholds: Thresholds,
) -> dict[str, Any]:
    """The parity numbers of one artifact's probabilities against the float model's."""
    labels, n = held_out.labels, len(classes)
    f_pred, a_pred = float_probs.argmax(1), art_probs.argmax(1)
    diff = np.abs(float_probs - art_probs)
    f_scores, a_scores = scores(labels, f_pred, n), scores(labels, a_pred, n)
    agreement = float(np.mean(f_pred == a_pred)) if len(labels) else 0.0
    drop = f_scores.accuracy - a_scores.accuracy
    change = recall_change(f_scores, a_scores, np.bincount(labels, minlength=n))
    flips = np.flatnonzero(f_pred != a_pred)
    flipped = [_image(i, held_out, classes, float_probs, art_probs) for i in flips]
    shift = diff.max(1) if diff.size else np.zeros(len(labels))
    order = np.argsort(-shift, kind="stable")[:LARGEST_SHIFTS]
    largest = [
        {**_image(i, held_out, classes, float_probs, art_probs), "shift": round(float(shift[i]), 5)}
        for i in order
        if shift[i] > 0
    ]
    reasons = []
    if agreement < thresholds.min_agreement:
        reasons.append(f"agreement {agreement:.4f} < {thresholds.min_agreement}")
    if drop > thresholds.max_drop:
        reasons.append(f"accuracy drop {100 * drop:.2f} points > {100 * thresholds.max_drop:.2f}")
    reasons += class_reasons(change, f_scores, a_scores, classes, thresholds.max_class_drop)
    return {
        "agreement": agreement,
        "float_scores": f_scores,
        "artifact_scores": a_scores,
        "drop": float(drop),
        "max_abs_prob_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_prob_diff": float(diff.mean()) if diff.size else 0.0,
        "predictions": a_pred.tolist(),
        "confidences": art_probs.max(1).round(5).tolist(),
        "flipped": flipped,
        "recall_change": [round(c, 6) for c in change],
        "class_flips": class_flips(f_pred, a_pred, classes),
        "largest_shifts": largest,
        "passed": not reasons,
        "reasons": reasons,
    }


def recall_change(f_scores: Scores, a_scores: Scores, support: np.ndarray) -> list[float]:
    """Artifact recall minus float recall per class; 0 for a class the set does not hold."""
    return [
        float(a - f) if support[i] else 0.0
        for i, (f, a) in enumerate(zip(f_scores.recall, a_scores.recall, strict=True))
    ]


def class_reasons(
    change: list[float], f_scores: Scores, a_scores: Scores, classes: list[str], limit: float
) -> list[str]:
    """One reason per class whose recall fell by more than `limit`."""
    return [
        f"{c} recall fell {-100 * change[i]:.2f} points ({f_scores.recall[i]:.3f} → "
        f"{a_scores.recall[i]:.3f}) > {100 * limit:.2f}"
        for i, c in enumerate(classes)
        if -change[i] > limit + 1e-9
    ]


def class_flips(f_pred: np.ndarray, a_pred: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """Flips counted by (float's answer, artifact's answer), most first."""
    pairs = Counter((int(f), int(a)) for f, a in zip(f_pred, a_pred, strict=True) if f != a)
    ordered = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"from": classes[f], "to": classes[a], "n": k} for (f, a), k in ordered]


def _image(
    i: int, held_out: HeldOut, classes: list[str], float_probs: np.ndarray, art_probs: np.ndarray
) -> dict[str, Any]:
    """One image: file, true class, both answers with their confidences."""
    f, a = int(float_probs[i].argmax()), int(art_probs[i].argmax())
    return {
        "file": held_out.files[i],
        "label": classes[held_out.labels[i]],
        "float": classes[f],
        "artifact": classes[a],
        "float_confidence": round(float(float_probs[i, f]), 5),
        "artifact_confidence": round(float(art_probs[i, a]), 5),
    }


def check_artifact(
    bundle: Bundle,
    art: Artifact,
    held_out: HeldOut,
    float_probs: np.ndarray,
    thresholds: Thresholds,
) -> ArtifactParity:
    """Run one artifact through the runtime interface and compare it with the float model."""
    with open_runtime(bundle, art) as runtime:  # closed here, not by the garbage collector
        probs = predict_all(runtime, held_out.images)
        if probs.shape != float_probs.shape:
            raise ValueError(f"{art.file} returned {probs.shape}, expected {float_probs.shape}")
        numbers = compare(float_probs, probs, held_out, bundle.classes, thresholds)
        numbers["latency_ms"] = latency_ms(runtime, held_out.images)
        info = runtime_info(runtime)
    return ArtifactParity(
        key=art.key,
        format=art.format,
        precision=art.precision,
        file=art.file,
        size_bytes=art.disk_bytes,
        options=dict(art.options),
        runtime=info,
        **numbers,
    )


def latency_ms(model: Predictor, images: np.ndarray, n: int = LATENCY_IMAGES) -> float | None:
    """Median milliseconds per image at batch 1 over up to `n` images (after 2 warm-up runs)."""
    if not len(images):
        return None
    for i in range(2):
        model.predict(images[i % len(images)][None])
    times = []
    for x in images[:n]:
        t0 = time.perf_counter()
        model.predict(x[None])
        times.append(time.perf_counter() - t0)
    return round(1000.0 * float(np.median(times)), 3)


def runtime_info(runtime: Any) -> dict[str, str]:
    """What the runtime says it ran: backend, device, input type, the precision that ran
    (for OpenVINO read back from the compiled model)."""
    keys = {"backend": "name", "device": "device", "input": "input_precision", "threads": "threads"}
    keys["inference_precision"] = "inference_precision"
    info = {k: getattr(runtime, attr, None) for k, attr in keys.items()}
    return {k: str(v) for k, v in info.items() if v is not None}


def open_runtime(bundle: Bundle, art: Artifact, threads: int | None = None) -> Any:
    """The device's runtime interface: parity and the device run the same code path."""
    from wbc_edge.core.quiet import native_stderr
    from wbc_edge.core.runtime import open_runtime as _open

    with native_stderr():  # "Created TensorFlow Lite XNNPACK delegate" and the like
        return _open(bundle, art, threads=threads)
