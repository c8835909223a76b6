"""Issue 28: file names that are not UTF-8, or that hold terminal escapes or newlines, never
crash a run, drive the terminal or split a line; CSV cells never start a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from pathlib import Path

import cv2
import pytest
from repo_paths import REPO

from wbc_edge.core.runtime import runtime_available
from wbc_edge.core.safe_io import csv_field, printable
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.report import count_csv, count_table

ROOT = REPO
MODEL = ROOT / "models" / "default"
FRAMES = ROOT / "samples" / "frames"
IMAGE = FRAMES / "BloodImage_00000.jpg"
NOT_UTF8 = os.fsdecode(b"bad\xff\xfename.jpg")  # how Python holds a name that is not UTF-8
ESCAPES = "\x1b]0;pwned\x07\x1b[2Jx.jpg"

pytestmark = [
    pytest.mark.edge,
    pytest.mark.skipif(sys.platform != "linux", reason="names of any bytes: a Linux filesystem"),
    pytest.mark.skipif(
        not any(runtime_available(r) for r in ("litert", "onnxruntime", "openvino")),
        reason="no edge runtime installed",
    ),
]


def classify(source: Path | str, *extra: str) -> int:
    return main(["classify", "--model", str(MODEL), "--source", str(source), *extra])


def test_an_image_named_in_bytes_is_read_saved_and_reported(tmp_path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(IMAGE, photos / NOT_UTF8)
    report = tmp_path / "report"
    assert classify(photos, "--save", str(photos), "--report", str(report)) == 0
    out = capsys.readouterr().out
    assert "bad\\xff\\xfename.jpg: 1 white cell" in out  # printed escaped
    names = sorted(os.listdir(os.fsencode(photos)))
    assert names == [b".wbc-edge-written.json", b"bad\xff\xfename-2.jpg", b"bad\xff\xfename.jpg"]
    assert (photos / NOT_UTF8).read_bytes() == IMAGE.read_bytes()  # the input untouched
    rows = list(csv.DictReader(io.StringIO((report / "cells.csv").read_text("utf-8"))))
    assert rows[0]["source"].endswith("bad\\xff\\xfename.jpg")
    assert "bad\\xff\\xfename.jpg" in (report / "report.html").read_text("utf-8")


def test_a_video_named_in_bytes_is_read(tmp_path, capsys) -> None:
    frame = cv2.imread(str(IMAGE))
    plain = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(plain), cv2.VideoWriter_fourcc(*"MJPG"), 5, frame.shape[1::-1])
    for _ in range(3):
        writer.write(frame)
    writer.release()
    folder = tmp_path / "videos"
    folder.mkdir()
    os.rename(plain, folder / os.fsdecode(b"cl\xffip.avi"))
    assert classify(folder) == 0
    out = capsys.readouterr().out
    assert "in 3 frames" in out and "errors (unreadable inputs): 0" in out


def test_terminal_escapes_and_newlines_in_names_are_printed_escaped(tmp_path, capsys) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    shutil.copyfile(IMAGE, folder / ESCAPES)
    (folder / "a\nb.jpg").write_bytes(b"not an image")
    assert classify(folder) == 4  # the broken one is an error, named in the summary
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "\x1b" not in text and "\x07" not in text
    assert "a\\x0ab.jpg: not a readable image" in text  # one line, the newline shown
    assert not any(line.startswith("b.jpg") for line in text.splitlines())
    assert classify(folder / ESCAPES) == 0
    out = capsys.readouterr().out
    assert "\\x1b]0;pwned\\x07\\x1b[2Jx.jpg: 1 white cell" in out and "\x1b" not in out


def test_csv_cells_never_start_a_formula(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    names = ['=HYPERLINK("evil.example").jpg', "+1.jpg", "-2.jpg", "@cmd.jpg"]
    for name in names:
        shutil.copyfile(IMAGE, folder / name)
    monkeypatch.chdir(folder)  # sources are the bare names, as a user in that folder gets them
    assert classify(".", "--report", str(tmp_path / "report")) == 0
    text = (tmp_path / "report" / "cells.csv").read_text("utf-8")
    sources = {row["source"] for row in csv.DictReader(io.StringIO(text))}
    assert sources == {"'" + n for n in names}


def test_csv_field_and_printable() -> None:
    for hostile in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_field(hostile).startswith("'")
    assert csv_field("NEUTROPHIL") == "NEUTROPHIL" and csv_field(-1.5) == -1.5
    assert printable("a\x1b[2Jb\u202ec\nd") == "a\\x1b[2Jb\\u202ec\\x0ad"
    table = count_table({"=SUM(A1)": 1}, 0.6)
    assert "'=SUM(A1)" in count_csv(table)
