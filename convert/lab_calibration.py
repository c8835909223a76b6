"""INT8 calibration of an adapted bundle sees the lab's own cells too.

`wbc-train adapt` stores the cells the child learned from in `lab_cells.npz` (uint8 crops as
the model takes them, their labels and files) and records its sha256 in
`provenance.adaptation.lab_cells`. Quantization ranges measured on the original training
images alone can clip what the lab's stain and camera give; `with_lab_cells` interleaves up to
half of the calibration set with the lab's cells, so that a calibration pack written from it
(its stratified prefix) holds both.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from wbc_edge.convert.source import Calibration
from wbc_edge.core.adaptation import adaptation
from wbc_edge.core.bundle import Bundle
from wbc_edge.core.errors import BundleError
from wbc_edge.core.json_limits import read_limited
from wbc_edge.core.preprocess import normalise

log = logging.getLogger(__name__)
LAB_BYTES = 200_000_000


def with_lab_cells(bundle: Bundle, calib: Calibration) -> Calibration:
    """`calib` with the bundle's lab cells interleaved (at most half the set); unchanged for a
    bundle that was not adapted. BundleError when the recorded file is missing or changed."""
    record = adaptation(bundle)
    rec = record.get("lab_cells") if record else None
    if not isinstance(rec, dict):
        return calib
    path = bundle.root / str(rec.get("file"))
    raw = read_limited(path, LAB_BYTES, error=BundleError)
    if hashlib.sha256(raw).hexdigest() != rec.get("sha256"):
        raise BundleError("does not match the sha256 its adaptation recorded", path)
    import io

    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        crops, labels, files = z["crops"], z["labels"], z["files"]
    if crops.shape[1:] != (bundle.preprocessing.height, bundle.preprocessing.width, 3):
        raise BundleError("holds crops of another input size than the bundle's", path)
    n = min(len(crops), max(1, len(calib.files) // 2))
    pick = np.linspace(0, len(crops) - 1, n).round().astype(int) if len(crops) else []
    lab_x = normalise(crops[pick], bundle.preprocessing)
    order, images, names, classes = _interleave(len(calib.files), n), [], [], []
    for src, i in order:
        if src == "lab":
            images.append(lab_x[i])
            names.append(f"lab:{files[pick[i]]}")
            classes.append(bundle.classes[int(labels[pick[i]])])
        else:
            images.append(calib.images[i])
            names.append(calib.files[i])
            classes.append(calib.labels[i])
    log.info("calibration: %d of the lab's cells interleaved with %d", n, len(calib.files))
    return Calibration(
        images=np.stack(images).astype(np.float32),
        files=names,
        labels=classes,
        source=f"{calib.source}, interleaved with {n} of the lab's reviewed cells "
        f"({rec.get('file')})",
        skipped=calib.skipped,
        root=calib.root,
    )


def _interleave(n_train: int, n_lab: int) -> list[tuple[str, int]]:
    """Training and lab indices alternated while both last, the rest after."""
    out: list[tuple[str, int]] = []
    for i in range(max(n_train, n_lab)):
        if i < n_train:
            out.append(("train", i))
        if i < n_lab:
            out.append(("lab", i))
    return out
