"""Every camera form of `sources.forms.FORMS` opens the camera it names (fakes stand in for
devices, picamera2 and network streams), and the table is the one docs/edge.md shows."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
from repo_paths import REPO

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.sources import FileCamera, OpenCVCamera, PiCamera, open_source
from wbc_edge.edge_app.sources import forms as forms_module
from wbc_edge.edge_app.sources.forms import FORMS, board, forms_table

pytestmark = pytest.mark.edge

ROOT = REPO
FRAMES = ROOT / "samples" / "frames"
BGR = np.zeros((48, 64, 3), np.uint8) + np.array([10, 20, 30], np.uint8)


class FakeCapture:
    """cv2.VideoCapture stand-in that remembers what it was asked to open."""

    opened: ClassVar[list[tuple]] = []

    def __init__(self, *args) -> None:
        FakeCapture.opened.append(args)

    def isOpened(self) -> bool:
        return True

    def set(self, prop, value) -> bool:
        return True

    def read(self):
        return True, BGR.copy()

    def release(self) -> None:
        pass


class FakePicamera2:
    """The parts of picamera2.Picamera2 that PiCamera uses."""

    nums: ClassVar[list[int]] = []

    def __init__(self, camera_num: int = 0) -> None:
        FakePicamera2.nums.append(camera_num)
        self.config: dict = {}

    def create_preview_configuration(self, main=None, lores=None, buffer_count=None, **kw):
        return {"main": dict(main), "lores": dict(lores)}

    def configure(self, config: dict) -> None:
        self.config = config

    def camera_configuration(self) -> dict:
        return self.config

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def fakes(monkeypatch):
    FakeCapture.opened = []
    FakePicamera2.nums = []
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return monkeypatch


def opened(spec: str, **kw):
    cam = open_source(spec, **kw)
    cam.open()
    return cam


@pytest.mark.parametrize(
    ("spec", "arg"),
    [
        ("0", 0),
        ("2", 2),
        ("opencv:1", 1),
        ("/dev/video0", "/dev/video0"),
        (
            "/dev/v4l/by-id/usb-Microscope-video-index0",
            "/dev/v4l/by-id/usb-Microscope-video-index0",
        ),
        ("rtsp://192.168.1.20:554/stream1", "rtsp://192.168.1.20:554/stream1"),
        ("http://192.168.1.20/video.mjpg", "http://192.168.1.20/video.mjpg"),
        ("https://cam.lab/stream?x=1", "https://cam.lab/stream?x=1"),
    ],
)
def test_opencv_forms_open_the_device_or_stream_they_name(fakes, spec: str, arg) -> None:
    cam = opened(spec, size=(320, 240))
    assert isinstance(cam, OpenCVCamera) and FakeCapture.opened[-1] == (arg,)
    np.testing.assert_array_equal(cam.read(), BGR[:, :, ::-1])  # RGB out


def test_csi_is_picamera2_on_a_pi_and_the_argus_pipeline_on_a_jetson(fakes) -> None:
    fakes.setattr(forms_module, "board", lambda: "pi")
    cam = opened("csi://1", size=(320, 240))
    assert isinstance(cam, PiCamera) and FakePicamera2.nums == [1]
    fakes.setattr(forms_module, "board", lambda: "jetson")
    cam = opened("csi://1", size=(320, 240))
    pipeline, backend = FakeCapture.opened[-1]
    assert isinstance(cam, OpenCVCamera) and backend == cv2.CAP_GSTREAMER
    assert "nvarguscamerasrc sensor-id=1 " in pipeline and "width=320,height=240" in pipeline
    fakes.setattr(forms_module, "board", lambda: None)
    with pytest.raises(WbcError, match=r"Raspberry Pi .* or a Jetson"):
        open_source("csi://0")


def test_picamera2_and_gst_forms(fakes) -> None:
    assert isinstance(opened("picamera2"), PiCamera) and FakePicamera2.nums == [0]
    opened("picamera2:1")
    assert FakePicamera2.nums == [0, 1]
    opened("gst:videotestsrc ! appsink")
    assert FakeCapture.opened[-1] == ("videotestsrc ! appsink", cv2.CAP_GSTREAMER)


def test_file_forms_replay_the_sample_frames() -> None:
    for spec in (f"file:{FRAMES}", FRAMES.as_uri()):
        cam = opened(spec)
        assert isinstance(cam, FileCamera) and cam.read().shape[2] == 3
        cam.close()
    with pytest.raises(WbcError, match="on this machine"):
        open_source("file://server/share/clip.mp4")


@pytest.mark.parametrize(
    "bad", ["usb", "opencv:x", "opencv:-1", "gst:", "gst:  ", "file:", "-1", "csi://", "ftp://x"]
)
def test_a_name_no_form_matches_is_one_line_listing_the_forms(bad: str) -> None:
    with pytest.raises(WbcError) as info:
        open_source(bad)
    assert "\n" not in info.value.message and "/dev/videoN, csi://N, rtsp://" in info.value.message


def test_a_stream_password_never_reaches_the_log() -> None:
    cam = open_source("rtsp://admin:secret@10.0.0.5/live")
    assert "secret" not in cam.name and cam.name == "rtsp://admin:***@10.0.0.5/live"


def test_board_from_the_device_tree_model(tmp_path: Path) -> None:
    model = tmp_path / "model"
    for text, want in (
        ("Raspberry Pi 5 Model B Rev 1.0\0", "pi"),
        ("NVIDIA Jetson Orin Nano Developer Kit\0", "jetson"),
        ("QEMU Virtual Machine\0", None),
    ):
        model.write_text(text)
        assert board(model) == want
    assert board(tmp_path / "missing") is None


def test_every_example_is_matched_by_its_own_row() -> None:
    for form in FORMS:
        example = form.example.replace("'", "")  # gst:'...' is quoted for the shell
        assert form.pattern.fullmatch(example), form.form


def test_docs_show_the_table_of_forms() -> None:
    assert forms_table() in (ROOT / "docs" / "edge.md").read_text(encoding="utf-8")
