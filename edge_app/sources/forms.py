"""The camera names `--camera` accepts: one table of forms, as people write them.

Each row says what a user types, an example and which camera it opens. `open_source`, the
CLI's help and docs/edge.md all read this table, so a new form is one new row.

(`FORMS` below; `forms_table()` prints it as Markdown for docs/edge.md)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.sources.base import Camera
from wbc_edge.edge_app.sources.files import FileCamera
from wbc_edge.edge_app.sources.opencv import OpenCVCamera, jetson_csi_pipeline
from wbc_edge.edge_app.sources.picamera import PiCamera

Size = tuple[int, int] | None
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


@dataclass(frozen=True)
class CameraForm:
    """One way of naming a camera: `pattern` matches the whole `--camera` text."""

    form: str
    example: str
    opens: str
    pattern: re.Pattern[str]
    make: Callable[[re.Match[str], Size, bool], Camera]


def _index(m: re.Match[str], size: Size, loop: bool) -> Camera:
    return OpenCVCamera(index=int(m["n"]), size=size)


def _device(m: re.Match[str], size: Size, loop: bool) -> Camera:
    return OpenCVCamera(stream=m[0], size=size)


def _csi(m: re.Match[str], size: Size, loop: bool) -> Camera:
    n, kind = int(m["n"]), board()
    if kind == "pi":
        return PiCamera(lores_size=size, camera_num=n) if size else PiCamera(camera_num=n)
    if kind == "jetson":
        return OpenCVCamera(pipeline=jetson_csi_pipeline(n, size))
    raise WbcError(
        f"camera {m[0]!r}: a CSI camera needs a Raspberry Pi (picamera2) or a Jetson "
        "(nvarguscamerasrc), and this is neither; a USB camera is `0` or `/dev/video0`"
    )


def _stream(m: re.Match[str], size: Size, loop: bool) -> Camera:
    return OpenCVCamera(stream=m[0])


def _file(m: re.Match[str], size: Size, loop: bool) -> Camera:
    text = m["path"]
    if text.startswith("//"):  # file:///abs/path or file://localhost/abs/path
        parts = urlsplit("file:" + text)
        if parts.netloc not in ("", "localhost"):
            raise WbcError(f"camera {m[0]!r}: a file: URI names a file on this machine")
        text = unquote(parts.path)
    return FileCamera(text, loop=loop)


def _picamera(m: re.Match[str], size: Size, loop: bool) -> Camera:
    n = int(m["n"] or 0)
    return PiCamera(lores_size=size, camera_num=n) if size else PiCamera(camera_num=n)


def _gst(m: re.Match[str], size: Size, loop: bool) -> Camera:
    return OpenCVCamera(pipeline=m["pipeline"].strip())


FORMS: tuple[CameraForm, ...] = (
    CameraForm(
        "N", "0", "a USB/V4L2 camera by index (OpenCV)", re.compile(r"(?P<n>\d{1,3})"), _index
    ),
    CameraForm(
        "/dev/videoN",
        "/dev/video0",
        "a V4L2 device by path (OpenCV)",
        re.compile(r"/dev/(video\d{1,3}|v4l/by-(id|path)/[^\s]+)"),
        _device,
    ),
    CameraForm(
        "csi://N",
        "csi://0",
        "the board's CSI camera: picamera2 on a Raspberry Pi, nvarguscamerasrc on a Jetson",
        re.compile(r"csi://(?P<n>\d{1,2})"),
        _csi,
    ),
    CameraForm(
        "rtsp://...",
        "rtsp://192.168.1.20:554/stream",
        "a network stream, e.g. a Wi-Fi eyepiece camera (OpenCV's FFmpeg)",
        re.compile(r"rtsps?://\S+", re.IGNORECASE),
        _stream,
    ),
    CameraForm(
        "http(s)://...",
        "http://192.168.1.20/video.mjpg",
        "an HTTP(S) MJPEG or video stream (OpenCV's FFmpeg)",
        re.compile(r"https?://\S+", re.IGNORECASE),
        _stream,
    ),
    CameraForm(
        "file:PATH",
        "file:clip.mp4",
        "a replay of a video, image, folder or glob (file:///abs/path too)",
        re.compile(r"file:(?P<path>.+)", re.DOTALL),
        _file,
    ),
    CameraForm(
        "picamera2[:N]",
        "picamera2",
        "the Raspberry Pi camera through picamera2",
        re.compile(r"picamera2(:(?P<n>\d{1,2}))?"),
        _picamera,
    ),
    CameraForm(
        "opencv:N", "opencv:1", "the same as N", re.compile(r"opencv:(?P<n>\d{1,3})"), _index
    ),
    CameraForm(
        "gst:PIPELINE",
        "gst:'v4l2src ! videoconvert ! appsink'",
        "a GStreamer pipeline (an OpenCV built with GStreamer)",
        re.compile(r"gst:(?P<pipeline>.*\S.*)", re.DOTALL),
        _gst,
    ),
)

FORMS_HELP = ", ".join(f.form for f in FORMS)


def open_source(spec: str, size: Size = None, loop: bool = False) -> Camera:
    """The camera a `--camera` string names (not opened yet).

    `size` (width, height) is the frame to classify: picamera2's lores stream, a USB camera's
    resolution. `loop` makes a `file:` replay start over at its end.
    """
    text = spec.strip()
    for form in FORMS:
        m = form.pattern.fullmatch(text)
        if m is not None:
            return form.make(m, size, loop)
    raise WbcError(f"unknown camera {spec[:80]!r}; use {FORMS_HELP} (see docs/edge.md)")


def board(model_file: Path = DEVICE_TREE_MODEL) -> str | None:
    """`pi`, `jetson` or None: the board this runs on, from the device tree's model name."""
    try:
        model = model_file.read_bytes().decode("ascii", "replace").lower()
    except OSError:
        return None
    if "raspberry pi" in model:
        return "pi"
    if "jetson" in model or "nvidia" in model:
        return "jetson"
    return None


def forms_table() -> str:
    """The table of forms as Markdown (docs/edge.md quotes it; a test keeps them equal)."""
    rows = ["| form | example | opens |", "| --- | --- | --- |"]
    rows += [f"| `{f.form}` | `{f.example}` | {f.opens} |" for f in FORMS]
    return "\n".join(rows)
