"""`wbc-edge verify`: the bundle's self-test sample through this device's runtimes.

Parity ran on the converting machine's kernels (x86); a Pi's ARM INT8 kernels are not those.
The bundle carries `selftest.npz` (written by `wbc-convert`, see `convert.selftest`): held-out
crops prepared to the model's input (lossless WebP) and the float model's probabilities on
them. Each artifact this machine can run predicts them through the one runtime interface;
top-1 agreement with the float model must reach the bundle's recorded parity threshold
(`parity.thresholds`).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np

from wbc_edge.core.bundle import Artifact, Bundle, SelfTest
from wbc_edge.core.errors import BundleError, WbcError
from wbc_edge.core.preprocess import normalise
from wbc_edge.core.text_table import aligned_table

SELFTEST_FILE = "selftest.npz"
DEFAULT_MIN_AGREEMENT = 0.99  # wbc-convert's default, for a bundle that records none
BATCH = 32


@dataclass(frozen=True)
class Sample:
    """The self-test sample: model inputs (float32, normalised) and the float model's probs;
    the uint8 crops and the labels (class indices) they were made from."""

    inputs: np.ndarray
    probs: np.ndarray
    crops: np.ndarray | None = None
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class Verdict:
    """One artifact's self-test on this device."""

    key: str  # format-precision
    file: str
    runtime: str  # backend that ran it, or why it did not
    agreement: float | None  # None: not run here
    max_abs_prob_diff: float | None
    threshold: float
    failed_to_load: bool = False  # a runtime for it is here, and it cannot load the file

    @property
    def passed(self) -> bool | None:
        if self.failed_to_load:
            return False
        return None if self.agreement is None else self.agreement >= self.threshold


def load_sample(bundle: Bundle) -> Sample:
    """The bundle's self-test sample, checked against the bundle (hash checked at load)."""
    rec = bundle.selftest
    if rec is None:
        raise WbcError(
            "has no self-test sample (bundle.json → selftest); wbc-convert writes it "
            "(wbc-convert BUNDLE --selftest-only adds it to a converted bundle)",
            bundle.path,
        )
    crops, arrays = read_crops(bundle, rec, "selftest", ("probs", "labels"))
    probs = arrays["probs"]
    if probs.shape != (rec.n, len(bundle.classes)):
        raise BundleError(
            f"selftest: {rec.file} holds probs {probs.shape}; expected "
            f"({rec.n}, {len(bundle.classes)})",
            bundle.path,
        )
    spec = bundle.preprocessing
    return Sample(normalise(crops, spec), probs.astype(np.float32), crops, arrays["labels"])


def read_crops(
    bundle: Bundle, rec: SelfTest, where: str, names: tuple[str, ...]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The uint8 crops of a crops file (the self-test sample, the calibration pack) and the
    named arrays beside them; BundleError (one line) when it cannot be read or does not match
    the bundle's input size."""
    path = bundle.artifact_path(rec)
    try:
        with np.load(path, allow_pickle=False) as data:
            crops = unpack_crops(data["webp"], data["offsets"])
            recorded = str(data["crops_sha256"])
            arrays = {name: np.asarray(data[name]) for name in names}
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{where}: {rec.file} cannot be read ({exc})", bundle.path) from None
    spec = bundle.preprocessing
    want = (rec.n, spec.height, spec.width, 3)
    if crops.shape != want:
        raise BundleError(
            f"{where}: {rec.file} holds crops {crops.shape}; expected {want}", bundle.path
        )
    if crops_sha256(crops) != recorded:
        raise BundleError(
            f"{where}: {rec.file}: this OpenCV decodes its WebP crops differently", bundle.path
        )
    return crops, arrays


def unpack_crops(webp: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The uint8 crops of a sample from their lossless WebP files (ValueError if unreadable)."""
    import cv2

    crops = []
    for start, end in itertools.pairwise(offsets):
        crop = cv2.imdecode(webp[start:end], cv2.IMREAD_UNCHANGED)
        if crop is None or crop.ndim != 3 or crop.shape[2] != 3:
            raise ValueError(f"crop {len(crops)} is not a 3-channel WebP image")
        crops.append(crop)
    if not crops:
        raise ValueError("no crops")
    return np.stack(crops)


def crops_sha256(crops: np.ndarray) -> str:
    """sha256 of the crops' shape and bytes: proves a decoder gave back exactly what was stored."""
    h = hashlib.sha256(str(crops.shape).encode())
    h.update(np.ascontiguousarray(crops, np.uint8).tobytes())
    return h.hexdigest()


def threshold(bundle: Bundle) -> float:
    """The top-1 agreement an artifact needed in the bundle's parity check."""
    t = bundle.thresholds()
    return DEFAULT_MIN_AGREEMENT if t is None else t.min_agreement


def verify_artifact(bundle: Bundle, art: Artifact, sample: Sample, threads: int | None) -> Verdict:
    """Run the sample through `art` on this machine and compare with the float model."""
    from wbc_edge.core.quiet import native_stderr
    from wbc_edge.core.runtime import open_runtime

    with native_stderr():
        rt = open_runtime(bundle, art, threads=threads)
    with rt:
        batches = range(0, len(sample.inputs), BATCH)
        out = [rt.predict(sample.inputs[i : i + BATCH]) for i in batches]
        name = f"{rt.name} ({rt.inference_precision})"
        if rt.output_kind_note:
            name += ", output kind probed"
    probs = np.concatenate(out)
    agreement = float(np.mean(probs.argmax(1) == sample.probs.argmax(1)))
    diff = float(np.abs(probs - sample.probs).max())
    return Verdict(art.key, art.file, name, agreement, diff, threshold(bundle))


def not_run(bundle: Bundle, art: Artifact, why: str) -> Verdict:
    """No runtime for it on this machine: a row that says so, neither pass nor fail."""
    return Verdict(art.key, art.file, why, None, None, threshold(bundle))


def load_failed(bundle: Bundle, art: Artifact, why: str) -> Verdict:
    """Its runtime is here but cannot load it (a cut or corrupt file): a failure."""
    return Verdict(art.key, art.file, why, None, None, threshold(bundle), failed_to_load=True)


def format_table(bundle: Bundle, verdicts: list[Verdict]) -> str:
    """The table `wbc-edge verify` prints, one row per artifact, and a verdict line."""
    rows = [["artifact", "file", "runtime", "agreement", "max |Δp|", "needs", "result"]]
    for v in verdicts:
        result = {True: "PASS", False: "FAIL", None: "not run"}[v.passed]
        rows.append(
            [
                v.key,
                v.file,
                v.runtime,
                "-" if v.agreement is None else f"{v.agreement:.4f}",
                "-" if v.max_abs_prob_diff is None else f"{v.max_abs_prob_diff:.4f}",
                f"{v.threshold:g}",
                result,
            ]
        )
    lines = [aligned_table(rows)]
    run = [v for v in verdicts if v.passed is not None]
    failed = [v for v in run if not v.passed]
    n = bundle.selftest.n if bundle.selftest else 0
    verdict = "FAIL" if failed or not run else "PASS"
    lines.append(
        f"{verdict}: {len(run) - len(failed)} of {len(run)} artifact(s) agree with the float "
        f"model on {n} self-test crops ({bundle.name})"
    )
    return "\n".join(lines)
