"""Images and videos on disk: the inputs of `wbc-edge classify`, and `file:PATH` replays.

`iter_media(src)` expands an image file, a folder (recursively, sorted), a glob or a video
file into `MediaFrame`s, one per image or video frame; an unreadable file becomes a frame with
`error` set and the iteration goes on. `FileCamera` replays the same inputs as a camera.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_app.decode import IMAGE_SUFFIXES, decode_image
from edge_app.errors import ImageError, WbcError
from edge_app.sources.base import Camera, CameraError

log = logging.getLogger("edge_app.sources")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mjpeg", ".mjpg", ".h264")
MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES


@dataclass(frozen=True)
class MediaFrame:
    """One image, or one frame of a video. `source` is the path as given/found."""

    source: str
    frame: int
    rgb: np.ndarray | None = None
    error: str | None = None


def expand_source(src: str) -> list[Path]:
    """The files `src` names: one file, a folder's media files (recursive, sorted), or a glob."""
    path = Path(src)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and _is_media(p)]
        if not files:
            raise WbcError(f"no images or videos in this folder ({', '.join(MEDIA_SUFFIXES)})", src)
        return files
    if glob.has_magic(src):
        files = [Path(p) for p in sorted(glob.glob(src, recursive=True)) if Path(p).is_file()]
        if not files:
            raise WbcError("no files match this pattern", src)
        return files
    raise WbcError("no such file, folder or pattern", src)


def iter_media(src: str) -> Iterator[MediaFrame]:
    """Every image and video frame `src` names, in order; unreadable ones carry `error`.

    A `src` that names nothing raises WbcError here, before any frame is read.
    """
    return _iter_paths(expand_source(src))


def _iter_paths(paths: list[Path]) -> Iterator[MediaFrame]:
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            yield from iter_video(path)
            continue
        try:
            yield MediaFrame(str(path), 0, decode_image(path))
        except ImageError as exc:
            yield MediaFrame(str(path), 0, error=_strip_path(str(exc), path))


def iter_video(path: Path) -> Iterator[MediaFrame]:
    """The frames of a video file as RGB; a file OpenCV cannot open gives one error frame."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            yield MediaFrame(str(path), 0, error="not a readable video (OpenCV cannot open it)")
            return
        index = 0
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                if index == 0:
                    yield MediaFrame(str(path), 0, error="not a readable video (no frames)")
                return
            yield MediaFrame(str(path), index, to_rgb_from_bgr(bgr))
            index += 1
    finally:
        cap.release()


def to_rgb_from_bgr(frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR / BGRA / grey frame -> RGB uint8."""
    if frame.ndim == 2:
        return np.ascontiguousarray(np.repeat(frame[:, :, None], 3, axis=2))
    if frame.shape[2] == 4:
        frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1])


class FileCamera(Camera):
    """`file:PATH`: replay an image folder, glob, image or video as if it were a camera.

    Unreadable files are skipped with a warning. At the end the replay stops, or starts over
    with `loop=True`.
    """

    live = False

    def __init__(self, src: str, loop: bool = False) -> None:
        self.src = src
        self.name = f"file:{src}"
        self.loop = loop
        self._frames: Iterator[MediaFrame] | None = None

    def open(self) -> None:
        paths = expand_source(self.src)  # a missing path is a user error now
        # Consecutive video frames show the same cells; a folder of images shows distinct fields.
        self.continuous = all(p.suffix.lower() in VIDEO_SUFFIXES for p in paths)
        self._frames = _iter_paths(paths)

    def read(self) -> np.ndarray | None:
        if self._frames is None:
            raise CameraError(f"{self.name} is not open")
        for _ in range(2):  # a second pass only when looping
            for item in self._frames:
                if item.error is None:
                    return item.rgb
                log.warning("%s: %s (skipped)", item.source, item.error)
            if not self.loop:
                return None
            self._frames = iter_media(self.src)
        return None  # looping over inputs that are all unreadable

    def close(self) -> None:
        self._frames = None


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_SUFFIXES


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
