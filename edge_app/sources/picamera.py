"""Raspberry Pi camera through picamera2: a low-resolution stream to classify, the main stream to
show and save.

Formats are set explicitly and converted to RGB here, because picamera2 names them after the
libcamera (DRM fourcc) convention, which is the reverse of numpy's byte order:

| picamera2 format | numpy array            | to RGB                       |
| ---------------- | ---------------------- | ---------------------------- |
| `RGB888`         | (H, W, 3) B, G, R      | reverse the channels         |
| `BGR888`         | (H, W, 3) R, G, B      | as is                        |
| `XRGB8888`       | (H, W, 4) B, G, R, X   | channels 2, 1, 0             |
| `XBGR8888`       | (H, W, 4) R, G, B, X   | channels 0, 1, 2             |
| `YUV420`         | (H * 3/2, stride) I420 | cv2 YUV2RGB_I420, crop width |

The lores stream is asked for as RGB888; a Pi 4 (VC4 ISP) only gives YUV420 there, so on
"lores stream must be YUV" the source falls back to YUV420 and converts it to colour (never to
the grey Y plane: the stain colour is what finds the nucleus). picamera2 is imported on open(),
so this module loads anywhere; tests inject a fake `Picamera2` class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from wbc_edge.core.errors import first_line
from wbc_edge.edge_app.sources.base import Camera, CameraError

log = logging.getLogger("wbc_edge.edge_app.sources")

LORES_SIZE = (640, 480)  # what the classifier sees (set --scale for it)
MAIN_SIZE = (1280, 960)  # same 4:3 field of view, for display and snapshots


def to_rgb(array: np.ndarray, fmt: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A picamera2 array of format `fmt` -> RGB uint8 (H, W, 3). `size` (w, h) for YUV420."""
    if fmt == "RGB888":
        return np.ascontiguousarray(array[:, :, ::-1])
    if fmt == "BGR888":
        return np.ascontiguousarray(array)
    if fmt == "XRGB8888":
        return np.ascontiguousarray(array[:, :, 2::-1])
    if fmt == "XBGR8888":
        return np.ascontiguousarray(array[:, :, :3])
    if fmt == "YUV420":
        import cv2

        rgb = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_YUV2RGB_I420)
        width = size[0] if size else rgb.shape[1]
        return np.ascontiguousarray(rgb[:, :width])
    raise CameraError(f"picamera2 format {fmt} is not supported here")


class PiCamera(Camera):
    """`picamera2`: the Raspberry Pi camera (CSI), lores stream classified, main stream shown."""

    name = "picamera2"

    def __init__(
        self,
        lores_size: tuple[int, int] = LORES_SIZE,
        main_size: tuple[int, int] = MAIN_SIZE,
        camera_num: int = 0,
        picamera2_class: Callable[..., Any] | None = None,
    ) -> None:
        if lores_size[0] > main_size[0] or lores_size[1] > main_size[1]:
            main_size = lores_size  # picamera2: lores may not exceed main
        self.lores_size, self.main_size, self.camera_num = lores_size, main_size, camera_num
        self._class = picamera2_class
        self._cam: Any = None
        self._formats = {"main": "RGB888", "lores": "RGB888"}
        self._main: np.ndarray | None = None

    def open(self) -> None:
        self.close()
        cls = self._class or _import_picamera2()
        try:
            cam = cls(self.camera_num)
        except Exception as exc:  # no camera attached, or in use by another process
            raise CameraError(
                f"cannot open the Pi camera {self.camera_num} ({first_line(exc)})"
            ) from None
        try:
            self._configure(cam)
            cam.start()
        except Exception:
            cam.close()
            raise
        self._cam = cam

    def _configure(self, cam: Any) -> None:
        def config(lores_format: str) -> Any:
            return cam.create_preview_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores_size, "format": lores_format},
                buffer_count=4,
            )

        try:
            cam.configure(config("RGB888"))
        except RuntimeError as exc:
            if "lores stream must be YUV" not in str(exc):
                why = first_line(exc)
                raise CameraError(f"picamera2 refused the configuration ({why})") from None
            log.info("picamera2: this Pi's lores stream is YUV420 only; converting it to RGB")
            cam.configure(config("YUV420"))
        actual = cam.camera_configuration()
        for stream in ("main", "lores"):
            self._formats[stream] = actual[stream]["format"]
        self.lores_size = tuple(actual["lores"]["size"])
        self.main_size = tuple(actual["main"]["size"])

    def read(self) -> np.ndarray | None:
        if self._cam is None:
            raise CameraError("the Pi camera is not open")
        request = self._cam.capture_request()
        try:
            lores = request.make_array("lores")
            main = request.make_array("main")
        finally:
            request.release()
        self._main = to_rgb(main, self._formats["main"], self.main_size)
        return to_rgb(lores, self._formats["lores"], self.lores_size)

    def display_frame(self) -> np.ndarray | None:
        return self._main

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        for method in ("stop", "close"):
            try:
                getattr(cam, method)()
            except Exception as exc:  # closing a camera that already failed
                log.debug("picamera2 %s: %s", method, first_line(exc))


def _import_picamera2() -> Callable[..., Any]:
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise CameraError(
            "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install "
            "python3-picamera2` and make the venv with --system-site-packages "
            "(docs/install-pi.md)"
        ) from None
    return Picamera2
