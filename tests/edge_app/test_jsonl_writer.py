"""The JSONL log: never clobbers an input, whole lines only, a full disk or a closed pipe is one
line after the summary with a non-zero exit, and only valid JSON (no NaN) is ever written."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from repo_paths import REPO

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app import exit_codes, jsonl
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.jsonl import JsonlWriter

pytestmark = pytest.mark.edge

ROOT = REPO
DEFAULT = ROOT / "models" / "default"
FRAMES = ROOT / "samples" / "frames"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def classify(*args: str) -> int:
    return main(["classify", "--model", str(DEFAULT), "--runtime", "litert", *args])


def test_output_that_is_an_input_is_refused_before_it_is_touched(tmp_path: Path, capsys) -> None:
    src = tmp_path / "frames"
    shutil.copytree(FRAMES, src)
    image = next(iter(sorted(src.glob("*.jpg"))))
    before = image.read_bytes()
    for target, source in ((image, image), (image, src), (image, src / "*.jpg")):
        assert classify("--source", str(source), "--jsonl", str(target)) == exit_codes.USER_ERROR
        err = capsys.readouterr().err
        assert f"wbc-edge: {target}: is one of the inputs" in err and "Traceback" not in err
        assert image.read_bytes() == before
    link = tmp_path / "link.jpg"
    link.symlink_to(image)  # the same file under another name
    assert classify("--source", str(src), "--jsonl", str(link)) == exit_codes.USER_ERROR
    assert image.read_bytes() == before


def test_run_refuses_a_log_that_is_a_replayed_input(tmp_path: Path, capsys) -> None:
    src = tmp_path / "frames"
    shutil.copytree(FRAMES, src)
    image = sorted(src.glob("*.jpg"))[0]
    before = image.read_bytes()
    args = ["run", "--model", str(DEFAULT), "--camera", f"file:{src}", "--jsonl", str(image)]
    assert main(args) == exit_codes.USER_ERROR
    assert "is one of the inputs" in capsys.readouterr().err and image.read_bytes() == before


def test_writer_refuses_inputs_directly(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    with pytest.raises(WbcError, match="is one of the inputs"):
        JsonlWriter(a, [a])
    with JsonlWriter(tmp_path / "new.jsonl", [a]) as writer:
        assert writer.write({"source": "a"})


def test_full_disk_leaves_only_whole_lines(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.jsonl"
    real = os.write
    calls = {"n": 0}

    def write(fd, data):  # the third line: half of it fits, then the disk is full
        calls["n"] += 1
        if calls["n"] == 3:
            return real(fd, bytes(data[: len(data) // 2]))
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(jsonl.os, "write", write)
    with JsonlWriter(target) as writer:
        assert writer.write({"source": "a", "n": 1}) and writer.write({"source": "b", "n": 2})
        assert writer.write({"source": "c", "n": 3, "pad": "x" * 200}) is False
        assert writer.write({"source": "d"}) is False  # nothing more after a failure
    assert (
        writer.failure
        and "the disk is full" in writer.failure
        and "ends after 2 whole records" in writer.failure
    )
    text = target.read_text()
    assert text.endswith("\n") and [json.loads(line)["n"] for line in text.splitlines()] == [1, 2]


def test_dev_full_prints_the_summary_then_one_line_and_exits_non_zero(capsys) -> None:
    rc = classify("--source", str(FRAMES), "--jsonl", "/dev/full")
    captured = capsys.readouterr()
    assert rc == exit_codes.OUTPUT_FAILED
    assert "differential count" in captured.out  # the summary of what was done
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("wbc-edge: /dev/full: cannot write the JSONL log (the disk is full)")
    assert "Traceback" not in captured.err


def test_closed_pipe_is_one_line_after_the_summary() -> None:
    code = "from wbc_edge.edge_app.cli import main; raise SystemExit(main())"
    args = [sys.executable, "-c", code, "classify", "--model", str(DEFAULT), "--runtime"]
    args += ["litert", "--source", str(FRAMES), "--jsonl", "-"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()  # the reader is gone before the first record (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == exit_codes.OUTPUT_FAILED, err
    assert "differential count" in err and "Traceback" not in err and "Exception" not in err
    assert "wbc-edge: stdout: cannot write the JSONL log (the reader closed the pipe)" in err


def test_summary_to_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    code = "from wbc_edge.edge_app.cli import main; raise SystemExit(main())"
    args = [sys.executable, "-c", code, "classify", "--model", str(DEFAULT), "--runtime"]
    args += ["litert", "--source", str(FRAMES), "--jsonl", str(tmp_path / "o.jsonl")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == exit_codes.OUTPUT_FAILED, err
    assert "Traceback" not in err and "reader closed the pipe" in err


def test_non_finite_numbers_never_reach_the_file(tmp_path: Path) -> None:
    target = tmp_path / "nan.jsonl"
    with JsonlWriter(target) as writer:
        writer.write({"source": "a.png", "frame": 3, "confidence": math.nan})
        writer.write({"source": "b.png", "frame": 0, "probs": {"X": math.inf}})
    lines = target.read_text().splitlines()
    records = [
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c}")) for line in lines
    ]
    assert records == [
        {"source": "a.png", "frame": 3, "error": "the result held NaN or Infinity"},
        {"source": "b.png", "error": "the result held NaN or Infinity"},
    ]
