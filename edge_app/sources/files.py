"""Images and videos on disk: the inputs of `wbc-edge classify`, and `file:PATH` replays.

`iter_media(src)` expands an image file, a folder (recursively, sorted), a glob or a video
file into `MediaFrame`s, one per image or video frame; an unreadable, oversized or grey file,
a truncated video, a symlinked or unreadable folder becomes a frame with `error` set and the
iteration goes on. `FileCamera` replays the same inputs as a camera and reports the errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wbc_edge.core.decode import check_pixels, decode_stain_image, is_grey
from wbc_edge.core.errors import ImageError, WbcError, first_line
from wbc_edge.core.safe_io import opencv_path
from wbc_edge.edge_app.sources.base import Camera, CameraError
from wbc_edge.edge_app.sources.expand import MEDIA_SUFFIXES, VIDEO_SUFFIXES, Input, expand_inputs

log = logging.getLogger("wbc_edge.edge_app.sources")

__all__ = ["MEDIA_SUFFIXES", "VIDEO_SUFFIXES", "FileCamera", "MediaFrame", "iter_media"]
# A video may end this many frames (or 1%) short of the count its header announces.
VIDEO_SHORTFALL = 1
GREY_VIDEO = "cannot analyse: not a colour stain image (grey-scale video frame)"


@dataclass(frozen=True)
class MediaFrame:
    """One image, or one frame of a video. `source` is the path as given/found."""

    source: str
    frame: int
    rgb: np.ndarray | None = None
    error: str | None = None


def expand_source(src: str) -> list[Path]:
    """The readable files `src` names (see `expand_inputs` for the problems found on the way)."""
    return [i.path for i in expand_inputs(src) if i.error is None]


def iter_media(src: str) -> Iterator[MediaFrame]:
    """Every image and video frame `src` names, in order; unreadable ones carry `error`.

    A `src` that names nothing raises WbcError here, before any frame is read.
    """
    return iter_inputs(expand_inputs(src))


def iter_inputs(inputs: Iterable[Input]) -> Iterator[MediaFrame]:
    """The frames of expanded inputs; never raises for what a file holds."""
    for item in inputs:
        path = item.path
        if item.error is not None:
            yield MediaFrame(str(path), 0, error=item.error)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from iter_video(path)
        else:
            try:
                yield MediaFrame(str(path), 0, decode_stain_image(path))
            except ImageError as exc:
                yield MediaFrame(str(path), 0, error=exc.message)


def spread_sample(inputs: Sequence[Input], n: int) -> list[np.ndarray]:
    """Up to `n` decodable images spread evenly over a list of image files (none for a list
    holding a video or no more than `n` files: its first frames are the run's first frames).

    A folder is often sorted by what it holds (one class's cells, then the next): its first
    frames would be a biased sample of the run's light and scale, an even spread is not."""
    files = [i.path for i in inputs if i.error is None]
    if len(files) <= n or any(p.suffix.lower() in VIDEO_SUFFIXES for p in files):
        return []
    picks = [files[round(k * (len(files) - 1) / (n - 1))] for k in range(n)]
    frames = [f.rgb for f in iter_inputs(Input(p) for p in picks)]
    return [rgb for rgb in frames if rgb is not None]


def iter_video(path: Path) -> Iterator[MediaFrame]:
    """The frames of a video file as RGB; what cannot be read becomes an error frame.

    A video that ends before the frame count its header announces (cut short by a full disk
    or a pulled USB stick) ends with an error frame naming the frame it stopped at.
    """
    try:
        with opencv_path(path) as name:  # a name that is not UTF-8 would crash OpenCV
            yield from _read_video(path, name)
    except (WbcError, OSError) as exc:
        why = exc.message if isinstance(exc, WbcError) else (exc.strerror or str(exc))
        yield MediaFrame(str(path), 0, error=f"not a readable video ({why})")


def _read_video(path: Path, name: str) -> Iterator[MediaFrame]:
    import cv2

    cap = cv2.VideoCapture(name)
    index = 0
    try:
        if not cap.isOpened():
            yield MediaFrame(str(path), 0, error="not a readable video (OpenCV cannot open it)")
            return
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        check_pixels(*size, str(path))
        expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            rgb = to_rgb_from_bgr(bgr)
            if is_grey(rgb):
                yield MediaFrame(str(path), index, error=GREY_VIDEO)
            else:
                yield MediaFrame(str(path), index, rgb)
            index += 1
    except ImageError as exc:
        yield MediaFrame(str(path), index, error=exc.message)
        return
    except Exception as exc:  # cv2.error and whatever a broken stream makes the decoder raise
        yield MediaFrame(str(path), index, error=f"not a readable video ({first_line(exc)})")
        return
    finally:
        cap.release()
    if index == 0:
        yield MediaFrame(str(path), 0, error="not a readable video (no frames)")
    elif expected > 0 and expected - index > max(VIDEO_SHORTFALL, expected // 100):
        yield MediaFrame(
            str(path),
            index,
            error=f"the video ends at frame {index} of the {expected} its header announces "
            "(truncated?)",
        )


def to_rgb_from_bgr(frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR / BGRA / grey frame -> RGB uint8."""
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[:, :, None], 3, axis=2))
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1])


class FileCamera(Camera):
    """`file:PATH`: replay an image folder, glob, image or video as if it were a camera.

    A file that cannot be used is skipped and reported through `take_errors()` (the live run
    writes it as an error record): a bad file is never taken for a failed camera. At the end
    the replay stops, or starts over with `loop=True`.
    """

    live = False

    def __init__(self, src: str, loop: bool = False) -> None:
        self.src = src
        self.name = f"file:{src}"
        self.loop = loop
        self._frames: Iterator[MediaFrame] | None = None
        self._errors: list[MediaFrame] = []

    def open(self) -> None:
        inputs = expand_inputs(self.src)  # a missing path is a user error now
        paths = [i.path for i in inputs if i.error is None]
        # Consecutive video frames show the same cells; a folder of images shows distinct fields.
        self.continuous = bool(paths) and all(p.suffix.lower() in VIDEO_SUFFIXES for p in paths)
        self._frames = iter_inputs(inputs)

    def read(self) -> np.ndarray | None:
        if self._frames is None:
            raise CameraError(f"{self.name} is not open")
        for _ in range(2):  # a second pass only when looping
            for item in self._frames:
                if item.error is None:
                    return item.rgb
                log.warning("%s: %s (skipped)", item.source, item.error)
                self._errors.append(item)
            if not self.loop:
                return None
            self._frames = iter_media(self.src)
        return None  # looping over inputs that are all unreadable

    def take_errors(self) -> list[MediaFrame]:
        """The inputs skipped since the last call (source, frame, error)."""
        errors, self._errors = self._errors, []
        return errors

    def close(self) -> None:
        self._frames = None
