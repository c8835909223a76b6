"""The calibration pack: training-side crops carried in the bundle, so INT8 conversion runs on
the bundle alone.

`calibration.npz` is stored like the self-test sample (`convert.selftest.pack`): uint8 crops
prepared to the model's input exactly as the device cuts them (colour step, crop, resize,
colour order), as lossless WebP, with `labels` (class indices) and `files` (the training
images they were cut from, relative to the data root). The crops come from the train side of
the bundle's split manifest, stratified over classes and source cells, so they are kept apart
from the held-out self-test crops (`selftest.npz`). Registered as bundle.json →
`calibration_pack`, hashed and stamped with the classes/preprocessing fingerprint.
"""

from __future__ import annotations

import logging

import numpy as np

from wbc_edge.convert.calibration import bundle_manifest
from wbc_edge.convert.formats import ConvertError
from wbc_edge.convert.selftest import pack, to_uint8
from wbc_edge.convert.source import Calibration
from wbc_edge.core.bundle import Bundle, CalibrationPack
from wbc_edge.core.errors import BundleError
from wbc_edge.core.preprocess import normalise
from wbc_edge.core.safe_io import atomic_write
from wbc_edge.core.selftest import read_crops

log = logging.getLogger(__name__)

PACK_FILE = "calibration.npz"
DEFAULT_PACK_IMAGES = 200  # 96x96 crops: about 2 MB
MAX_PACK_IMAGES = 2000


def write_pack(bundle: Bundle, calib: Calibration, n: int) -> CalibrationPack:
    """Write the first `n` calibration images (a stratified prefix) as the bundle's pack.
    `calib` must come from the train side of the bundle's split manifest."""
    manifest = bundle_manifest(bundle)
    if manifest is None:
        raise ConvertError("a calibration pack needs the bundle's split manifest", bundle.path)
    n = min(n, len(calib.files))
    crops = to_uint8(calib.images[:n], bundle.preprocessing)
    index = {c: i for i, c in enumerate(bundle.classes)}
    labels = np.array([index[c] for c in calib.labels[:n]], np.int64)
    files = np.array(calib.files[:n], dtype=str)
    atomic_write(bundle.root / PACK_FILE, pack(crops, labels, files=files))
    rec = bundle.file_hash(PACK_FILE)
    source = (
        f"{n} training-side crops: the train side of {manifest.name}, stratified over classes "
        "and source cells (held apart from the self-test crops)"
    )
    bundle.calibration_pack = CalibrationPack(
        rec.file, rec.sha256, rec.size_bytes, n, source, bundle.contract_sha256
    )
    log.info("calibration pack: %s, %.2f MB", source, rec.size_bytes / 1e6)
    return bundle.calibration_pack


def load_pack(bundle: Bundle, n: int | None = None) -> Calibration:
    """The pack as calibration images (the first `n`, None: all), normalised per the bundle."""
    rec = bundle.calibration_pack
    if rec is None:
        raise BundleError(
            "has no calibration pack (bundle.json → calibration_pack); add it where the "
            "training data is: wbc-convert BUNDLE --calibration-pack-only",
            bundle.path,
        )
    crops, arrays = read_crops(bundle, rec, "calibration_pack", ("labels", "files"))
    labels, files = arrays["labels"], arrays["files"]
    if labels.shape != (rec.n,) or files.shape != (rec.n,) or labels.min(initial=0) < 0:
        raise BundleError(f"calibration_pack: {rec.file} has bad labels or files", bundle.path)
    if labels.max(initial=0) >= len(bundle.classes):
        raise BundleError(f"calibration_pack: {rec.file} names unknown classes", bundle.path)
    k = rec.n if n is None else min(n, rec.n)
    return Calibration(
        images=normalise(crops[:k], bundle.preprocessing),
        files=[str(f) for f in files[:k]],
        labels=[bundle.classes[i] for i in labels[:k]],
        source=f"the bundle's calibration pack ({rec.file}: {rec.source})",
    )
