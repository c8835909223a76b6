"""OpenCV cameras: USB microscope cameras by index or device path, network streams (RTSP, HTTP
MJPEG) and GStreamer pipelines (Jetson CSI camera).

OpenCV delivers BGR; frames leave this module as RGB. OpenCV is imported when the camera opens.

A Jetson CSI camera (IMX219/IMX477) through nvarguscamerasrc, scaled on the GPU to 640x480 BGR:

    wbc-edge run --model models/default --camera "gst:nvarguscamerasrc sensor-id=0 !
      video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1 ! nvvidconv !
      video/x-raw,width=640,height=480,format=BGRx ! videoconvert ! video/x-raw,format=BGR !
      appsink drop=true max-buffers=1"

(one line in practice). This needs an OpenCV built with GStreamer: JetPack's python3-opencv, used
from a venv created with --system-site-packages; the pip wheels of OpenCV have no GStreamer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from wbc_edge.edge_app.sources.base import Camera, CameraError
from wbc_edge.edge_app.sources.files import to_rgb_from_bgr


def jetson_csi_pipeline(sensor: int = 0, size: tuple[int, int] | None = None) -> str:
    """The GStreamer pipeline of a Jetson CSI camera, scaled on the GPU to `size` BGR."""
    w, h = size or (640, 480)
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! "
        "video/x-raw(memory:NVMM),width=1920,height=1080,framerate=30/1 ! "
        f"nvvidconv ! video/x-raw,width={w},height={h},format=BGRx ! "
        "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
    )


JETSON_CSI_PIPELINE = jetson_csi_pipeline()


class OpenCVCamera(Camera):
    """A V4L2/USB camera by `index`, a `stream` (a device path such as /dev/video0, or an
    rtsp:// or http(s):// URL) or a GStreamer `pipeline`: exactly one of the three.

    `size` (width, height) asks a USB camera for a resolution (a pipeline or a stream sets its
    own); `capture_factory` replaces cv2.VideoCapture in tests.
    """

    def __init__(
        self,
        index: int | None = None,
        pipeline: str | None = None,
        size: tuple[int, int] | None = None,
        capture_factory: Callable[..., Any] | None = None,
        stream: str | None = None,
    ) -> None:
        if sum(v is not None for v in (index, pipeline, stream)) != 1:
            raise ValueError("give one of a camera index, a stream or a GStreamer pipeline")
        self.index, self.pipeline, self.stream, self.size = index, pipeline, stream, size
        if pipeline is not None:
            self.name = "gst:<pipeline>"
        elif stream is not None:
            self.name = _without_password(stream)
        else:
            self.name = f"opencv:{index}"
        self._factory = capture_factory
        self._cap: Any = None

    def open(self) -> None:
        self.close()
        factory, backend = self._capture_factory()
        if self.pipeline is not None:
            cap = factory(self.pipeline, backend)
        else:
            cap = factory(self.index if self.stream is None else self.stream)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open camera {self.name}{self._hint()}")
        if self.size and self.pipeline is None:
            import cv2

            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise CameraError(f"camera {self.name} is not open")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"camera {self.name} delivered no frame")
        return to_rgb_from_bgr(frame)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _capture_factory(self) -> tuple[Callable[..., Any], Any]:
        if self._factory is not None:
            return self._factory, None
        import cv2

        return cv2.VideoCapture, cv2.CAP_GSTREAMER

    def _hint(self) -> str:
        if self.stream is not None and "://" in self.stream:
            return " (is the address right and the camera on this network? try it in VLC)"
        if self.pipeline is None:
            return " (is it plugged in? `ls /dev/video*` lists the indices)"
        return (
            " (does this OpenCV have GStreamer? On a Jetson use JetPack's python3-opencv from a "
            "venv made with --system-site-packages; see docs/install-jetson.md)"
        )


def _without_password(url: str) -> str:
    """The stream's name for logs: `rtsp://user:***@host/...` (a password is never logged)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.partition("@")
    if not sep or not at or "/" in creds:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
