"""The differential count (cells per class) and per-stage timing of a classify or live run."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wbc_edge.core.label_shift import MIN_CELLS, Differential, corrected_differential
from wbc_edge.core.safe_io import printable

STAGES = (
    "capture",
    "colour",
    "scale",
    "quality",
    "find",
    "preprocess",
    "infer",
    "measure",
    "records",
)
TIMING_WINDOW = 10_000  # frames whose stage times are kept: a run of hours stays flat in memory
FAILED_SHOWN = 10  # failed inputs named in the summary (all of them are in the JSONL log)
LIST_UNCERTAIN = 20  # uncertain cells named in the printed summary


@dataclass(frozen=True)
class CellNote:
    """Where one cell was seen and what it was called, for lines a person reads."""

    source: str
    frame: int | str  # a frame index, or "first-last" for a tracked cell
    box: tuple[int, int, int, int] | None
    label: str
    confidence: float

    def format(self, with_source: bool = True) -> str:
        where = [printable(self.source)] if with_source else []
        if self.frame not in (0, "0"):
            where.append(f"frame {self.frame}")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            where.append(f"box {x0},{y0}-{x1},{y1}")
        return f"{' '.join(where)}: {self.label} {self.confidence:.2f}"


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
    flagged_frames: int = 0  # frames a blocking quality flag kept out of the count
    uncounted_cells: int = 0  # the white cells found in those frames
    flags: dict[str, int] = field(default_factory=dict)  # frames per quality flag
    notes: list[str] = field(default_factory=list)  # lines for the summary (scale, drift)
    failed: list[tuple[str, str]] = field(default_factory=list)  # first FAILED_SHOWN (source, why)
    uncertain_cells: list[CellNote] = field(default_factory=list)  # the first LIST_UNCERTAIN
    confusion: list[list[float]] | None = None  # the bundle's out-of-fold confusion (correction)
    min_cells: int = MIN_CELLS

    def __post_init__(self) -> None:
        self.counts = {c: self.counts.get(c, 0) for c in self.classes}

    def note_uncertain(self, note: CellNote) -> None:
        """Remember an uncertain cell (already counted) so the summary can name it."""
        if len(self.uncertain_cells) < LIST_UNCERTAIN:
            self.uncertain_cells.append(note)

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

    def add_flagged_frame(self, cells: int) -> None:
        """A frame unfit to count from, and the cells found in it (not counted)."""
        self.frames += 1
        self.flagged_frames += 1
        self.uncounted_cells += cells

    def add_flags(self, flags: Iterable[str]) -> None:
        for flag in flags:
            self.flags[flag] = self.flags.get(flag, 0) + 1

    def add_error(self, source: str | None = None, error: str | None = None) -> None:
        """One input (file, video frame, cell) that gave no result; the first few are named."""
        self.errors += 1
        if source is not None and len(self.failed) < FAILED_SHOWN:
            self.failed.append((source, error or "failed"))

    def percentages(self) -> dict[str, float]:
        total = self.cells
        return {c: (100.0 * n / total if total else 0.0) for c, n in self.counts.items()}

    def differential(self) -> Differential:
        """The raw and (with enough cells and a confusion matrix) corrected differential."""
        counts = [self.counts[c] for c in self.classes]
        return corrected_differential(
            self.classes, counts, self.confusion, min_cells=self.min_cells
        )

    def to_dict(self) -> dict:
        return {
            "cells": self.cells,
            "counts": dict(self.counts),
            "percent": {c: round(p, 2) for c, p in self.percentages().items()},
            "differential": self.differential().to_dict(),
            "uncertain": self.uncertain,
            "threshold": self.threshold,
            "frames": self.frames,
            "frames_without_white_cell": self.empty_frames,
            "errors": self.errors,
            "frames_flagged_uncounted": self.flagged_frames,
            "cells_uncounted": self.uncounted_cells,
            "quality_flags": dict(self.flags),
        }

    def format(self, title: str = "differential count") -> str:
        """The table printed at the end of a run."""
        width = max(10, *(len(c) for c in self.classes))
        lines = [
            f"{title}: {self.cells} white {_cells(self.cells)} in {self.frames} "
            f"{'frame' if self.frames == 1 else 'frames'}",
        ]
        diff = self.differential()
        if diff.corrected is not None and diff.low is not None and diff.high is not None:
            lines.append(
                f"  {'class':<{width}} {'cells':>6} {'raw %':>6}   differential % (95 % interval)"
            )
            for i, (cls, pct) in enumerate(self.percentages().items()):
                est, lo, hi = (100 * v[i] for v in (diff.corrected, diff.low, diff.high))
                lines.append(
                    f"  {cls:<{width}} {self.counts[cls]:>6} {pct:>6.1f}   "
                    f"{est:>5.1f} ({lo:.1f}-{hi:.1f})"
                )
        else:
            lines.append(f"  {'class':<{width}} {'cells':>6} {'raw %':>6}")
            for cls, pct in self.percentages().items():
                lines.append(f"  {cls:<{width}} {self.counts[cls]:>6} {pct:>6.1f}")
        lines.append(f"  {'total':<{width}} {self.cells:>6} {100.0 if self.cells else 0.0:>6.1f}")
        lines.append(f"  raw %: each cell's label counted; differential: {diff.note}")
        lines.append(
            f"  uncertain (confidence < {self.threshold:.2f}): {self.uncertain} of {self.cells} "
            f"{_cells(self.cells)} (counted above; check them by eye)"
        )
        lines += [f"    {note.format()}" for note in self.uncertain_cells]
        if self.uncertain > len(self.uncertain_cells) and self.uncertain_cells:
            rest = self.uncertain - len(self.uncertain_cells)
            lines.append(f"    ... and {rest} more (all in --jsonl or --report)")
        lines.append(f"  frames with no white cell: {self.empty_frames}")
        if self.flags:
            named = ", ".join(f"{k} {v}" for k, v in sorted(self.flags.items()))
            lines.append(f"  frames with quality flags: {named}")
        if self.flagged_frames:
            lines.append(
                f"  not counted: {self.uncounted_cells} cells in {self.flagged_frames} frames "
                "unfit to count from (see the flags in the JSONL)"
            )
        lines.append(f"  errors (unreadable inputs): {self.errors}")
        lines += [f"    {printable(source)}: {printable(why)}" for source, why in self.failed]
        if self.errors > len(self.failed) and self.failed:
            lines.append(f"    ... and {self.errors - len(self.failed)} more")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


def format_cells(source: str, notes: list[CellNote], threshold: float) -> str:
    """One line per cell of a single image, largest nucleus first."""
    source = printable(source)
    if not notes:
        return f"{source}: no white cell found"
    lines = [f"{source}: {len(notes)} white {_cells(len(notes))}"]
    for i, n in enumerate(notes, 1):
        flag = "  uncertain: check by eye" if n.confidence < threshold else ""
        lines.append(f"  {i}. {n.format(with_source=False).lstrip(': ')}{flag}")
    return "\n".join(lines)


def _cells(n: int) -> str:
    return "cell" if n == 1 else "cells"


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
    """Seconds per stage per frame (the last TIMING_WINDOW frames); `format()` gives p50/p95 in ms
    and frames per second.

    Stages add up within a frame (`add` may be called twice for one stage); `frame_done(total)`
    closes the frame. With a total (everything the loop did for that frame), the part no stage
    accounts for is shown as `unaccounted`, so no cost hides between the stages. `latency` is
    capture-to-result (the frame grabbed -> its records written), kept apart from the stages.
    """

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.samples: dict[str, deque[float]] = {s: _window() for s in STAGES}
        self.totals: deque[float] = _window()
        self.unaccounted: deque[float] = _window()
        self.latencies: deque[float] = _window()
        self.frames = 0
        self.dropped = 0  # frames a live camera delivered while the loop was busy (skipped)
        self._frame: dict[str, float] = {}
        self._start = clock()

    def add(self, stage: str, seconds: float) -> None:
        self._frame[stage] = self._frame.get(stage, 0.0) + seconds

    def frame_done(self, total: float | None = None, latency: float | None = None) -> None:
        for stage, seconds in self._frame.items():
            self.samples.setdefault(stage, _window()).append(seconds)
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


def _window() -> deque[float]:
    return deque(maxlen=TIMING_WINDOW)
