"""The float model a conversion starts from, and what every backend gets to convert it.

The bundle's Keras file is the reference: it is loaded once, checked against the bundle's
classes and input size, and exported once to a TensorFlow SavedModel (Keras 3:
`model.export(path, format="tf_saved_model")`) that the TFLite and OpenVINO backends read.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.bundle import Bundle
from wbc_edge.core.errors import BundleError, first_line
from wbc_edge.core.output_kind import OutputKind, apply_output_kind, infer_output_kind, probe_batch
from wbc_edge.core.quiet import native_stderr
from wbc_edge.core.temperature import calibrate

log = logging.getLogger(__name__)


@dataclass
class SourceModel:
    """The bundle's float Keras model, loaded lazily, plus a SavedModel export of it."""

    bundle: Bundle
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wbc-convert-")))

    @cached_property
    def keras_path(self) -> Path:
        art = self.bundle.find("keras")
        if art is None:
            raise BundleError("has no keras artifact to convert from", self.bundle.path)
        return self.bundle.artifact_path(art)

    @cached_property
    def keras_model(self) -> Any:
        with native_stderr():  # TensorFlow's start-up notices hidden unless --verbose
            import tensorflow  # noqa: F401
        import keras

        try:
            model = keras.saving.load_model(self.keras_path, compile=False)
        except (OSError, ValueError, TypeError) as exc:
            raise BundleError(
                f"cannot load the Keras model ({first_line(exc)})", self.keras_path
            ) from None
        self._check(model)
        return model

    @cached_property
    def saved_model(self) -> Path:
        """A SavedModel of the Keras model (exported once, in the work folder)."""
        path = self.workdir / "saved_model"
        self.keras_model.export(str(path), format="tf_saved_model", verbose=False)
        return path

    @property
    def input_shape(self) -> tuple[int, int, int]:
        spec = self.bundle.preprocessing
        return spec.height, spec.width, 3

    @cached_property
    def output_kind(self) -> OutputKind:
        """What the float model's rows are: as its artifact declares, else decided once from the
        probe batch the runtime uses; every artifact converted from it declares the same."""
        art = self.bundle.find("keras")
        if art is not None and art.output_kind is not None:
            return art.output_kind
        raw = np.asarray(self.keras_model(probe_batch(self.bundle.preprocessing), training=False))
        return infer_output_kind(raw)

    def predict(self, batch: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Float reference probabilities (N, n_classes), per the model's output kind, calibrated
        as every runtime calibrates them (`core.temperature`, the bundle's temperature)."""
        out = [
            np.asarray(self.keras_model(batch[i : i + batch_size], training=False))
            for i in range(0, len(batch), batch_size)
        ]
        if not out:
            return np.zeros((0, len(self.bundle.classes)), np.float32)
        probs = apply_output_kind(np.concatenate(out).astype(np.float32), self.output_kind)
        cm = self.bundle.count_model
        return calibrate(probs, None if cm is None else cm.temperature)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _check(self, model: Any) -> None:
        n_out = int(model.outputs[0].shape[-1])
        classes = self.bundle.classes
        if n_out != len(classes):
            raise BundleError(
                f"classes has {len(classes)} names but the model outputs {n_out}",
                self.bundle.path,
            )
        shape = tuple(int(d) for d in model.inputs[0].shape[1:] if d is not None)
        if len(shape) == 3 and shape != self.input_shape:
            raise BundleError(
                f"the model's input is {shape} but the bundle's preprocessing makes "
                f"{self.input_shape}",
                self.bundle.path,
            )


@dataclass
class Calibration:
    """Preprocessed representative images (float32 NHWC) and which files they came from."""

    images: np.ndarray
    files: list[str]
    labels: list[str]
    source: str  # where they came from, in words
    skipped: dict[str, str] = field(default_factory=dict)
    root: Path | None = None  # the folder `files` are relative to


@dataclass
class HeldOut:
    """The labelled parity set: preprocessed float32 NHWC images, labels as class indices."""

    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    root: Path
    source: str
    skipped: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # source cell of each image
    selection: Any = None  # convert.held_out.Selection: how the set was chosen

    def subset(self, index: np.ndarray) -> HeldOut:
        """The images at `index` (same root, source and selection)."""
        pick = [int(i) for i in index]
        return HeldOut(
            self.images[index],
            self.labels[index],
            [self.files[i] for i in pick],
            self.root,
            self.source,
            self.skipped,
            [self.groups[i] for i in pick] if self.groups else [],
            self.selection,
        )


@dataclass
class ConvertContext:
    """Everything a backend's `convert(job, ctx)` needs."""

    source: SourceModel
    calibration: Calibration
    out_dir: Path
    validation: HeldOut | None = None  # for NNCF's accuracy control
    max_drop: float | None = None  # given explicitly → accuracy-controlled INT8
