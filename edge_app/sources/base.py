"""What every camera source shares: open/read/close, and one resilient frame iterator.

A `Camera` hands out RGB uint8 frames. `FrameStream` turns it into the iterator the live loop
consumes, `(timestamp, rgb)`, and keeps it alive: a camera that fails mid-run is closed and
reopened with exponential back-off (logged), so the loop never dies of a loose USB cable. A
camera that cannot be opened at the start is a user error (WbcError) instead: the service
manager restarts the program if that is wanted.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from wbc_edge.core.errors import WbcError, first_line

log = logging.getLogger("wbc_edge.edge_app.sources")


class CameraError(WbcError):
    """A camera cannot be opened or stopped delivering frames."""


class Camera(ABC):
    """One image source. `read()` returns RGB uint8 (H, W, 3), or None when a replay ends."""

    name: str = "camera"
    live: bool = True  # a live camera is reopened after a failure; a replay simply ends
    continuous: bool = True  # consecutive frames show the same cells (so they are tracked)

    @abstractmethod
    def open(self) -> None:
        """Start delivering frames; raise CameraError (one line) if that is impossible."""

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame as RGB uint8; raise CameraError on failure; None at the end."""

    @abstractmethod
    def close(self) -> None:
        """Stop and release the device. Safe to call twice or before open()."""

    def display_frame(self) -> np.ndarray | None:
        """The high-resolution RGB frame of the last read (picamera2 main stream), if any."""
        return None

    def take_errors(self) -> list:
        """Inputs skipped since the last call (a replay's unreadable files); none for a camera."""
        return []

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameStream:
    """Iterate `(timestamp, rgb)` from a camera; reopen it with back-off when it fails."""

    def __init__(
        self,
        camera: Camera,
        stop: threading.Event | None = None,
        backoff: tuple[float, float] = (0.5, 10.0),
        clock=time.time,
    ) -> None:
        self.camera = camera
        self.stop = stop or threading.Event()
        self.backoff = backoff
        self.clock = clock
        self.failures = 0  # how many times the camera failed and was reopened
        self.replay_error: str | None = None  # a replay (file:) failed: it ends, not reopened
        self._delay = backoff[0]
        self._opened = False

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        try:
            self._open_first()
            while not self.stop.is_set():
                frame = self._next_frame()
                if frame is None:
                    if self._opened:  # a replay came to its end (or failed)
                        return
                    continue
                yield self.clock(), frame
        finally:
            self.camera.close()

    def _open_first(self) -> None:
        try:
            self.camera.open()
        except CameraError:
            raise
        except Exception as exc:  # a driver's own exception types
            why = first_line(exc)
            raise CameraError(f"cannot open camera {self.camera.name} ({why})") from None
        self._opened = True

    def _next_frame(self) -> np.ndarray | None:
        """A frame, or None after a failure (the camera is reopened) or at the end of a replay."""
        if not self._opened and not self._reopen():
            return None
        try:
            frame = self.camera.read()
        except Exception as exc:  # CameraError or whatever the driver raised
            if not self.camera.live:  # a replay is not a loose cable: reopening would repeat it
                self.replay_error = f"the replay failed ({first_line(exc)}); it ends here"
                log.error("%s: %s", self.camera.name, self.replay_error)
                return None
            self._fail(f"camera {self.camera.name} failed ({first_line(exc)})")
            return None
        if frame is None and self.camera.live:
            self._fail(f"camera {self.camera.name} returned no frame")
            return None
        self._delay = self.backoff[0]
        return frame

    def _fail(self, what: str) -> None:
        self.failures += 1
        log.warning("%s; reopening in %.1f s", what, self._delay)
        self.camera.close()
        self._opened = False
        self._wait()

    def _reopen(self) -> bool:
        try:
            self.camera.open()
        except Exception as exc:
            log.warning(
                "camera %s: reopen failed (%s); next try in %.1f s",
                self.camera.name,
                first_line(exc),
                self._delay,
            )
            self.camera.close()
            self._wait()
            return False
        log.warning("camera %s reopened after a failure", self.camera.name)
        self._opened = True
        return True

    def _wait(self) -> None:
        self.stop.wait(self._delay)
        self._delay = min(self._delay * 2, self.backoff[1])
