"""The preprocessing a model is trained with (and its bundle carries), colour references
included."""

from __future__ import annotations

import logging

from wbc_edge.core.colour import reference_colours
from wbc_edge.core.dataset.data import ImageSet
from wbc_edge.core.decode import decode_image
from wbc_edge.core.errors import DataError, ImageError
from wbc_edge.core.preprocess_spec import ColourSpec, CropSpec, NucleusParams, PreprocessSpec
from wbc_edge.train.config import TrainConfig
from wbc_edge.train.models import ModelInfo

log = logging.getLogger(__name__)


COLOUR_SAMPLE = 400  # images the colour references are measured on


def model_spec(info: ModelInfo, cfg: TrainConfig, images: ImageSet | None = None) -> PreprocessSpec:
    """The preprocessing the model is trained with (and the bundle carries).

    With `cfg.colour == "reference"` the colour references are measured on `images`.
    """
    size = int(cfg.input_size)  # type: ignore[arg-type]
    spec = PreprocessSpec(
        height=size,
        width=size,
        color_order=info.color_order,  # type: ignore[arg-type]
        crop=CropSpec(cfg.crop_method, int(cfg.crop_size)),  # type: ignore[arg-type]
        norm=info.norm,
        colour=measure_colour_spec(images)
        if cfg.colour == "reference" and images
        else ColourSpec(),
        nucleus=NucleusParams.colour_normalised() if cfg.colour == "reference" else NucleusParams(),
    )
    spec.check()
    return spec


def measure_colour_spec(images: ImageSet, sample: int = COLOUR_SAMPLE) -> ColourSpec:
    """The training data's glass and red-cell colours, the median over an even sample.

    Labels play no part; every image of the data set may be in the sample.
    """
    records = images.records
    step = max(1, len(records) // sample)
    decoded = []
    for rec in records[::step]:
        try:
            decoded.append(decode_image(images.root / rec.path))
        except ImageError:
            continue
    try:
        background, red_cell = reference_colours(decoded)
    except ValueError as exc:
        raise DataError(f"cannot measure colour references: {exc}", images.root) from None
    log.info("colour references: glass %s, red cells %s", background, red_cell)
    return ColourSpec("reference", tuple(background), tuple(red_cell), "run")  # type: ignore[arg-type]
