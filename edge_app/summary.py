"""The differential count (cells per class) and per-stage timing of a classify or live run."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STAGES = ("capture", "find", "preprocess", "infer", "records")


@dataclass
class DifferentialCount:
    """White cells per class, uncertain cells, frames without a white cell and errors."""

    classes: list[str]
    threshold: float
    counts: dict[str, int] = field(default_factory=dict)
    uncertain: int = 0
    frames: int = 0
    empty_frames: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self.counts = {c: self.counts.get(c, 0) for c in self.classes}

    @property
    def cells(self) -> int:
        return sum(self.counts.values())

    def add_cell(self, label: str, confidence: float) -> None:
        self.counts[label] += 1
        if confidence < self.threshold:
            self.uncertain += 1

    def add_frame(self, cells: Iterable[tuple[str, float]]) -> None:
        """One frame and its cells as (label, confidence); a frame without cells is counted."""
        n = 0
        for label, confidence in cells:
            self.add_cell(label, confidence)
            n += 1
        self.count_frame(n > 0)

    def count_frame(self, has_cells: bool) -> None:
        """One more frame (its cells counted elsewhere, e.g. once per tracked cell)."""
        self.frames += 1
        if not has_cells:
            self.empty_frames += 1

    def add_error(self) -> None:
        self.errors += 1

    def percentages(self) -> dict[str, float]:
        total = self.cells
        return {c: (100.0 * n / total if total else 0.0) for c, n in self.counts.items()}

    def to_dict(self) -> dict:
        return {
            "cells": self.cells,
            "counts": dict(self.counts),
            "percent": {c: round(p, 2) for c, p in self.percentages().items()},
            "uncertain": self.uncertain,
            "threshold": self.threshold,
            "frames": self.frames,
            "frames_without_white_cell": self.empty_frames,
            "errors": self.errors,
        }

    def format(self, title: str = "differential count") -> str:
        """The table printed at the end of a run."""
        width = max(10, *(len(c) for c in self.classes))
        lines = [
            f"{title}: {self.cells} white cells in {self.frames} frames",
            f"  {'class':<{width}} {'cells':>6} {'%':>6}",
        ]
        for cls, pct in self.percentages().items():
            lines.append(f"  {cls:<{width}} {self.counts[cls]:>6} {pct:>6.1f}")
        lines.append(f"  {'total':<{width}} {self.cells:>6} {100.0 if self.cells else 0.0:>6.1f}")
        lines.append(
            f"  uncertain (confidence < {self.threshold:.2f}): {self.uncertain} of {self.cells} "
            "cells (counted above; check them by eye)"
        )
        lines.append(f"  frames with no white cell: {self.empty_frames}")
        lines.append(f"  errors (unreadable inputs): {self.errors}")
        return "\n".join(lines)


@dataclass
class FolderTruth:
    """Agreement with the labels that image folders name (cell mode on a class-folder tree such
    as Kaggle's TRAIN/EOSINOPHIL/...): a confusion matrix, rows = the folder's class. Images
    whose folder is not a class name (case-insensitive) are not counted."""

    classes: list[str]
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((len(self.classes), len(self.classes)), dtype=np.int64)
        self._index = {c.lower(): i for i, c in enumerate(self.classes)}

    @property
    def cells(self) -> int:
        return int(self.confusion.sum())

    def add(self, source: str, labels: Iterable[str]) -> None:
        truth = self._index.get(Path(source).parent.name.lower())
        if truth is None:
            return
        for label in labels:
            self.confusion[truth, self.classes.index(label)] += 1

    def format(self) -> str:
        n = self.cells
        correct = int(np.trace(self.confusion))
        lines = [f"labelled by their folder: {n} cells, accuracy {correct / n:.4f} ({correct}/{n})"]
        for i, cls in enumerate(self.classes):
            support = int(self.confusion[i].sum())
            if support:
                recall = self.confusion[i, i] / support
                lines.append(f"  {cls:<12} recall {recall:.4f} ({self.confusion[i, i]}/{support})")
        return "\n".join(lines)


class StageTimes:
    """Seconds per stage per frame; `format()` gives p50/p95 in ms and frames per second.

    Stages add up within a frame (`add` may be called twice for one stage); `frame_done(total)`
    closes the frame. With a total (everything the loop did for that frame), the part no stage
    accounts for is shown as `unaccounted`, so no cost hides between the stages. `latency` is
    capture-to-result (the frame grabbed -> its records written), kept apart from the stages.
    """

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.samples: dict[str, list[float]] = {s: [] for s in STAGES}
        self.totals: list[float] = []
        self.unaccounted: list[float] = []
        self.latencies: list[float] = []
        self.frames = 0
        self.dropped = 0  # frames a live camera delivered while the loop was busy (skipped)
        self._frame: dict[str, float] = {}
        self._start = clock()

    def add(self, stage: str, seconds: float) -> None:
        self._frame[stage] = self._frame.get(stage, 0.0) + seconds

    def frame_done(self, total: float | None = None, latency: float | None = None) -> None:
        for stage, seconds in self._frame.items():
            self.samples.setdefault(stage, []).append(seconds)
        if total is not None:
            self.totals.append(total)
            self.unaccounted.append(max(0.0, total - sum(self._frame.values())))
        if latency is not None:
            self.latencies.append(latency)
        self._frame = {}
        self.frames += 1

    def fps(self) -> float:
        elapsed = self.clock() - self._start
        return self.frames / elapsed if elapsed > 0 else 0.0

    def format(self) -> str:
        dropped = f", {self.dropped} stale camera frames skipped" if self.dropped else ""
        lines = [
            f"timing: {self.frames} frames, {self.fps():.1f} frames/s{dropped}",
            "  stage        p50 ms  p95 ms",
        ]
        rows = [*self.samples.items(), ("unaccounted", self.unaccounted), ("frame", self.totals)]
        rows.append(("latency", self.latencies))
        for stage, values in rows:
            if not values:
                continue
            p50, p95 = np.percentile(np.asarray(values) * 1000.0, [50, 95])
            lines.append(f"  {stage:<11} {p50:>7.1f} {p95:>7.1f}")
        return "\n".join(lines)
