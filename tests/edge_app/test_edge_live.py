"""`wbc-edge run`: the live loop on fake cameras — tracking, a failing camera, SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from edge_records import read_jsonl, summary_counts
from edge_setup import ROOT
from synthetic import CLASSES, edge_field, write_rgb

import wbc_edge.edge_app.sources
from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.errors import WbcError
from wbc_edge.core.runtime import open_runtime
from wbc_edge.edge_app.classify import CellResult, Classifier, JsonlWriter
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.live import LiveOptions, LiveRun
from wbc_edge.edge_app.overlay import draw_cells
from wbc_edge.edge_app.sources import Camera, CameraError, FrameStream

pytestmark = pytest.mark.edge

CLASS_LIST = list(CLASSES)


class FieldCamera(Camera):
    """A microscope camera over a still slide: the same field again and again (plus noise).

    `fail_at` lists reads that raise (a USB hiccup); `frames=None` never runs out of frames.
    """

    name = "fake"

    def __init__(self, n_cells: int = 2, fail_at=(), frames: int | None = None) -> None:
        self.field = edge_field(11, n_cells)
        self.fail_at, self.frames = set(fail_at), frames
        self.live = frames is None  # a fixed number of frames: a replay that ends
        self.reads = self.opens = 0
        self.rng = np.random.default_rng(0)

    def open(self) -> None:
        self.opens += 1

    def read(self) -> np.ndarray | None:
        self.reads += 1
        if self.reads in self.fail_at:
            raise CameraError("USB disconnect")
        if self.frames is not None and self.reads > self.frames:
            return None
        noise = self.rng.integers(-2, 3, self.field.shape)
        return np.clip(self.field.astype(int) + noise, 0, 255).astype(np.uint8)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def classifier(edge_bundle):
    bundle = load_bundle(edge_bundle)
    return Classifier(open_runtime(bundle, precision="fp32", runtime="litert"), "field", 2.0)


def live_run(classifier, tmp_path: Path, camera: Camera, **options) -> tuple[LiveRun, list]:
    out = tmp_path / "live.jsonl"
    with JsonlWriter(out) as writer:
        live = LiveRun(classifier, writer, LiveOptions("fake", **options), camera)
        live.run(FrameStream(camera, backoff=(0.01, 0.02)), threading.Event())
    return live, read_jsonl(out, CLASS_LIST)


def test_a_cell_in_view_for_many_frames_is_counted_once(classifier, tmp_path) -> None:
    live, records = live_run(classifier, tmp_path, FieldCamera(2, frames=10), snapshots=None)
    cells = [r for r in records if r["_kind"] == "cell"]
    counted = [r for r in records if r["_kind"] == "counted"]
    assert len(cells) == 20 and {r["track"] for r in cells} == {1, 2}
    assert sorted(r["track"] for r in counted) == [1, 2]
    assert all(r["frames"] == 10 and r["first_frame"] == 0 for r in counted)
    assert live.count.cells == 2 and live.count.frames == 10 and live.count.empty_frames == 0
    assert live.tracking
    # each tracked cell is counted with its averaged label
    for rec in counted:
        assert rec["label"] == CLASS_LIST[int(np.argmax(list(rec["probs"].values())))]


def test_distinct_images_are_counted_per_frame(classifier, tmp_path) -> None:
    for i in range(3):
        write_rgb(tmp_path / "fields" / f"{i}.png", edge_field(11, 2))
    camera = wbc_edge.edge_app.sources.open_source(f"file:{tmp_path / 'fields'}")
    live, records = live_run(classifier, tmp_path, camera)
    assert not live.tracking  # a folder of images: no tracking across distinct fields
    assert live.count.cells == 6 and not [r for r in records if r["_kind"] == "counted"]


def test_snapshots_when_a_cell_appears(classifier, tmp_path) -> None:
    snaps = tmp_path / "snaps"
    live_run(classifier, tmp_path, FieldCamera(1, frames=5), snapshots=snaps)
    files = sorted(snaps.glob("*.jpg"))
    assert len(files) == 1  # one new cell, one snapshot; then it stays in view


def test_overlay_draws_boxes_and_labels() -> None:
    rgb = np.full((120, 160, 3), 255, np.uint8)
    probs = dict.fromkeys(CLASS_LIST, 0.25)
    cells = [
        CellResult((10, 20, 60, 80), "MONOCYTE", 0.9, probs, False),
        CellResult((80, 20, 150, 100), "LYMPHOCYTE", 0.3, probs, True),
    ]
    out = draw_cells(rgb, cells, (160, 120), [1, 2], ["status"])
    assert out.shape == rgb.shape and (rgb == 255).all()  # the input is not modified
    assert tuple(out[50, 10]) != (255, 255, 255) and tuple(out[50, 80]) != tuple(out[50, 10])
    big = draw_cells(np.full((240, 320, 3), 255, np.uint8), cells, (160, 120))
    assert tuple(big[100, 20]) != (255, 255, 255)  # boxes scaled to the display frame


def test_display_without_a_gui_is_a_clear_error(classifier, tmp_path) -> None:
    import cv2

    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        pytest.skip("this OpenCV has a GUI")
    except cv2.error:
        pass
    with pytest.raises(WbcError, match="--display needs an OpenCV with a GUI"):
        LiveRun(classifier, JsonlWriter(None), LiveOptions("fake", display=True))


def test_run_survives_a_failing_camera(edge_bundle, tmp_path, monkeypatch, caplog, capsys):
    camera = FieldCamera(1, fail_at={3, 4})
    monkeypatch.setattr(wbc_edge.edge_app.sources, "open_source", lambda *a, **k: camera)
    monkeypatch.setattr(FrameStream, "__init__", _fast_backoff(FrameStream.__init__))
    out = tmp_path / "run.jsonl"
    rc = main(
        [
            "run",
            "--model",
            str(edge_bundle),
            "--camera",
            "opencv:0",
            "--jsonl",
            str(out),
            "--max-frames",
            "6",
            "--stats",
        ]
    )
    assert rc == 0
    assert "camera fake failed (USB disconnect); reopening" in caplog.text
    assert "camera fake reopened" in caplog.text and camera.opens == 3
    records = read_jsonl(out, CLASS_LIST)
    assert sorted({r["frame"] for r in records if "frame" in r}) == list(range(6))
    text = capsys.readouterr().out
    assert "reopened 2 times" in text and summary_counts(text)["errors"] == 0
    assert "frames/s" in text and "infer" in text


def _fast_backoff(init):
    def fast(self, camera, stop=None, backoff=(0.5, 10.0), clock=time.time):
        init(self, camera, stop, (0.01, 0.02), clock)

    return fast


def test_sigterm_ends_the_loop_cleanly(edge_bundle, tmp_path, monkeypatch, capsys):
    camera = FieldCamera(2)  # endless
    monkeypatch.setattr(wbc_edge.edge_app.sources, "open_source", lambda *a, **k: camera)
    out = tmp_path / "run.jsonl"

    def kill_when_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and camera.reads < 5:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=kill_when_running, daemon=True).start()
    rc = main(["run", "--model", str(edge_bundle), "--camera", "picamera2", "--jsonl", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "stopped by a signal" in text
    records = read_jsonl(out, CLASS_LIST)  # every line complete
    counted = [r for r in records if r["_kind"] == "counted"]
    assert len(counted) == 2 and summary_counts(text)[counted[0]["label"]] >= 1
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_sigterm_to_a_running_process(edge_bundle, tmp_path):
    for i in range(2):
        write_rgb(tmp_path / "frames" / f"{i}.png", edge_field(20 + i, 1))
    out = tmp_path / "proc.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "wbc_edge.edge_app.cli",
        "run",
        "--model",
        str(edge_bundle),
        "--camera",
        f"file:{tmp_path / 'frames'}",
        "--loop",
        "--jsonl",
        str(out),
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(out.read_text().splitlines()) >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped by a signal" in stdout and "differential count" in stdout
    records = read_jsonl(out, CLASS_LIST)
    assert len(records) >= 5 and out.read_text().endswith("\n")
    assert summary_counts(stdout)["LYMPHOCYTE"] + summary_counts(stdout)[
        "EOSINOPHIL"
    ] + summary_counts(stdout)["MONOCYTE"] + summary_counts(stdout)["NEUTROPHIL"] == sum(
        r["_kind"] == "cell" for r in records
    )


def _frames(n: int, delay: float = 0.0):
    for i in range(n):
        time.sleep(delay)
        yield float(i), np.full((4, 4, 3), i, np.uint8)


def test_a_replay_is_never_dropped_and_stays_in_order() -> None:
    from wbc_edge.edge_app.capture import FrameGrabber

    grabber = FrameGrabber(_frames(30), drop=False)
    stop, got = threading.Event(), []
    time.sleep(0.05)  # the capture thread is ahead; it must wait, not overwrite
    while (item := grabber.get(stop)) is not None:
        got.append(item.timestamp)
        time.sleep(0.002)
    grabber.close()
    assert got == [float(i) for i in range(30)] and grabber.dropped == 0


def test_a_live_camera_hands_over_the_freshest_frame_and_counts_the_stale_ones() -> None:
    from wbc_edge.edge_app.capture import FrameGrabber

    grabber = FrameGrabber(_frames(40, delay=0.001), drop=True)
    stop, got = threading.Event(), []
    while (item := grabber.get(stop)) is not None:
        got.append(item.timestamp)
        assert time.perf_counter() >= item.at
        time.sleep(0.01)  # a loop slower than the camera
    grabber.close()
    assert got == sorted(got) and got[-1] == 39.0
    assert grabber.dropped > 0 and len(got) + grabber.dropped == 40


def test_a_camera_error_in_the_capture_thread_reaches_the_loop() -> None:
    from wbc_edge.edge_app.capture import FrameGrabber

    def failing():
        raise CameraError("cannot open camera fake")
        yield

    grabber = FrameGrabber(failing(), drop=True)
    with pytest.raises(CameraError, match="cannot open"):
        grabber.get(threading.Event())
    grabber.close()


def test_live_stats_report_latency_and_the_whole_frame(classifier, tmp_path) -> None:
    live, _ = live_run(classifier, tmp_path, FieldCamera(1, frames=4))
    text = live.times.format()
    for row in ("capture", "find", "records", "unaccounted", "frame", "latency"):
        assert re.search(rf"^\s+{row}\s+[\d.]+\s+[\d.]+$", text, re.M), row
    assert len(live.times.latencies) == 4 and live.times.dropped == 0
    assert all(0 < lat < 10 for lat in live.times.latencies)
