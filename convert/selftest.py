"""The on-device parity sample: a few hundred held-out crops and the float model's answers.

`wbc-convert` writes `selftest.npz` into the bundle from the parity set it already uses: the
crops, uint8 (H, W, 3) already prepared to the model's input (colour step, crop, resize,
colour order; only the normalisation is left, which is exact from uint8), each as lossless
WebP (`webp`: the files end to end, `offsets`: where each starts; 200 crops of 96x96 take
1.9 MB, where zlib on the raw array takes 3.9), `crops_sha256` of the decoded crops, `probs`
(N, classes) float32, the float model's probabilities on exactly those tensors, and `labels`.
It is registered as bundle.json → `selftest` (hashed like every file, stamped with the
classes/preprocessing fingerprint). `wbc-edge verify` runs it through the device's runtimes.
"""

from __future__ import annotations

import io
import logging

import numpy as np

from wbc_edge.convert.formats import ConvertError
from wbc_edge.convert.source import HeldOut, SourceModel
from wbc_edge.core.bundle import Bundle, SelfTest
from wbc_edge.core.preprocess import normalise
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.core.safe_io import atomic_write
from wbc_edge.core.selftest import SELFTEST_FILE, crops_sha256

log = logging.getLogger(__name__)

DEFAULT_SELFTEST_IMAGES = 200  # 96x96 crops: 1.9 MB
MAX_SELFTEST_IMAGES = 2000


def write_selftest(bundle: Bundle, source: SourceModel, held_out: HeldOut, n: int) -> SelfTest:
    """Write `selftest.npz` (n held-out images, classes interleaved) and register it."""
    idx = interleaved(held_out.labels, n)
    crops = to_uint8(held_out.images[idx], bundle.preprocessing)
    probs = source.predict(normalise(crops, bundle.preprocessing)).astype(np.float32)
    atomic_write(bundle.root / SELFTEST_FILE, pack(crops, held_out.labels[idx], probs=probs))
    rec = bundle.file_hash(SELFTEST_FILE)
    where = f"{len(idx)} of the parity set ({held_out.source})"
    bundle.selftest = SelfTest(
        rec.file, rec.sha256, rec.size_bytes, len(idx), where, bundle.contract_sha256
    )
    log.info("self-test sample: %s, %.2f MB", where, rec.size_bytes / 1e6)
    return bundle.selftest


def pack(crops: np.ndarray, labels: np.ndarray, **arrays: np.ndarray) -> bytes:
    """The `.npz` bytes of a crops file (crops as lossless WebP, checked to decode exactly),
    with `labels` and any further arrays (the self-test sample's `probs`, the calibration
    pack's `files`); no pickles."""
    files = [_webp(c) for c in crops]
    offsets = np.cumsum([0, *(len(f) for f in files)]).astype(np.int64)
    buf = io.BytesIO()
    np.savez(
        buf,
        webp=np.concatenate(files) if files else np.zeros(0, np.uint8),
        offsets=offsets,
        crops_sha256=np.array(crops_sha256(crops)),
        labels=np.asarray(labels, np.int64),
        **{k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in arrays.items()},
    )
    return buf.getvalue()


def _webp(crop: np.ndarray) -> np.ndarray:
    import cv2

    ok, data = cv2.imencode(".webp", crop, [cv2.IMWRITE_WEBP_QUALITY, 101])  # >100: lossless
    if not ok or not np.array_equal(cv2.imdecode(data, cv2.IMREAD_UNCHANGED), crop):
        raise ConvertError("this OpenCV cannot write lossless WebP for the self-test sample")
    return data.ravel()


def interleaved(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to n indices, one class after the other in turn, each class in its own order."""
    queues = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    out: list[int] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        out += [q[depth] for q in queues if depth < len(q)]
    return np.array(out[:n], np.int64)


def to_uint8(images: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The uint8 crops `normalise` made these float32 inputs from (exact, or ConvertError)."""
    x = images.astype(np.float64)
    norm = spec.norm
    if norm.kind == "scale":
        u = (x - norm.offset) / norm.scale
    else:
        mean, std = np.asarray(norm.mean), np.asarray(norm.std)
        if spec.color_order == "BGR":
            mean, std = mean[::-1], std[::-1]
        u = (x * std + mean) * 255.0
    crops = np.clip(np.round(u), 0, 255).astype(np.uint8)
    if not np.allclose(normalise(crops, spec), images, atol=1e-5):
        raise ConvertError("the parity images are not uint8 crops normalised per the bundle")
    return crops
