"""Camera sources behind one iterator of (timestamp, RGB uint8 frame).

    camera = open_source("opencv:0")           # or picamera2, gst:PIPELINE, file:PATH
    for timestamp, rgb in FrameStream(camera):  # reopens a failed camera with back-off
        ...

picamera2 and OpenCV are imported only when a camera opens, so tests run without them.
"""

from __future__ import annotations

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.sources.base import Camera, CameraError, FrameStream
from wbc_edge.edge_app.sources.files import FileCamera, MediaFrame, iter_media
from wbc_edge.edge_app.sources.opencv import JETSON_CSI_PIPELINE, OpenCVCamera
from wbc_edge.edge_app.sources.picamera import PiCamera

__all__ = [
    "JETSON_CSI_PIPELINE",
    "Camera",
    "CameraError",
    "FileCamera",
    "FrameStream",
    "MediaFrame",
    "OpenCVCamera",
    "PiCamera",
    "iter_media",
    "open_source",
]

SOURCE_FORMS = "picamera2, opencv:N, gst:'PIPELINE' or file:PATH"


def open_source(spec: str, size: tuple[int, int] | None = None, loop: bool = False) -> Camera:
    """The camera a `--camera` string names (not opened yet).

    `size` (width, height) is the frame to classify: picamera2's lores stream, a USB camera's
    resolution. `loop` makes a `file:` replay start over at its end.
    """
    kind, _, arg = spec.partition(":")
    if kind == "picamera2":
        num = _int(arg, spec) if arg else 0
        return PiCamera(lores_size=size, camera_num=num) if size else PiCamera(camera_num=num)
    if kind == "opencv":
        return OpenCVCamera(index=_int(arg, spec), size=size)
    if kind == "gst" and arg.strip():
        return OpenCVCamera(pipeline=arg.strip())
    if kind == "file" and arg:
        return FileCamera(arg, loop=loop)
    raise WbcError(f"unknown camera {spec!r}; use {SOURCE_FORMS}")


def _int(text: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise WbcError(f"camera {spec!r}: {text!r} is not a camera number") from None
    if value < 0:
        raise WbcError(f"camera {spec!r}: the camera number cannot be negative")
    return value
