"""The live loop of `wbc-edge run`: capture -> find cells -> classify -> overlay/log, until stopped.

A camera sees the same white cell in many consecutive frames, so the live count follows each
cell from frame to frame (`edge_app.tracking.StageTracker`: boxes overlapping by IoU >= 0.3
after moving them with the stage, a cell may go unseen for a few frames) and counts it once,
with the class of its averaged probabilities, when it leaves the view or the field, or the
run ends. Distinct fields (a `file:` folder of images) are counted per
frame instead (`track=False`).

JSONL records of a live run carry "track" (the cell's id; null in a frame whose place on the
slide was unsure: a jump or blur, decided by the next frames), "field" (1, 2, ...: a new one
each time the stage moves to another field) and "time" (Unix seconds), and one more kind of
record is written when a tracked cell is counted:

    {"source": s, "track": id, "first_frame": i, "last_frame": j, "frames": n, "label": c,
     "confidence": p, "probs": {...}, "uncertain": bool, "counted": true}

Ctrl-C and SIGTERM set `stop`; the loop finishes the frame in hand, counts the cells still in
view, flushes the log and returns the count.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wbc_edge.core.errors import WbcError
from wbc_edge.core.safe_io import encode_image
from wbc_edge.edge_app.capture import FrameGrabber
from wbc_edge.edge_app.classify import (
    Classifier,
    JsonlWriter,
    cell_record,
    cell_result,
    empty_record,
    error_record,
    frame_fields,
    write_failed,
)
from wbc_edge.edge_app.light import CALIBRATION_FRAMES
from wbc_edge.edge_app.output_folder import OutputFolder
from wbc_edge.edge_app.progress import TargetProgress
from wbc_edge.edge_app.sources.base import Camera
from wbc_edge.edge_app.summary import CellNote, DifferentialCount, StageTimes
from wbc_edge.edge_app.tracking import StageTracker, Track

log = logging.getLogger("wbc_edge.edge_app.live")

WINDOW = "wbc-edge"


@dataclass
class LiveOptions:
    source_name: str
    display: bool = False
    snapshots: Path | None = None
    track: bool = True  # follow cells across frames (off anyway for a camera not `continuous`)
    max_frames: int | None = None
    status_every: float = 10.0  # seconds between running-count log lines
    target: int | None = None  # stop when this many white cells are counted (--target)


class LiveRun:
    """One live session: owns the count, the tracker and the outputs."""

    def __init__(
        self,
        classifier: Classifier,
        writer: JsonlWriter,
        options: LiveOptions,
        camera: Camera | None = None,
        inputs: Sequence[Path] = (),
    ) -> None:
        """`inputs`: a replay's files, which no snapshot may replace."""
        self.classifier = classifier
        self.writer = writer
        self.options = options
        self.camera = camera
        self.count = classifier.new_count()
        self.tracker = StageTracker(classifier.classes)
        self.times = StageTimes()
        self.frames = 0
        self.report_cells = None  # an edge_app.report.LiveReportCells for --report
        self.target = TargetProgress(options.target) if options.target else None
        self.page = None  # an edge_app.live_page.LiveState for --serve
        self.snapshots = None
        if options.snapshots is not None:
            self.snapshots = OutputFolder(options.snapshots, inputs)
        if options.display:
            _check_display()

    def run(
        self, stream: Iterable[tuple[float, np.ndarray]], stop: threading.Event
    ) -> DifferentialCount:
        """Consume frames until the stream ends, `stop` is set or max_frames is reached.

        Frames are read by a capture thread (`FrameGrabber`) while this one classifies, so the
        frame rate is set by the slower of the two; a live camera's stale frames are skipped.
        """
        drop = self.camera is not None and self.camera.live
        gc.collect()  # leftovers (a closed runtime's native objects) go here, not in that thread
        want_display = self.camera if (self.options.display or self.options.snapshots) else None
        grabber = FrameGrabber(stream, drop, want_display, self.camera)
        last_status = time.monotonic()
        try:
            ahead = self._prime(grabber, stop)  # classified even after a stop: in hand
            while (ahead or not stop.is_set()) and not self.writer.failed:
                t0 = time.perf_counter()
                grabbed = ahead.pop(0) if ahead else grabber.get(stop)
                if grabbed is None:
                    self._record_skipped(grabber.skipped_at_end)
                    break
                self._record_skipped(grabbed.skipped)
                self.times.add("capture", time.perf_counter() - t0)
                self.step(grabbed.timestamp, grabbed.rgb, grabbed.display)
                now = time.perf_counter()
                self.times.dropped = grabber.dropped
                self.times.frame_done(total=now - t0, latency=now - grabbed.at)
                if self.options.display and _show(self._last_view):
                    stop.set()
                if self._target_reached():
                    break
                if self.options.max_frames and self.frames >= self.options.max_frames:
                    break
                if time.monotonic() - last_status >= self.options.status_every:
                    log.info("%s", self.status_line())
                    for warning in self.classifier.drift_warnings():
                        log.warning("%s", warning)
                    last_status = time.monotonic()
        finally:
            grabber.close()
            self._count_tracks(self.tracker.finish(), time.time())
            if self.snapshots is not None:
                self.snapshots.save()
            if self.options.display:
                _close_display()
        return self.count

    def _target_reached(self) -> bool:
        """Progress towards --target (a terminal line, a bell); True once it is reached."""
        if self.target is None or not self.target.update(self.running_counts()):
            return False
        self.count.notes.append(
            f"target reached: {self.target.target} white cells at frame {self.frames}"
        )
        return True

    def _prime(self, grabber: FrameGrabber, stop: threading.Event) -> list:
        """The run's first frames, read before any is classified: the run's light and scale
        are fixed from them (as `classify` does with files), so its first cells are
        classified at the same scale and light as the rest."""
        limit = min(CALIBRATION_FRAMES, self.options.max_frames or CALIBRATION_FRAMES)
        first = []
        while len(first) < limit and not stop.is_set():
            grabbed = grabber.get(stop)
            if grabbed is None:
                break
            first.append(grabbed)
        self.classifier.prime([g.rgb for g in first])
        return first

    def step(self, timestamp: float, rgb: np.ndarray, display: np.ndarray | None = None) -> None:
        """Classify one frame, log it, update the count, the view and the snapshots."""
        frame = self.frames
        self.frames += 1
        result = self.classifier.classify(rgb)
        t0 = time.perf_counter()
        source, ts = self.options.source_name, round(timestamp, 3)
        cells = result.cells if result.counted else []
        write_failed(self.writer, self.count, source, frame, result)
        if self.tracking:
            ids, ended = self.tracker.update(frame, rgb, cells)
            self._count_tracks(ended, timestamp)
        else:
            ids = [(None, True) for _ in cells]
            for cell in cells:
                self.count.add_cell(cell.label, cell.confidence)
                if cell.uncertain:
                    self.count.note_uncertain(
                        CellNote(source, frame, cell.box, cell.label, cell.confidence)
                    )
        if self.report_cells is not None and result.counted:
            self.report_cells.frame(source, frame, rgb, result, [t for t, _ in ids])
        if result.counted:
            self.count.count_frame(bool(cells))
        else:
            self.count.add_flagged_frame(len(result.cells))
        self.count.add_flags(result.quality.flags)
        quality = frame_fields(result)
        if not result.cells:
            self.writer.write(empty_record(source, frame, **quality, time=ts))
        for cell, (track, _) in zip(cells, ids, strict=True):
            extra = {"track": track, "field": self.tracker.field} if self.tracking else {}
            self.writer.write(cell_record(source, frame, cell, **extra, **quality, time=ts))
        if not result.counted:
            for cell in result.cells:
                self.writer.write(cell_record(source, frame, cell, **quality, time=ts))
        for stage, seconds in result.timings.items():
            self.times.add(stage, seconds)
        self.times.add("records", time.perf_counter() - t0)
        flags = [*result.quality.flags, *([] if result.counted else ["not counted"])]
        if self.page is not None:
            self._publish(rgb, cells, ids, result.quality.flags)
        self._view(
            rgb, cells, [t for t, _ in ids], any(new for _, new in ids), frame, display, flags
        )

    @property
    def tracking(self) -> bool:
        """Whether cells are followed across frames: asked for, and the frames show one view."""
        return self.options.track and (self.camera is None or self.camera.continuous)

    def status_line(self) -> str:
        counts = self.running_counts()
        total = sum(counts.values())
        parts = ", ".join(
            f"{c} {n} ({100.0 * n / total:.0f}%)" if total else f"{c} 0" for c, n in counts.items()
        )
        return f"frame {self.frames}, {self.times.fps():.1f} frames/s: {total} white cells: {parts}"

    def overlay_line(self) -> str:
        """The short running count drawn on the frame: `5 cells  EOS 1  LYM 2 ...  9.8 fps`."""
        counts = self.running_counts()
        parts = "  ".join(f"{c[:3]} {n}" for c, n in counts.items())
        total = sum(counts.values())
        return f"{total} {'cell' if total == 1 else 'cells'}  {parts}  {self.times.fps():.1f} fps"

    def running_counts(self) -> dict[str, int]:
        """Counted cells plus the cells in view now."""
        counts = dict(self.count.counts)
        for track in self.tracker.active:
            counts[self.classifier.classes[int(np.argmax(track.mean_probs()))]] += 1
        return counts

    def _record_skipped(self, skipped) -> None:
        """Error records for the inputs a replay skipped (a bad file is not a lost camera)."""
        for item in skipped:
            self.count.add_error(item.source, item.error)
            self.writer.write(error_record(item.source, item.error, item.frame))

    def _count_tracks(self, tracks: list[Track], timestamp: float) -> None:
        classes, threshold = self.classifier.classes, self.classifier.threshold
        source = self.options.source_name
        for track in tracks:
            cell = cell_result(classes, track.mean_probs(), threshold, track.box)
            self.count.add_cell(cell.label, cell.confidence)
            frames = f"{track.first_frame}-{track.last_frame}"
            if cell.uncertain:
                note = CellNote(source, frames, track.box, cell.label, cell.confidence)
                self.count.note_uncertain(note)
            if self.report_cells is not None:
                self.report_cells.counted(source, track, self.classifier)
            self.writer.write(
                {
                    "source": source,
                    "track": track.id,
                    "first_frame": track.first_frame,
                    "last_frame": track.last_frame,
                    "frames": track.frames,
                    "label": cell.label,
                    "confidence": cell.confidence,
                    "probs": cell.probs,
                    "uncertain": cell.uncertain,
                    "counted": True,
                    "time": round(timestamp, 3),
                }
            )

    def _view(self, rgb, cells, tracks, new_cell: bool, frame: int, big=None, flags=()) -> None:
        self._last_view = None
        page = self.page is not None and self.page.wants_view()
        if not (self.options.display or page or (self.options.snapshots and new_cell)):
            return
        from wbc_edge.edge_app.overlay import draw_cells

        canvas = big if big is not None else rgb
        size = (rgb.shape[1], rgb.shape[0])
        status = [self.overlay_line()]
        if flags:
            status.append("quality: " + ", ".join(flags))
        view = draw_cells(canvas, cells, size, tracks, status)
        self._last_view = view
        if page:
            self.page.publish_view(view)
        if self.snapshots is not None and new_cell:
            name = time.strftime("%Y%m%d-%H%M%S") + f"-frame{frame:06d}.jpg"
            try:
                self.snapshots.write_beside(name, encode_image(view, ".jpg"))
            except WbcError as exc:  # a full disk loses a snapshot, not the live count
                log.warning("%s", exc)

    _last_view: np.ndarray | None = None
    _last_page_status = -1e9

    def _publish(self, rgb: np.ndarray, cells, ids, flags: list[str]) -> None:
        """The live page's new cells (each once) and, once a second, its status."""
        from wbc_edge.edge_app.live_page import advice

        for cell, (_, new) in zip(cells, ids, strict=True):
            if new and cell.box is not None:
                x0, y0, x1, y1 = cell.box
                self.page.add_cell(cell.label, cell.confidence, rgb[y0:y1, x0:x1])
        now = time.monotonic()
        if now - self._last_page_status < 1.0:
            return
        self._last_page_status = now
        counts = self.running_counts()
        total = sum(counts.values())
        diff = self.count.differential()
        rows = []
        for i, (name, n) in enumerate(counts.items()):
            interval = None
            if diff.low is not None and diff.high is not None and diff.corrected is not None:
                est, lo, hi = (100 * v[i] for v in (diff.corrected, diff.low, diff.high))
                interval = f"{est:.0f} % ({lo:.0f}-{hi:.0f})"
            rows.append(
                {
                    "name": name,
                    "count": n,
                    "percent": 100.0 * n / total if total else 0.0,
                    "interval": interval,
                }
            )
        self.page.publish_status(
            {
                "frames": self.frames,
                "fps": round(self.times.fps(), 2),
                "field": self.tracker.field if self.tracking else None,
                "cells": total,
                "target": self.target.target if self.target is not None else None,
                "classes": rows,
                "note": f"differential: {diff.note}",
                "advice": advice(flags),
            }
        )


def _check_display() -> None:
    import cv2

    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise WbcError(
            "--display needs an OpenCV with a GUI and a desktop session: this one has none "
            "(opencv-python-headless?). Install python3-opencv (apt) or opencv-python, or drop "
            "--display and use --snapshots"
        ) from None


def _show(view: np.ndarray | None) -> bool:
    """Show the annotated frame; True when the user pressed q or Esc."""
    import cv2

    if view is not None:
        cv2.imshow(WINDOW, np.ascontiguousarray(view[:, :, ::-1]))
    return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)


def _close_display() -> None:
    import cv2

    with contextlib.suppress(cv2.error):
        cv2.destroyWindow(WINDOW)
