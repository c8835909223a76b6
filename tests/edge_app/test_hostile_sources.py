"""Sources on hostile inputs: folders and globs, symlink loops, truncated videos, `file:` replays.

Every input is generated here; the `wbc-edge classify` cases run the shipped default bundle
through LiteRT (no TensorFlow), so they are quick.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from repo_paths import REPO
from synthetic import png_header

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app import exit_codes
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.sources import FileCamera, FrameStream, iter_media
from wbc_edge.edge_app.sources.base import Camera
from wbc_edge.edge_app.sources.expand import SYMLINKED_FOLDER, expand_inputs

pytestmark = pytest.mark.edge

ROOT = REPO
DEFAULT = ROOT / "models" / "default"
FRAME = ROOT / "samples" / "frames" / "BloodImage_00000.jpg"  # one white cell


def colour(path: Path, value=(90, 100, 160)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((16, 16, 3), value, np.uint8))
    return path


def write_video(path: Path, frames: int, size=(64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def classify(*args: str) -> int:
    return main(["classify", "--model", str(DEFAULT), "--runtime", "litert", *args])


# ---------------------------------------------------------------------------- expansion


@pytest.fixture
def looped(tmp_path: Path) -> Path:
    """4 images, a symlink loop (loop -> .) and a symlinked folder (other -> ../outside)."""
    root = tmp_path / "data"
    for name in ("a.png", "b.png", "sub/c.png", "sub/d.png"):
        colour(root / name)
    (root / "sub" / "loop").symlink_to("..", target_is_directory=True)
    colour(tmp_path / "outside" / "e.png")
    (root / "other").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "gone.png").symlink_to(tmp_path / "nowhere.png")
    return root


def test_folder_records_symlinked_folders_and_broken_links(looped: Path) -> None:
    found = {i.path.relative_to(looped).as_posix(): i.error for i in expand_inputs(str(looped))}
    assert found == {
        "a.png": None,
        "b.png": None,
        "gone.png": "a broken symlink (its target does not exist)",
        "other": SYMLINKED_FOLDER,
        "sub/c.png": None,
        "sub/d.png": None,
        "sub/loop": SYMLINKED_FOLDER,
    }


def test_double_star_glob_never_follows_a_symlink_loop(looped: Path) -> None:
    items = list(iter_media(str(looped / "**" / "*.png")))
    good = [Path(i.source).relative_to(looped).as_posix() for i in items if i.error is None]
    assert good == ["a.png", "b.png", "sub/c.png", "sub/d.png"]  # not 161 frames
    assert sum(i.error == SYMLINKED_FOLDER for i in items) == 2
    assert [Path(i.source).name for i in iter_media(str(looped / "sub" / "*.png"))] == [
        "c.png",
        "d.png",
    ]


def test_unreadable_subfolder_is_recorded(tmp_path: Path, monkeypatch) -> None:
    colour(tmp_path / "ok" / "a.png")
    (tmp_path / "locked").mkdir()
    real = os.scandir

    def scandir(path):  # chmod 000 does not stop root, so refuse the way the kernel would
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = {i.path.name: i.error for i in expand_inputs(str(tmp_path))}
    assert found == {"a.png": None, "locked": "cannot read this folder (Permission denied)"}


def test_empty_source_is_an_error_not_the_current_folder() -> None:
    for empty in ("", "  "):
        with pytest.raises(WbcError, match="the source is empty"):
            expand_inputs(empty)
    assert classify("--source", "") == exit_codes.USER_ERROR


# ---------------------------------------------------------------------------- videos


def test_truncated_avi_ends_with_an_error_record(tmp_path: Path) -> None:
    whole = write_video(tmp_path / "whole.avi", 20)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert [i.error for i in iter_media(str(whole))] == [None] * 20
    items = list(iter_media(str(cut)))
    good = [i for i in items if i.error is None]
    assert 0 < len(good) < 20 and items[-1].error is not None
    assert f"ends at frame {len(good)} of the 20" in items[-1].error
    assert items[-1].frame == len(good)


def test_oversized_video_is_refused(tmp_path: Path, monkeypatch) -> None:
    from wbc_edge.core import decode

    video = write_video(tmp_path / "v.avi", 2)
    monkeypatch.setattr(decode, "MAX_PIXELS", 1000)
    [item] = iter_media(str(video))
    assert item.rgb is None and "64x48 pixels" in item.error


def test_grey_video_frames_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "grey.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 32))
    for v in (50, 120):
        writer.write(np.full((32, 32, 3), v, np.uint8))
    writer.release()
    assert [("grey" in (i.error or "")) for i in iter_media(str(path))] == [True, True]


# ---------------------------------------------------------------------------- file: camera


def hostile_folder(root: Path) -> Path:
    """Two good frames (one white cell each) and four hostile files."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(FRAME, root / "1_good.jpg")
    shutil.copy(FRAME, root / "3_good.jpg")
    (root / "2_bomb.png").write_bytes(png_header(100_000, 100_000))
    (root / "4_garbage.jpg").write_bytes(b"\xff\xd8 not really")
    cv2.imwrite(str(root / "5_grey.png"), np.full((40, 40), 128, np.uint8))
    (root / "6_big.png").write_bytes(png_header(9000, 9000))
    return root


def test_file_camera_reports_skipped_files_and_is_never_reopened(tmp_path: Path) -> None:
    cam = FileCamera(str(hostile_folder(tmp_path / "f")))
    stream = FrameStream(cam, backoff=(0.0, 0.0))
    frames = list(stream)  # ends: a bad file is not a lost camera
    assert len(frames) == 2 and stream.failures == 0
    skipped = sorted(Path(e.source).name for e in cam.take_errors())
    assert skipped == ["2_bomb.png", "4_garbage.jpg", "5_grey.png", "6_big.png"]
    assert cam.take_errors() == []


def test_a_replay_that_raises_ends_instead_of_reopening_forever() -> None:
    class Broken(Camera):
        live = False
        opens = 0

        def open(self) -> None:
            Broken.opens += 1

        def read(self):
            raise RuntimeError("decoder exploded")

        def close(self) -> None:
            pass

    stream = FrameStream(Broken(), threading.Event(), backoff=(0.0, 0.0))
    assert list(stream) == [] and Broken.opens == 1
    assert "decoder exploded" in stream.replay_error


def test_run_file_camera_counts_good_frames_once_and_errors(tmp_path: Path, capsys) -> None:
    folder = hostile_folder(tmp_path / "f")
    out = tmp_path / "run.jsonl"
    camera = f"file:{folder}"
    rc = main(
        [
            "run",
            "--model",
            str(DEFAULT),
            "--runtime",
            "litert",
            "--camera",
            camera,
            "--jsonl",
            str(out),
        ]
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    errors = sorted(Path(r["source"]).name for r in records if "error" in r)
    assert errors == ["2_bomb.png", "4_garbage.jpg", "5_grey.png", "6_big.png"]
    cells = [r for r in records if "label" in r]
    assert len(cells) == 2  # two good frames, one cell each: counted once, no endless replay
    text = capsys.readouterr().out
    assert "2 white cells in 2 frames" in text and "errors (unreadable inputs): 4" in text
    assert rc == exit_codes.SOME_FAILED


# ---------------------------------------------------------------------------- exit codes


def test_exit_codes_all_good_some_failed_all_failed(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(FRAME, good / "a.jpg")
    assert classify("--source", str(good)) == exit_codes.OK
    mixed = hostile_folder(tmp_path / "mixed")
    assert classify("--source", str(mixed)) == exit_codes.SOME_FAILED
    text = capsys.readouterr().out
    assert "errors (unreadable inputs): 4" in text
    assert f"    {mixed / '2_bomb.png'}: image is too large" in text  # failed files named
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(12):
        (bad / f"{i:02d}.png").write_bytes(b"\x89PNG broken")
    assert classify("--source", str(bad)) == exit_codes.ALL_FAILED
    text = capsys.readouterr().out
    assert "errors (unreadable inputs): 12" in text and "... and 2 more" in text
    assert text.count(str(bad)) == 10
