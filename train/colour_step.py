"""Add the colour step to a bundle trained without it (`wbc-train colour-step`).

A model trained on crops as the training camera gave them (`--colour none`, or any bundle
made before the colour step existed) is given the colour step afterwards: the references are
the glass and red-cell colours of its own training data, so a new camera's frames are mapped
onto the colours the model learnt from, and field mode's detector parameters for normalised
frames are set. The bundle's provenance records that the step was added after training, and
every artifact's parity must be measured again (`wbc-convert`), since the preprocessing
changed.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from wbc_edge.core.bundle import load_bundle, save_bundle
from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.errors import WbcError
from wbc_edge.core.preprocess_spec import NucleusParams
from wbc_edge.train.model_spec import measure_colour_spec

log = logging.getLogger(__name__)

NOTE = (
    "colour step added after training (wbc-train colour-step): the model was trained on "
    "crops without it; the references are its training data's own glass and red cells"
)


def add_colour_step(bundle_dir: Path, data_root: Path) -> Path:
    """Measure the references on `data_root` and write them into the bundle's spec."""
    bundle = load_bundle(bundle_dir)
    if bundle.preprocessing.colour.method != "none":
        raise WbcError("the bundle already has a colour step", bundle.path)
    colour = measure_colour_spec(list_images(data_root))
    field = NucleusParams.colour_normalised()
    nucleus = dataclasses.replace(
        bundle.preprocessing.nucleus,
        field_stain_threshold=field.field_stain_threshold,
        field_min_area=field.field_min_area,
    )
    bundle.change_preprocessing(
        dataclasses.replace(bundle.preprocessing, colour=colour, nucleus=nucleus)
    )  # every artifact unchecked: its parity was measured with the old preprocessing
    training = bundle.provenance.setdefault("training", {})
    training.setdefault("notes", []).append(NOTE)
    bundle.provenance["colour_step"] = {"data": str(data_root), "added_after_training": True}
    save_bundle(bundle)
    log.info(
        "%s: colour step added (glass %s, red cells %s)",
        bundle.path,
        colour.background,
        colour.red_cell,
    )
    return bundle.path
