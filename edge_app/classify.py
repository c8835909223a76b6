"""Classify the white cells of images: one frame in, one result per white cell out.

`Classifier` joins the pieces the bundle describes (find cells, crop, normalise, runtime) and is
shared by `wbc-edge classify` (files) and `wbc-edge run` (cameras). Modes:

- `field`: a whole field of view; every white cell is found (`edge_app.field`) and classified.
- `cell`: the image is one cell crop like the Kaggle images; its nucleus is located as in
  training. An image without a stained nucleus has no white cell: it is reported, never guessed.

JSONL records (one per line, flushed per line):

    {"source": s, "frame": i, "box": [x0, y0, x1, y1] | null, "label": c, "confidence": p,
     "probs": {class: p, ...}, "uncertain": bool}      one per classified cell
    {"source": s, "frame": i, "cells": 0}             a frame with no white cell
    {"source": s, "error": "one line"}                an unreadable input ("frame" for videos)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge_app.bundle import Bundle
from edge_app.errors import WbcError
from edge_app.field import DEFAULT_FIELD_SCALE, cell_inputs, find_cells
from edge_app.nucleus import locate_cell
from edge_app.preprocess import preprocess
from edge_app.runtime import Runtime
from edge_app.sources.files import MediaFrame
from edge_app.summary import DifferentialCount, FolderTruth, StageTimes

MODES = ("field", "cell")
DEFAULT_THRESHOLD = 0.6  # a cell classified with less confidence is flagged "uncertain"
DEFAULT_SCALE = {"field": DEFAULT_FIELD_SCALE, "cell": 1.0}

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CellResult:
    """One classified white cell. `box` is None in cell mode (the image is the cell)."""

    box: Box | None
    label: str
    confidence: float
    probs: dict[str, float]
    uncertain: bool


@dataclass
class FrameResult:
    cells: list[CellResult]
    timings: dict[str, float] = field(default_factory=dict)


class Classifier:
    """Find and classify the white cells of RGB frames with one runtime (built once)."""

    def __init__(
        self,
        runtime: Runtime,
        mode: str = "field",
        scale: float | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        min_area: int | None = None,
    ) -> None:
        """`min_area` overrides the bundle's smallest nucleus (training-image px²)."""
        if mode not in MODES:
            raise WbcError(f"unknown mode {mode!r}; choose field or cell")
        if scale is not None and scale <= 0:
            raise WbcError(f"scale must be positive, got {scale}")
        if not 0.0 <= threshold <= 1.0:
            raise WbcError(f"threshold must lie in 0..1, got {threshold}")
        if min_area is not None and min_area < 1:
            raise WbcError(f"min-nucleus-area must be at least 1, got {min_area}")
        self.runtime = runtime
        self.bundle: Bundle = runtime.bundle
        self.spec = self.bundle.preprocessing
        if min_area is not None:
            nucleus = dataclasses.replace(self.spec.nucleus, min_area=int(min_area))
            self.spec = dataclasses.replace(self.spec, nucleus=nucleus)
        self.classes = list(self.bundle.classes)
        self.mode = mode
        self.scale = DEFAULT_SCALE[mode] if scale is None else float(scale)
        self.threshold = threshold

    def classify(self, rgb: np.ndarray) -> FrameResult:
        """All white cells of one RGB uint8 frame, with the time each stage took."""
        clock = time.perf_counter
        t0 = clock()
        boxes, batch_of = self._find(rgb)
        t1 = clock()
        batch = batch_of()
        t2 = clock()
        probs = self.runtime.predict(batch) if len(batch) else np.zeros((0, len(self.classes)))
        t3 = clock()
        cells = [self._result(box, p) for box, p in zip(boxes, probs, strict=True)]
        timings = {"find": t1 - t0, "preprocess": t2 - t1, "infer": t3 - t2}
        return FrameResult(cells, {**timings, "records": clock() - t3})

    def _find(self, rgb: np.ndarray):
        """Boxes of the cells, and a function making their model inputs (timed separately)."""
        spec, scale = self.spec, self.scale
        if self.mode == "field":
            cells = find_cells(rgb, spec, scale)
            return [c.box for c in cells], lambda: cell_inputs(rgb, cells, spec, scale)
        if spec.crop.method != "nucleus":
            return [None], lambda: preprocess(rgb, spec, scale)[None]
        nucleus = locate_cell(rgb, spec.nucleus, scale)
        if nucleus is None:
            return [], lambda: np.zeros((0, spec.height, spec.width, 3), np.float32)
        return [None], lambda: preprocess(rgb, spec, scale, nucleus)[None]

    def _result(self, box: Box | None, p: np.ndarray) -> CellResult:
        k = int(np.argmax(p))
        confidence = float(p[k])
        probs = {c: round(float(v), 6) for c, v in zip(self.classes, p, strict=True)}
        return CellResult(
            box, self.classes[k], round(confidence, 6), probs, confidence < self.threshold
        )


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


class JsonlWriter:
    """One JSON object per line, flushed per line; `-` is stdout. Does nothing for None."""

    def __init__(self, target: str | Path | None) -> None:
        self.target = target
        self._fh: IO[str] | None = None
        self._own = False
        if target is None:
            return
        if str(target) == "-":
            self._fh = sys.stdout
            return
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise WbcError(f"cannot write ({exc.strerror})", target) from None
        self._own = True

    @property
    def to_stdout(self) -> bool:
        """Records go to stdout (so the summary must go to stderr)."""
        return self.target is not None and str(self.target) == "-"

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, separators=(", ", ": ")) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None and self._own:
            self._fh.close()
        self._fh = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- classify files


def classify_media(
    frames: Iterable[MediaFrame],
    classifier: Classifier,
    writer: JsonlWriter,
    stop: threading.Event | None = None,
    times: StageTimes | None = None,
    truth: FolderTruth | None = None,
) -> DifferentialCount:
    """Classify every frame, write its records and return the differential count.

    Unreadable inputs become error records; `stop` (set by a signal) ends the run early with
    everything so far written and counted. `truth` tallies agreement with folder labels.
    """
    count = DifferentialCount(classifier.classes, classifier.threshold)
    it = iter(frames)
    while stop is None or not stop.is_set():
        t0 = time.perf_counter()
        item = next(it, None)
        captured = time.perf_counter() - t0
        if item is None:
            break
        if item.error is not None:
            count.add_error()
            writer.write(error_record(item.source, item.error, item.frame))
            continue
        result = classifier.classify(item.rgb)
        t1 = time.perf_counter()
        write_frame(writer, count, item.source, item.frame, result)
        if truth is not None:
            truth.add(item.source, (c.label for c in result.cells))
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
    """Records and counts for one classified frame."""
    count.add_frame((c.label, c.confidence) for c in result.cells)
    if not result.cells:
        writer.write(empty_record(source, frame, **extra))
    for cell in result.cells:
        writer.write(cell_record(source, frame, cell, **extra))
