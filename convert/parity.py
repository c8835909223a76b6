"""The parity check: does an artifact classify the held-out images as the float Keras model does?

Both see the same preprocessed tensors (one preprocessing function); the artifact runs through
the device's runtime interface (`open_runtime(bundle, artifact).predict(batch) -> probs`), so
parity measures the code path the device runs. Reported per artifact: top-1 agreement with the
float model, accuracy of both and the drop, per-class recall and F1 of both, both confusion
matrices, max and mean absolute probability difference, and the images that flipped class.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from wbc_edge.convert.source import HeldOut
from wbc_edge.core import metrics
from wbc_edge.core.bundle import Artifact, Bundle

log = logging.getLogger(__name__)

BATCH = 32
LATENCY_IMAGES = 30  # batch-1 predictions timed per artifact for the latency column


class Predictor(Protocol):
    def predict(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Thresholds:
    """An artifact passes when agreement >= min_agreement and accuracy drop <= max_drop."""

    min_agreement: float = 0.99
    max_drop: float = 0.01  # a fraction: 0.01 = one percentage point

    def __post_init__(self) -> None:  # a NaN threshold would turn the gate off in silence
        for name in ("min_agreement", "max_drop"):
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
    flipped = [
        {
            "file": held_out.files[i],
            "label": classes[labels[i]],
            "float": classes[f_pred[i]],
            "artifact": classes[a_pred[i]],
            "float_confidence": round(float(float_probs[i, f_pred[i]]), 5),
            "artifact_confidence": round(float(art_probs[i, a_pred[i]]), 5),
        }
        for i in np.flatnonzero(f_pred != a_pred)
    ]
    reasons = []
    if agreement < thresholds.min_agreement:
        reasons.append(f"agreement {agreement:.4f} < {thresholds.min_agreement}")
    if drop > thresholds.max_drop:
        reasons.append(f"accuracy drop {100 * drop:.2f} points > {100 * thresholds.max_drop:.2f}")
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
        "passed": not reasons,
        "reasons": reasons,
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
        key=f"{art.format}-{art.precision}",
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
    keys = {"backend": "name", "device": "device", "input": "input_precision"}
    keys["inference_precision"] = "inference_precision"
    info = {k: getattr(runtime, attr, None) for k, attr in keys.items()}
    return {k: str(v) for k, v in info.items() if v is not None}


def open_runtime(bundle: Bundle, art: Artifact, threads: int | None = None) -> Any:
    """The device's runtime interface: parity and the device run the same code path."""
    from wbc_edge.core.quiet import native_stderr
    from wbc_edge.core.runtime import open_runtime as _open

    with native_stderr():  # "Created TensorFlow Lite XNNPACK delegate" and the like
        return _open(bundle, art, threads=threads)
