"""What a model's output rows are: `probabilities` (a softmax inside the model) or `logits`.

Each artifact declares its kind in the bundle (`wbc-convert` records the float model's); the
runtime applies it row by row, so a cell's confidence never depends on the other cells of its
batch. `infer_output_kind` is for deciding once — over a whole parity set at conversion, or a
probe batch when an old bundle declares nothing — never per batch.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from wbc_edge.core.preprocess_spec import PreprocessSpec

OutputKind = Literal["probabilities", "logits"]
OUTPUT_KINDS: tuple[OutputKind, ...] = ("probabilities", "logits")
SUM_TOLERANCE = 0.02  # rows summing to 1 within this are probabilities (int8 softmax included)


def infer_output_kind(raw: np.ndarray) -> OutputKind:
    """`probabilities` if every row is non-negative and sums to 1, else `logits`."""
    out = np.asarray(raw, np.float32)
    if out.size and out.min() >= 0 and np.abs(out.sum(axis=1) - 1.0).max() <= SUM_TOLERANCE:
        return "probabilities"
    return "logits"


def probe_batch(spec: PreprocessSpec, n: int = 4, seed: int = 0) -> np.ndarray:
    """A fixed batch of random pixels normalised per the spec: a softmax model's rows sum to 1
    on it, a logits model's almost surely do not."""
    from wbc_edge.core.preprocess import normalise

    rng = np.random.default_rng(seed)
    return normalise(rng.integers(0, 256, (n, spec.height, spec.width, 3), dtype=np.uint8), spec)


def apply_output_kind(raw: np.ndarray, kind: OutputKind) -> np.ndarray:
    """(N, classes) float32 probabilities: rows kept as they are, or a softmax per row."""
    out = np.asarray(raw, np.float32)
    if kind == "probabilities":
        return out
    if kind != "logits":
        raise ValueError(f"unknown output kind {kind!r}")
    e = np.exp(out - out.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
