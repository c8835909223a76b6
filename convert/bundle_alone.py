"""Converting a bundle without its training data: calibrate on the bundle's calibration pack,
check parity on its held-out self-test crops.

Used when neither --data-root, --calib-data nor --parity-data is given and the data root the
bundle records is not on this machine. The report then says plainly that the check ran on the
self-test sample, which is smaller than a full held-out set.
"""

from __future__ import annotations

import logging

import numpy as np

from wbc_edge.convert.calibration import training_root
from wbc_edge.convert.held_out import Selection
from wbc_edge.convert.source import HeldOut
from wbc_edge.core.bundle import Bundle
from wbc_edge.core.errors import DataError, WbcError
from wbc_edge.core.gallery import to_rgb
from wbc_edge.core.selftest import load_sample

log = logging.getLogger(__name__)

ADD_PACK = "wbc-convert BUNDLE --calibration-pack-only"


def bundle_alone(bundle: Bundle, data_given: bool, needs_calibration: bool) -> bool:
    """True when the training data is not here and the bundle carries what replaces it: the
    self-test sample, and the calibration pack if INT8 needs calibrating. When the data is
    missing and the bundle lacks them, the one-line error names both ways out."""
    if data_given:
        return False
    try:
        training_root(bundle)
        return False
    except WbcError as exc:
        missing = [name for name, rec in _carried(bundle, needs_calibration) if rec is None]
        if not missing:
            log.info("the training data is not here: converting from the bundle alone")
            return True
        raise DataError(
            f"{exc.message}; or, where the data is, add the {' and '.join(missing)} to the "
            f"bundle ({ADD_PACK}) so it converts on its own",
            exc.path,
        ) from None


def _carried(bundle: Bundle, needs_calibration: bool) -> list[tuple[str, object]]:
    carried: list[tuple[str, object]] = [("self-test sample", bundle.selftest)]
    if needs_calibration:
        carried.append(("calibration pack", bundle.calibration_pack))
    return carried


def selftest_parity_set(
    bundle: Bundle, limit: int | None = None
) -> tuple[HeldOut, dict[str, np.ndarray]]:
    """The self-test crops as the parity set, and their RGB crops by name for thumbnails."""
    sample = load_sample(bundle)
    rec = bundle.selftest
    assert rec is not None and sample.labels is not None and sample.crops is not None
    n = rec.n if limit is None else min(limit, rec.n)
    labels = sample.labels
    if labels.shape != (rec.n,) or not 0 <= labels.min() <= labels.max() < len(bundle.classes):
        raise DataError("selftest: the sample's labels do not match the bundle", bundle.path)
    files = [f"{rec.file}#{i}" for i in range(n)]
    how = f"the bundle's self-test sample ({rec.file}: {rec.source})"
    selection = Selection(how, rec.n, n, {}, 0, [], True)
    held_out = HeldOut(
        sample.inputs[:n],
        labels[:n],
        files,
        bundle.root,
        how,
        selection=selection,
        groups=[],
    )
    spec = bundle.preprocessing
    crops = {f: to_rgb(c, spec) for f, c in zip(files, sample.crops[:n], strict=True)}
    return held_out, crops


def small_sample_note(held_out: HeldOut, n_classes: int, last_full: int | None) -> str:
    """What a reader must know about a parity check on the self-test sample."""
    n = len(held_out.files)
    per_class = np.bincount(held_out.labels, minlength=n_classes)
    smallest = int(per_class[per_class > 0].min()) if n else 0
    earlier = f" (the bundle's last full check used {last_full} images)" if last_full else ""
    return (
        f"The self-test sample is smaller than a full held-out set{earlier}: here one image is "
        f"{100 / max(n, 1):.2f} % of agreement and, in the smallest class ({smallest} crops), "
        f"{100 / max(smallest, 1):.1f} points of recall. With the training data on this "
        "machine, --data-root DIR runs the full check."
    )
