"""Progress towards --target and through long folders: a line on a terminal, quiet when piped."""

from __future__ import annotations

import io
import itertools

import pytest
from repo_paths import REPO

from wbc_edge.edge_app.progress import FOLDER_MIN, TargetProgress, with_progress

pytestmark = pytest.mark.edge


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def counts(n: int) -> dict[str, int]:
    return {"EOSINOPHIL": n // 4, "LYMPHOCYTE": n - n // 4, "MONOCYTE": 0, "NEUTROPHIL": 0}


def test_target_on_a_terminal_draws_a_line_and_rings_once() -> None:
    out = Tty()
    clock = itertools.count(0, 1.0)
    target = TargetProgress(100, out, clock=lambda: next(clock))
    assert [target.update(counts(n)) for n in (10, 60, 99, 100, 104)] == [
        False,
        False,
        False,
        True,
        False,
    ]
    text = out.getvalue()
    assert "\r10/100 cells [##" in text and "EOS 2  LYM 8" in text
    assert text.count("\a") == 1 and text.count("target reached: 100 white cells") == 1


def test_target_when_piped_says_only_that_it_was_reached() -> None:
    out = io.StringIO()
    target = TargetProgress(200, out)
    for n in range(0, 260, 20):
        target.update(counts(n))
    assert out.getvalue() == "target reached: 200 white cells counted\n"


def test_folder_progress_on_a_terminal_quiet_when_piped_or_short() -> None:
    n = FOLDER_MIN + 5
    out = Tty()
    clock = itertools.count(0, 1.0)
    assert list(with_progress(range(n), n, "classify", out, lambda: next(clock))) == list(range(n))
    assert f"classify: {n}/{n} [" in out.getvalue()
    piped = io.StringIO()
    assert list(with_progress(range(n), n, "classify", piped)) == list(range(n))
    short = Tty()
    assert list(with_progress(range(3), 3, "classify", short)) == [0, 1, 2]
    assert piped.getvalue() == short.getvalue() == ""


def test_run_stops_at_its_target(edge_bundle, tmp_path, capsys) -> None:

    from wbc_edge.edge_app.cli import main

    frames = REPO / "samples" / "frames"
    out = tmp_path / "cells.jsonl"
    args = ["run", "--model", str(edge_bundle), "--camera", f"file:{frames}", "--target", "2"]
    rc = main([*args, "--jsonl", str(out)])
    text = capsys.readouterr()
    assert rc == 0 and "target reached: 2 white cells counted" in text.err
    assert "target reached: 2 white cells at frame" in text.out
    seen = {line.split('"frame": ')[1].split(",")[0] for line in out.read_text().splitlines()}
    assert len(seen) < 6  # it stopped before the end of the six frames
