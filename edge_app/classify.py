"""Classify the white cells of images: one frame in, one result per white cell out.

`Classifier` joins the pieces the bundle describes (find cells, crop, normalise, runtime) and is
shared by `wbc-edge classify` (files) and `wbc-edge run` (cameras). Modes:

- `field`: a whole field of view; every white cell is found (`edge_app.field`) and classified.
- `cell`: the image is one cell crop like the Kaggle images; its nucleus is located as in
  training. An image without a stained nucleus has no white cell: it is reported, never guessed.

JSONL records (one per line, each written whole):

    {"source": s, "frame": i, "box": [x0, y0, x1, y1] | null, "label": c, "confidence": p,
     "probs": {class: p, ...}, "uncertain": bool,
     "morphology": {...} | null}                      one per classified cell
    {"source": s, "frame": i, "cells": 0}             a frame with no white cell
    {"source": s, "error": "one line"}                an unreadable input ("frame" for videos)

A cell whose model output holds NaN or Infinity gets an error record naming its box, never a
label; the log itself is `edge_app.jsonl.JsonlWriter` (whole lines, valid JSON only).
`morphology` is what `edge_app.morphology` measured on the cell (null for a model that is not
given a nucleus crop): explanations for a technician, not an input of the model.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_app.bundle import Bundle
from edge_app.colour import correct_colour
from edge_app.errors import WbcError
from edge_app.field import DEFAULT_FIELD_SCALE, cell_inputs, find_cells
from edge_app.gallery import model_crop
from edge_app.jsonl import JsonlWriter
from edge_app.limits import check_scale
from edge_app.morphology import Morphology, measure_cell
from edge_app.nucleus import locate_cell
from edge_app.preprocess import preprocess
from edge_app.profile import LAMP_DRIFT, CameraProfile, ProfileError, check_frame_size
from edge_app.quality import FrameQuality, assess_frame
from edge_app.runtime import Runtime
from edge_app.scale import RunScale
from edge_app.sources.files import MediaFrame
from edge_app.summary import CellNote, DifferentialCount, FolderTruth, StageTimes

MODES = ("field", "cell")
DEFAULT_THRESHOLD = 0.6  # a cell classified with less confidence is flagged "uncertain"
DEFAULT_SCALE = {"field": DEFAULT_FIELD_SCALE, "cell": 1.0}

Box = tuple[int, int, int, int]
NOT_FINITE = "the model output is not a finite number (NaN or Infinity): no label given"


@dataclass(frozen=True)
class CellResult:
    """One classified white cell. `box` is None in cell mode (the image is the cell)."""

    box: Box | None
    label: str
    confidence: float
    probs: dict[str, float]
    uncertain: bool
    morphology: Morphology | None = None


@dataclass
class FrameResult:
    """The cells of one frame, the time each stage took, its quality and the scale used.

    `failed`: (box, why) of cells that gave no result (a non-finite model output).
    `crops` (uint8, model colour order) when the classifier keeps them (`keep_crops`, for
    reports), one per cell, with the nucleus centre (x, y) each was cut around (None: the
    whole image is the cell).
    """

    cells: list[CellResult]
    timings: dict[str, float] = field(default_factory=dict)
    quality: FrameQuality = field(default_factory=FrameQuality)
    scale: float = 1.0
    failed: list[tuple[Box | None, str]] = field(default_factory=list)
    crops: list[np.ndarray] | None = None
    centres: list[tuple[float, float] | None] | None = None

    @property
    def counted(self) -> bool:
        """False when a quality flag makes the frame unfit to count from."""
        return not self.quality.blocking


class Classifier:
    """Find and classify the white cells of RGB frames with one runtime (built once).

    Every frame is colour-normalised first (the bundle's colour step, a camera profile
    filling in a reference the frame lacks), its quality assessed, then its cells are found
    at the run's scale: `scale` if given, else the profile's, else measured from the red
    cells of the first frames and then kept (`edge_app.scale.RunScale`), in both modes.
    """

    def __init__(
        self,
        runtime: Runtime,
        mode: str = "field",
        scale: float | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        min_area: int | None = None,
        profile: CameraProfile | None = None,
        profile_path: str | None = None,
    ) -> None:
        """`min_area` overrides the bundle's smallest nucleus (training-image px²)."""
        if mode not in MODES:
            raise WbcError(f"unknown mode {mode!r}; choose field or cell")
        if scale is not None:
            check_scale(scale)
        if not 0.0 <= threshold <= 1.0:
            raise WbcError(f"threshold must lie in 0..1, got {threshold}")
        if min_area is not None and min_area < 1:
            raise WbcError(f"min-nucleus-area must be at least 1, got {min_area}")
        self.runtime = runtime
        self.bundle: Bundle = runtime.bundle
        self.spec = self.bundle.preprocessing
        if min_area is not None:
            nucleus = dataclasses.replace(
                self.spec.nucleus, min_area=int(min_area), field_min_area=int(min_area)
            )
            self.spec = dataclasses.replace(self.spec, nucleus=nucleus)
        self.classes = list(self.bundle.classes)
        self.mode = mode
        self.threshold = threshold
        self.profile = profile
        self.profile_path = profile_path
        origin = "given" if scale is not None else None
        if scale is None and profile is not None:
            scale, origin = profile.scale, "the camera profile's"
        self.run_scale = RunScale(None if scale is None else float(scale), origin)
        self.lamp_drift: float | None = None  # the last frame's glass vs the profile's
        self.keep_crops = False  # set to get FrameResult.crops (what the model saw)
        self._crop_spec = self.spec.after_colour()  # frames are colour-corrected once, first

    @property
    def scale(self) -> float:
        """The scale in use now (the field default until red cells have been seen)."""
        value = self.run_scale.value
        return DEFAULT_SCALE[self.mode] if value is None else value

    def classify(self, rgb: np.ndarray) -> FrameResult:
        """All white cells of one RGB uint8 frame, with the time each stage took."""
        if self.profile is not None:
            check_frame_size(self.profile, (rgb.shape[1], rgb.shape[0]), self.profile_path)
        clock = time.perf_counter
        t0 = clock()
        corrected, ill = self._corrected(rgb)
        t1 = clock()
        self.run_scale.observe(corrected)
        scale = self.scale
        t_scale = clock()
        baseline = self.profile.focus if self.profile is not None else None
        quality = assess_frame(rgb, corrected, ill, scale, baseline)
        if self.profile is not None:
            self.lamp_drift = self.profile.lamp_drift(ill)
        t2 = clock()
        boxes, nuclei, batch_of = self._find(corrected, scale)
        t3 = clock()
        batch = batch_of()
        t4 = clock()
        probs = self.runtime.predict(batch) if len(batch) else np.zeros((0, len(self.classes)))
        t5 = clock()
        timings = {
            "colour": t1 - t0,
            "scale": t_scale - t1,
            "quality": t2 - t_scale,
            "find": t3 - t2,
            "preprocess": t4 - t3,
            "infer": t5 - t4,
        }
        result = FrameResult([], timings, quality, scale)
        kept = []
        for i, (box, p) in enumerate(zip(boxes, probs, strict=True)):
            if np.isfinite(p).all():
                result.cells.append(self._result(box, p, self._measure(corrected, nuclei[i])))
                kept.append(i)
            else:
                result.failed.append((box, NOT_FINITE))
        t6 = clock()
        timings["measure"] = t6 - t5
        if self.keep_crops:
            self._keep(result, corrected, [nuclei[i] for i in kept])
        timings["records"] = clock() - t6
        return result

    def model_inputs(self, rgb: np.ndarray) -> np.ndarray:
        """The model inputs (N, H, W, 3) one frame gives, as `classify` makes them (no state)."""
        corrected, _ = self._corrected(rgb)
        *_, batch_of = self._find(corrected, self.scale)
        return batch_of()

    def drift_warnings(self) -> list[str]:
        """What has drifted away from the run's scale or the camera profile, one line each."""
        out = []
        if self.run_scale.drift is not None:
            out.append(
                f"recent frames measure scale {self.run_scale.drift:.3g}, the run uses "
                f"{self.scale:.3g}: did the magnification or camera change? (recalibrate)"
            )
        if self.lamp_drift is not None and self.lamp_drift > LAMP_DRIFT:
            out.append(
                f"the lamp differs from the camera profile by {100 * self.lamp_drift:.0f} % "
                "(white balance, brightness or another lamp): recalibrate"
            )
        return out

    def _corrected(self, rgb: np.ndarray):
        """The frame after the colour step (a profile fills a missing reference), and what
        the frame showed of its light."""
        fallback = self.profile.illumination if self.profile is not None else None
        return correct_colour(rgb, self.spec.colour, fallback=fallback)

    def _find(self, rgb: np.ndarray, scale: float):
        """Boxes and nuclei (None: the whole image) of the cells of a colour-corrected frame,
        and a function making their model inputs (timed separately)."""
        spec = self._crop_spec
        if self.mode == "field":
            cells = find_cells(rgb, spec, scale)
            return (
                [c.box for c in cells],
                [c.nucleus for c in cells],
                lambda: cell_inputs(rgb, cells, spec, scale),
            )
        if spec.crop.method != "nucleus":
            return [None], [None], lambda: preprocess(rgb, spec, scale)[None]
        nucleus = locate_cell(rgb, spec.nucleus, scale)
        if nucleus is None:
            return [], [], lambda: np.zeros((0, spec.height, spec.width, 3), np.float32)
        return [None], [nucleus], lambda: preprocess(rgb, spec, scale, nucleus)[None]

    def _measure(self, corrected: np.ndarray, nucleus) -> Morphology | None:
        """The cell's morphology at the run's scale (None without a nucleus)."""
        if nucleus is None:
            return None
        spec = self._crop_spec
        known = self.run_scale.value is not None
        return measure_cell(corrected, nucleus, spec.nucleus, self.scale, spec.crop.size, known)

    def _keep(self, result: FrameResult, corrected: np.ndarray, nuclei: list) -> None:
        """Attach the crop each model input was made from (not timed), for reports."""
        spec, field_mode = self._crop_spec, self.mode == "field"
        result.crops = [model_crop(corrected, spec, result.scale, n, field_mode) for n in nuclei]
        result.centres = [None if n is None else (n.cx, n.cy) for n in nuclei]

    def _result(self, box: Box | None, p: np.ndarray, morphology: Morphology | None) -> CellResult:
        k = int(np.argmax(p))
        confidence = float(p[k])
        probs = {c: round(float(v), 6) for c, v in zip(self.classes, p, strict=True)}
        uncertain = confidence < self.threshold
        return CellResult(box, self.classes[k], round(confidence, 6), probs, uncertain, morphology)


# ---------------------------------------------------------------------------- records


def cell_record(source: str, frame: int, cell: CellResult, **extra: Any) -> dict[str, Any]:
    return {
        "source": source,
        "frame": frame,
        "box": list(cell.box) if cell.box is not None else None,
        "label": cell.label,
        "confidence": cell.confidence,
        "probs": cell.probs,
        "uncertain": cell.uncertain,
        "morphology": cell.morphology.to_record() if cell.morphology is not None else None,
        **extra,
    }


def empty_record(source: str, frame: int, **extra: Any) -> dict[str, Any]:
    return {"source": source, "frame": frame, "cells": 0, **extra}


def error_record(source: str, error: str, frame: int | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"source": source}
    if frame:
        record["frame"] = frame
    record["error"] = error
    return record


# ---------------------------------------------------------------------------- classify files


def classify_media(
    frames: Iterable[MediaFrame],
    classifier: Classifier,
    writer: JsonlWriter,
    stop: threading.Event | None = None,
    times: StageTimes | None = None,
    truth: FolderTruth | None = None,
    on_frame: Callable[[MediaFrame, FrameResult], None] | None = None,
) -> DifferentialCount:
    """Classify every frame, write its records and return the differential count.

    Unreadable inputs become error records; `stop` (set by a signal) ends the run early with
    everything so far written and counted. `truth` tallies agreement with folder labels.
    `on_frame` sees each classified frame after it is counted (saved pictures, reports).
    """
    count = DifferentialCount(classifier.classes, classifier.threshold)
    it = iter(frames)
    while (stop is None or not stop.is_set()) and not writer.failed:
        t0 = time.perf_counter()
        item = next(it, None)
        captured = time.perf_counter() - t0
        if item is None:
            break
        if item.error is not None:
            count.add_error(_where(item.source, item.frame), item.error)
            writer.write(error_record(item.source, item.error, item.frame))
            continue
        try:
            result = classifier.classify(item.rgb)
        except ProfileError as exc:  # this frame does not fit the camera profile
            count.add_error(_where(item.source, item.frame), exc.message)
            writer.write(error_record(item.source, exc.message, item.frame))
            continue
        t1 = time.perf_counter()
        write_frame(writer, count, item.source, item.frame, result)
        if truth is not None:
            truth.add(item.source, (c.label for c in result.cells))
        if on_frame is not None:
            on_frame(item, result)
        if times is not None:
            t2 = time.perf_counter()
            times.add("capture", captured)
            for stage, seconds in result.timings.items():
                times.add(stage, seconds)
            times.add("records", t2 - t1)
            times.frame_done(total=t2 - t0)
    return count


def write_frame(
    writer: JsonlWriter,
    count: DifferentialCount,
    source: str,
    frame: int,
    result: FrameResult,
    **extra: Any,
) -> None:
    """Records and counts for one classified frame; a blocking quality flag keeps it uncounted."""
    write_failed(writer, count, source, frame, result)
    if result.failed and not result.cells:
        return  # no result at all for this frame: it is an error, not a frame without cells
    extra = {**frame_fields(result), **extra}
    if result.counted:
        count.add_frame((c.label, c.confidence) for c in result.cells)
        for cell in result.cells:
            if cell.uncertain:
                note = CellNote(source, frame, cell.box, cell.label, cell.confidence)
                count.note_uncertain(note)
    else:
        count.add_flagged_frame(len(result.cells))
    count.add_flags(result.quality.flags)
    if not result.cells:
        writer.write(empty_record(source, frame, **extra))
    for cell in result.cells:
        writer.write(cell_record(source, frame, cell, **extra))


def frame_fields(result: FrameResult) -> dict[str, Any]:
    """Record keys of the frame: `scale`, and `flags` and `counted: false` when set."""
    out: dict[str, Any] = {"scale": round(result.scale, 4)}
    if result.quality.flags:
        out["flags"] = list(result.quality.flags)
    if not result.counted:
        out["counted"] = False
    return out


def write_failed(
    writer: JsonlWriter, count: DifferentialCount, source: str, frame: int, result: FrameResult
) -> None:
    """An error record and an error count for each cell of the frame that gave no result."""
    for box, why in result.failed:
        error = f"{why} (cell at box {list(box)})" if box is not None else why
        count.add_error(_where(source, frame), error)
        writer.write(error_record(source, error, frame))


def _where(source: str, frame: int) -> str:
    return f"{source} frame {frame}" if frame else source
