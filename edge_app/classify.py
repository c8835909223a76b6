"""Classify the white cells of images: one frame in, one result per white cell out.

`Classifier` joins the pieces the bundle describes (find cells, crop, normalise, runtime) and is
shared by `wbc-edge classify` (files) and `wbc-edge run` (cameras). Modes:

- `field`: a whole field of view; every white cell is found (`core.field`) and classified.
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
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wbc_edge.core.bundle import Bundle
from wbc_edge.core.errors import WbcError
from wbc_edge.core.limits import check_scale
from wbc_edge.core.nucleus import Nucleus
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.core.runtime import Runtime
from wbc_edge.edge_app.finder import MODES, CellFinder
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.light import CALIBRATION_FRAMES
from wbc_edge.edge_app.morphology import Morphology
from wbc_edge.edge_app.profile import CameraProfile, ProfileError
from wbc_edge.edge_app.quality import FrameQuality
from wbc_edge.edge_app.scale import RunScale
from wbc_edge.edge_app.sources.files import MediaFrame
from wbc_edge.edge_app.summary import CellNote, DifferentialCount, FolderTruth, StageTimes

DEFAULT_THRESHOLD = 0.6  # a cell classified with less confidence is flagged "uncertain"

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
    Everything before the model is `edge_app.finder.CellFinder`'s.
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
        spec = self.bundle.preprocessing
        if min_area is not None:
            nucleus = dataclasses.replace(
                spec.nucleus, min_area=int(min_area), field_min_area=int(min_area)
            )
            spec = dataclasses.replace(spec, nucleus=nucleus)
        self.finder = CellFinder(spec, mode, scale, profile, profile_path)
        self.classes = list(self.bundle.classes)
        self.mode = mode
        self.threshold = threshold
        self.keep_crops = False  # set to get FrameResult.crops (what the model saw)

    @property
    def scale(self) -> float:
        """The scale in use now (the field default until red cells have been seen)."""
        return self.finder.scale

    @property
    def run_scale(self) -> RunScale:
        return self.finder.run_scale

    @property
    def spec(self) -> PreprocessSpec:
        """The preprocessing in use (the bundle's, with `min_area` if overridden)."""
        return self.finder.spec

    def classify(self, rgb: np.ndarray) -> FrameResult:
        """All white cells of one RGB uint8 frame, with the time each stage took."""
        found = self.finder.find(rgb)
        clock = time.perf_counter
        t0 = clock()
        batch = found.inputs()
        t1 = clock()
        probs = self.runtime.predict(batch) if len(batch) else np.zeros((0, len(self.classes)))
        t2 = clock()
        timings = {**found.timings, "preprocess": t1 - t0, "infer": t2 - t1}
        result = FrameResult([], timings, found.quality, found.scale)
        kept = []
        known = self.run_scale.value is not None  # measured or given: µm² can be reported
        for i, (box, p) in enumerate(zip(found.boxes, probs, strict=True)):
            if np.isfinite(p).all():
                result.cells.append(self._result(box, p, found.measure(i, known)))
                kept.append(i)
            else:
                result.failed.append((box, NOT_FINITE))
        t3 = clock()
        timings["measure"] = t3 - t2
        if self.keep_crops:  # not timed: for reports
            result.crops = found.crops(kept)
            result.centres = [_centre(found.nuclei[i]) for i in kept]
        timings["records"] = clock() - t3
        return result

    def prime(self, frames: list[np.ndarray]) -> None:
        """Fix the run's light, then its scale, from its first frames (read ahead)."""
        self.finder.prime_light(frames)
        self.finder.prime_scale(frames)

    def model_inputs(self, rgb: np.ndarray) -> np.ndarray:
        """The model inputs (N, H, W, 3) one frame gives, as `classify` makes them (no state)."""
        return self.finder.find(rgb, observe=False).inputs()

    def drift_warnings(self) -> list[str]:
        """What has drifted away from the run's scale or the camera profile, one line each."""
        return self.finder.drift_warnings()

    def new_count(self) -> DifferentialCount:
        """An empty differential count for this classifier's run (the bundle's count model
        corrects it)."""
        cm = self.bundle.count_model
        if cm is None:
            return DifferentialCount(self.classes, self.threshold)
        return DifferentialCount(
            self.classes, self.threshold, confusion=cm.confusion, min_cells=cm.min_cells
        )

    def run_notes(self) -> list[str]:
        """The summary's lines on the run: its scale, its light, what drifted."""
        light = self.finder.describe_light()
        notes = [self.run_scale.describe(), *([light] if light else [])]
        return notes + self.drift_warnings()

    def _result(self, box: Box | None, p: np.ndarray, morphology: Morphology | None) -> CellResult:
        return cell_result(self.classes, p, self.threshold, box, morphology)


def cell_result(
    classes: Sequence[str],
    p: np.ndarray,
    threshold: float,
    box: Box | None,
    morphology: Morphology | None = None,
) -> CellResult:
    """The cell's label, confidence and probabilities from one probability vector (a frame's,
    or a tracked cell's average over its frames), with what was measured of it."""
    k = int(np.argmax(p))
    confidence = float(p[k])
    probs = {c: round(float(v), 6) for c, v in zip(classes, p, strict=True)}
    uncertain = confidence < threshold
    return CellResult(box, classes[k], round(confidence, 6), probs, uncertain, morphology)


def _centre(nucleus: Nucleus | None) -> tuple[float, float] | None:
    return None if nucleus is None else (nucleus.cx, nucleus.cy)


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
    count = classifier.new_count()
    it = read_ahead(iter(frames), classifier)
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


def read_ahead(frames: Iterator[MediaFrame], classifier: Classifier) -> Iterator[MediaFrame]:
    """The same frames, the run's light and then its scale measured on the first
    `CALIBRATION_FRAMES` of them before any is classified, so the first frames' light and
    scale never move (`live` does the same with a camera's first frames)."""
    first = list(itertools.islice(frames, CALIBRATION_FRAMES))
    classifier.prime([f.rgb for f in first if f.error is None and f.rgb is not None])
    return itertools.chain(first, frames)


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
