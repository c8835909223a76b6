"""Camera sources behind one iterator of (timestamp, RGB uint8 frame).

    camera = open_source("0")                   # /dev/video0, csi://0, rtsp://..., file:PATH
    for timestamp, rgb in FrameStream(camera):  # reopens a failed camera with back-off
        ...

The names `--camera` accepts are one table, `sources.forms.FORMS`. picamera2 and OpenCV are
imported only when a camera opens, so tests run without them.
"""

from __future__ import annotations

from wbc_edge.edge_app.sources.base import Camera, CameraError, FrameStream
from wbc_edge.edge_app.sources.files import FileCamera, MediaFrame, iter_media
from wbc_edge.edge_app.sources.forms import FORMS, FORMS_HELP, open_source
from wbc_edge.edge_app.sources.opencv import JETSON_CSI_PIPELINE, OpenCVCamera
from wbc_edge.edge_app.sources.picamera import PiCamera

__all__ = [
    "FORMS",
    "FORMS_HELP",
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
