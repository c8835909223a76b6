"""Camera sources: channel order per format, reopening with back-off, files and videos.

No camera and no picamera2 here: fakes are injected where the real classes would be.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.sources import (
    Camera,
    CameraError,
    FileCamera,
    FrameStream,
    OpenCVCamera,
    PiCamera,
    iter_media,
    open_source,
)
from wbc_edge.edge_app.sources.picamera import to_rgb

pytestmark = pytest.mark.edge

# A 2x3 image with pure colours, so any channel swap shows.
RGB = np.array(
    [[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[10, 20, 30], [200, 100, 50], [7, 8, 9]]], np.uint8
)


def big_rgb(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colour image (chroma-subsampling friendly) for the YUV420 round trip."""
    yy, xx = np.mgrid[:h, :w]
    return np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 180)], -1).astype(np.uint8)


# ---------------------------------------------------------------------------- picamera2


@pytest.mark.parametrize(
    "fmt, array",
    [
        ("RGB888", RGB[:, :, ::-1]),  # picamera2 "RGB888" arrives as B, G, R
        ("BGR888", RGB),  # "BGR888" arrives as R, G, B
        ("XRGB8888", np.concatenate([RGB[:, :, ::-1], np.full((2, 3, 1), 255, np.uint8)], 2)),
        ("XBGR8888", np.concatenate([RGB, np.full((2, 3, 1), 255, np.uint8)], 2)),
    ],
)
def test_picamera2_formats_become_rgb(fmt: str, array: np.ndarray) -> None:
    out = to_rgb(array, fmt)
    np.testing.assert_array_equal(out, RGB)
    assert out.flags.c_contiguous and out.dtype == np.uint8


def i420_with_stride(rgb: np.ndarray, stride: int) -> np.ndarray:
    """I420 laid out as picamera2 hands it over: (h * 3/2, stride), rows padded to `stride`."""
    h, w = rgb.shape[:2]
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    y, uv = yuv[:h], yuv[h:].reshape(2, h // 2, w // 2)
    pad = stride - w
    planes = [np.pad(y, ((0, 0), (0, pad)), mode="edge")]
    planes += [np.pad(c, ((0, 0), (0, pad // 2)), mode="edge").reshape(h // 4, stride) for c in uv]
    return np.vstack(planes)


@pytest.mark.parametrize("stride", [64, 96])
def test_yuv420_becomes_colour_not_grey(stride: int) -> None:
    rgb = big_rgb()
    out = to_rgb(i420_with_stride(rgb, stride), "YUV420", (64, 48))
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb).mean() < 4


class FakeRequest:
    def __init__(self, cam: FakePicamera2) -> None:
        self.cam = cam

    def make_array(self, name: str) -> np.ndarray:
        stream = self.cam.config[name]
        w, h = stream["size"]
        rgb = cv2.resize(self.cam.scene, (w, h), interpolation=cv2.INTER_AREA)
        fmt = stream["format"]
        if fmt == "RGB888":
            return np.ascontiguousarray(rgb[:, :, ::-1])
        if fmt == "XRGB8888":
            return np.concatenate([rgb[:, :, ::-1], np.full((h, w, 1), 255, np.uint8)], 2)
        if fmt == "YUV420":
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        raise AssertionError(fmt)

    def release(self) -> None:
        self.cam.released += 1


class FakePicamera2:
    """What PiCamera uses of picamera2.Picamera2; `vc4` mimics a Pi 4 (lores must be YUV)."""

    vc4 = False
    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.scene = big_rgb(96, 128)
        self.config: dict | None = None
        self.started = self.closed = False
        self.released = 0
        FakePicamera2.instances.append(self)

    def create_preview_configuration(self, main=None, lores=None, buffer_count=None, **kw):
        return {"main": dict(main), "lores": dict(lores), "buffer_count": buffer_count}

    def configure(self, config: dict) -> None:
        if self.vc4 and config["lores"]["format"] != "YUV420":
            raise RuntimeError("lores stream must be YUV")
        self.config = config

    def camera_configuration(self) -> dict:
        return self.config

    def start(self) -> None:
        self.started = True

    def capture_request(self) -> FakeRequest:
        return FakeRequest(self)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("vc4", [False, True], ids=["pi5-rgb-lores", "pi4-yuv-lores"])
def test_picamera_lores_to_classify_main_to_show(vc4: bool, monkeypatch) -> None:
    monkeypatch.setattr(FakePicamera2, "vc4", vc4)
    cam = PiCamera(lores_size=(64, 48), main_size=(128, 96), picamera2_class=FakePicamera2)
    cam.open()
    fake = FakePicamera2.instances[-1]
    assert fake.started and fake.config["main"]["format"] == "RGB888"
    assert fake.config["lores"]["format"] == ("YUV420" if vc4 else "RGB888")
    lores = cam.read()
    assert lores.shape == (48, 64, 3) and lores.dtype == np.uint8
    want = cv2.resize(fake.scene, (64, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(lores.astype(int) - want).mean() < (4 if vc4 else 0.5)
    np.testing.assert_array_equal(cam.display_frame(), fake.scene)  # main: full size, RGB
    assert fake.released == 1  # the request went back to the camera
    cam.close()
    assert fake.closed


def test_picamera_without_picamera2_says_how_to_install(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="apt install python3-picamera2"):
        PiCamera().open()


# ---------------------------------------------------------------------------- OpenCV


class FakeCapture:
    """cv2.VideoCapture stand-in: BGR frames, or nothing while `opened` is False."""

    opened = True
    reads = 0

    def __init__(self, *args) -> None:
        self.args = args

    def isOpened(self) -> bool:
        return type(self).opened

    def set(self, prop, value) -> bool:
        return True

    def read(self):
        type(self).reads += 1
        return True, np.ascontiguousarray(RGB[:, :, ::-1])

    def release(self) -> None:
        pass


def test_opencv_camera_gives_rgb_and_names_the_fix(monkeypatch) -> None:
    monkeypatch.setattr(FakeCapture, "reads", 0)
    cam = OpenCVCamera(index=0, size=(640, 480), capture_factory=FakeCapture)
    cam.open()
    np.testing.assert_array_equal(cam.read(), RGB)
    monkeypatch.setattr(FakeCapture, "opened", False)
    with pytest.raises(CameraError, match=r"cannot open camera opencv:0 .*/dev/video"):
        cam.open()
    gst = OpenCVCamera(pipeline="videotestsrc ! appsink", capture_factory=FakeCapture)
    with pytest.raises(CameraError, match="GStreamer"):
        gst.open()


class FlakyCamera(Camera):
    """A camera that fails on some reads and cannot be reopened at once."""

    name = "flaky"

    def __init__(self, fail_reads=(3,), fail_opens=(2,)) -> None:
        self.fail_reads, self.fail_opens = set(fail_reads), set(fail_opens)
        self.reads = self.opens = self.closes = 0

    def open(self) -> None:
        self.opens += 1
        if self.opens in self.fail_opens:
            raise CameraError("device busy")

    def read(self) -> np.ndarray:
        self.reads += 1
        if self.reads in self.fail_reads:
            raise CameraError("USB disconnect")
        return np.full((4, 4, 3), self.reads, np.uint8)

    def close(self) -> None:
        self.closes += 1


def test_frame_stream_reopens_a_failed_camera_with_backoff(caplog) -> None:
    cam = FlakyCamera()
    waits: list[float] = []
    stop = threading.Event()
    stop.wait = lambda t: waits.append(t)  # no real sleeping
    stream = FrameStream(cam, stop, backoff=(0.5, 10.0))
    frames = []
    with caplog.at_level(logging.WARNING, logger="wbc_edge.edge_app.sources"):
        for ts, rgb in stream:
            frames.append(int(rgb[0, 0, 0]))
            assert isinstance(ts, float)
            if len(frames) == 5:
                break
    assert frames == [1, 2, 4, 5, 6]  # read 3 failed, the stream went on
    assert cam.opens == 3  # first open, one failed reopen, one good reopen
    assert waits == [0.5, 1.0]  # back-off doubles while the camera stays away
    assert stream.failures == 1
    text = caplog.text
    assert "camera flaky failed (USB disconnect); reopening in 0.5 s" in text
    assert "reopen failed (device busy)" in text and "camera flaky reopened" in text
    assert cam.closes >= 2  # closed after the failure and at the end


def test_frame_stream_first_open_failure_is_a_user_error() -> None:
    cam = FlakyCamera(fail_opens=(1,))
    with pytest.raises(CameraError, match="device busy"):
        next(iter(FrameStream(cam)))


def test_frame_stream_stops_on_the_event() -> None:
    stop = threading.Event()
    stream = FrameStream(FlakyCamera(fail_reads=()), stop)
    seen = 0
    for _ in stream:
        seen += 1
        if seen == 3:
            stop.set()
    assert seen == 3


# ---------------------------------------------------------------------------- files


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    (root / "b").mkdir(parents=True)
    for name in ("b/2.png", "a.jpg", "b/1.png"):
        cv2.imwrite(str(root / name), np.full((8, 8, 3), (90, 100, 160), np.uint8))  # colour
    (root / "b" / "bad.jpg").write_bytes(b"\x00garbage")
    (root / "notes.txt").write_text("not media")
    writer = cv2.VideoWriter(str(root / "c.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 24))
    for i in range(4):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, :, 2] = 200  # red in BGR
        frame[0, 0] = i
        writer.write(frame)
    writer.release()
    return root


def test_iter_media_folder_recursive_sorted_with_errors_and_video(media: Path) -> None:
    items = list(iter_media(str(media)))
    names = [(Path(i.source).relative_to(media).as_posix(), i.frame) for i in items]
    assert names == [
        ("a.jpg", 0),
        ("b/1.png", 0),
        ("b/2.png", 0),
        ("b/bad.jpg", 0),
        *[("c.avi", k) for k in range(4)],
    ]
    bad = items[3]
    assert bad.rgb is None and "not a readable image" in bad.error and "\n" not in bad.error
    video = items[4].rgb
    assert video.shape == (24, 32, 3) and video[5, 5, 0] > 150 and video[5, 5, 2] < 60  # RGB


def test_iter_media_glob_and_missing(media: Path) -> None:
    items = list(iter_media(str(media / "**" / "*.png")))
    assert [Path(i.source).name for i in items] == ["1.png", "2.png"]
    with pytest.raises(WbcError, match="no such file"):
        iter_media(str(media / "nope"))
    with pytest.raises(WbcError, match="no files match"):
        iter_media(str(media / "*.bmp"))


def test_file_camera_replays_skips_bad_files_and_loops(media: Path) -> None:
    cam = FileCamera(str(media / "b"))
    with cam:
        frames = [cam.read() for _ in range(3)]
        assert cam.continuous is False  # distinct images: not tracked
    assert frames[0] is not None and frames[1] is not None and frames[2] is None
    looping = FileCamera(str(media / "b"), loop=True)
    looping.open()
    assert all(looping.read() is not None for _ in range(5))
    video = FileCamera(str(media / "c.avi"))
    video.open()
    assert video.continuous is True


def test_open_source_forms() -> None:
    assert isinstance(open_source("picamera2"), PiCamera)
    cam = open_source("opencv:2", size=(320, 240))
    assert isinstance(cam, OpenCVCamera) and cam.index == 2 and cam.size == (320, 240)
    gst = open_source("gst:nvarguscamerasrc ! appsink")
    assert gst.pipeline == "nvarguscamerasrc ! appsink"
    assert isinstance(open_source("file:/tmp/x", loop=True), FileCamera)
    for bad in ("usb", "opencv:x", "opencv:-1", "gst:", "file:"):  # more: test_camera_forms
        with pytest.raises(WbcError):
            open_source(bad)
