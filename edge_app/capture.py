"""The live loop's capture thread: frames read while the previous one is classified.

`FrameGrabber(stream, drop)` pulls `(timestamp, rgb)` from a frame stream (`FrameStream`) in a
thread into a one-frame buffer. A live camera (`drop=True`) overwrites a frame the loop has not
taken yet, so the loop always works on the freshest frame; a replay (`drop=False`) waits, so
every frame is classified, in order, and runs stay deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from wbc_edge.edge_app.sources.base import Camera


@dataclass(frozen=True)
class Grabbed:
    """One frame from the capture thread: camera timestamp, RGB, when it was read (perf_counter)
    and the camera's display frame of the same read (picamera2 main stream), if asked for."""

    timestamp: float
    rgb: np.ndarray
    at: float
    display: np.ndarray | None = None
    skipped: tuple = ()  # inputs a replay skipped before this frame (`Camera.take_errors`)


class FrameGrabber:
    """A capture thread over a frame stream with a one-frame buffer.

    With `drop` (a live camera) a new frame replaces one the loop has not taken yet: the loop
    always gets the freshest frame instead of lagging behind. Without it (a replay) the thread
    waits for the loop, so every frame is classified, in order. An exception in the stream
    (a camera that cannot be opened) is raised again by `get`.
    """

    def __init__(
        self,
        stream: Iterable[tuple[float, np.ndarray]],
        drop: bool,
        camera: Camera | None = None,
        errors_from: Camera | None = None,
    ) -> None:
        """`camera`: read its display frame with each frame; `errors_from`: hand on the inputs
        it skipped with the frame that followed them (and at the end, `skipped_at_end`)."""
        self.drop = drop
        self.dropped = 0
        self.skipped_at_end: list = []
        self._stream, self._camera, self._errors_from = stream, camera, errors_from
        self._cond = threading.Condition()
        self._item: Grabbed | None = None
        self._done = self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wbc-capture", daemon=True)
        self._thread.start()

    def get(self, stop: threading.Event) -> Grabbed | None:
        """The next frame; None when the stream ended or `stop` was set."""
        with self._cond:
            while self._item is None and not self._done and not stop.is_set():
                self._cond.wait(0.05)
            item, self._item = self._item, None
            self._cond.notify_all()
            if item is None and self._error is not None:
                raise self._error
            return item

    def close(self, timeout: float = 5.0) -> None:
        """Stop reading and wait for the thread (it closes the stream and so the camera)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        it = iter(self._stream)
        try:
            for timestamp, rgb in it:
                display = self._camera.display_frame() if self._camera is not None else None
                item = Grabbed(timestamp, rgb, time.perf_counter(), display, self._skipped())
                if not self._put(item):
                    break
            self.skipped_at_end = list(self._skipped())
        except BaseException as exc:  # handed to the loop by get()
            self._error = exc
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _skipped(self) -> tuple:
        return tuple(self._errors_from.take_errors()) if self._errors_from is not None else ()

    def _put(self, item: Grabbed) -> bool:
        with self._cond:
            while not self.drop and self._item is not None and not self._closing:
                self._cond.wait()
            if self._closing:
                return False
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return True
