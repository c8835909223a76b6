"""`wbc-edge classify` end to end: generated fields and cell crops through every runtime."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from edge_records import read_jsonl, summary_counts
from edge_setup import run_child_without
from synthetic import CLASSES, edge_field, render_cell, write_rgb

from wbc_edge.core.runtime import runtime_available
from wbc_edge.edge_app import exit_codes
from wbc_edge.edge_app.cli import main

pytestmark = pytest.mark.edge

FIELD_CELLS = [1, 2, 0, 1]  # white cells per generated field
INSTALLED = [r for r in ("litert", "onnxruntime", "openvino") if runtime_available(r)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("edge-data")
    for i, n in enumerate(FIELD_CELLS):
        write_rgb(root / "fields" / f"field{i}.png", edge_field(100 + i, n))
    (root / "fields" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    rng = np.random.default_rng(5)
    for label in CLASSES:
        for k in range(2):
            write_rgb(root / "cells" / label / f"{k}.png", render_cell(label, rng, (160, 120))[0])
    write_rgb(root / "cells" / "no-cell.png", edge_field(9, 0)[:120, :160])
    return root


def run_classify(edge_bundle: Path, *args: str) -> int:
    return main(["classify", "--model", str(edge_bundle), *args])


@pytest.mark.parametrize("runtime", INSTALLED)
def test_classify_fields_with_every_runtime(edge_bundle, data, tmp_path, capsys, runtime):
    out = tmp_path / "out.jsonl"
    rc = run_classify(
        edge_bundle, "--source", str(data / "fields"), "--runtime", runtime, "--jsonl", str(out)
    )
    assert rc == exit_codes.SOME_FAILED  # corrupt.jpg
    records = read_jsonl(out, list(CLASSES))
    assert {r["model"] for r in records} == {"tiny-cnn"}  # the model that counted, on each
    kinds = [r["_kind"] for r in records]
    assert kinds.count("cell") == sum(FIELD_CELLS)
    assert kinds.count("empty") == FIELD_CELLS.count(0) and kinds.count("error") == 1
    for i, n in enumerate(FIELD_CELLS):
        mine = [r for r in records if r["source"].endswith(f"field{i}.png")]
        assert len(mine) == max(n, 1) and all(r["frame"] == 0 for r in mine)
    assert all(r["box"] is not None for r in records if r["_kind"] == "cell")
    error = next(r for r in records if r["_kind"] == "error")
    assert error["source"] == str(data / "fields" / "corrupt.jpg")
    text = capsys.readouterr().out
    counts = summary_counts(text)
    cells = [r for r in records if r["_kind"] == "cell"]
    for label in CLASSES:
        assert counts[label] == sum(r["label"] == label for r in cells)
    assert counts["uncertain"] == sum(r["uncertain"] for r in cells)
    assert counts["empty"] == 1 and counts["errors"] == 1
    assert f"{sum(FIELD_CELLS)} white cells in {len(FIELD_CELLS)} frames" in text
    assert runtime in text


def test_min_nucleus_area_overrides_the_bundle(edge_bundle, data, tmp_path, capsys):
    out = tmp_path / "big.jsonl"
    src = str(data / "fields")
    assert run_classify(edge_bundle, "--source", src, "--min-nucleus-area", "100000",
                        "--jsonl", str(out)) == exit_codes.SOME_FAILED  # fmt: skip
    kinds = [r["_kind"] for r in read_jsonl(out, list(CLASSES))]
    assert kinds.count("cell") == 0 and kinds.count("empty") == len(FIELD_CELLS)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_classify(edge_bundle, "--source", src, "--min-nucleus-area", "0")
    err = capsys.readouterr().err.strip()
    assert "argument --min-nucleus-area: 0 is not from 1 to" in err.splitlines()[-1]


def test_cell_mode_and_fp32_runtimes_agree(edge_bundle, data, tmp_path, capsys):
    results = {}
    for runtime in INSTALLED:
        out = tmp_path / f"{runtime}.jsonl"
        rc = run_classify(
            edge_bundle,
            "--source",
            str(data / "cells"),
            "--mode",
            "cell",
            "--runtime",
            runtime,
            "--precision",
            "fp32",
            "--jsonl",
            str(out),
        )
        assert rc == 0
        records = read_jsonl(out, list(CLASSES))
        assert [r["_kind"] for r in records].count("cell") == 2 * len(CLASSES)
        empty = [r for r in records if r["_kind"] == "empty"]
        assert [Path(r["source"]).name for r in empty] == ["no-cell.png"]  # reported, no class
        assert all(r["box"] is None for r in records if r["_kind"] == "cell")
        results[runtime] = [r.get("probs") for r in records]
    first = results[INSTALLED[0]]
    for runtime, probs in results.items():  # same code path, same numbers on every backend
        for a, b in zip(first, probs, strict=True):
            if a is not None:
                np.testing.assert_allclose(
                    list(a.values()), list(b.values()), atol=1e-4, err_msg=runtime
                )
    out = capsys.readouterr().out
    assert "cell mode" in out
    # folder names are classes: the run scores itself against them (no-cell.png is not counted)
    cells = [r for r in records if r["_kind"] == "cell"]
    correct = sum(r["label"] == Path(r["source"]).parent.name for r in cells)
    found = re.findall(r"labelled by their folder: (\d+) cells, accuracy [\d.]+ \((\d+)/", out)
    assert found[-1] == (str(len(cells)), str(correct))


def test_jsonl_to_stdout_summary_to_stderr_and_stats(edge_bundle, data, capsys):
    rc = run_classify(
        edge_bundle,
        "--source",
        str(data / "fields" / "field1.png"),
        "--jsonl",
        "-",
        "--stats",
        "--threshold",
        "0.99",
    )
    assert rc == 0
    captured = capsys.readouterr()
    records = read_jsonl(captured.out, list(CLASSES), threshold=0.99)
    assert len(records) == 2 and all(r["uncertain"] for r in records)
    assert "differential count" in captured.err and "differential count" not in captured.out
    for stage in ("capture", "find", "preprocess", "infer"):
        assert re.search(rf"^\s+{stage}\s+[\d.]+\s+[\d.]+$", captured.err, re.M), stage
    assert re.search(r"[\d.]+ frames/s", captured.err)


def test_classify_a_video_file(edge_bundle, tmp_path, capsys):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (480, 360))
    for seed, n in ((1, 1), (2, 0), (3, 1)):
        writer.write(np.ascontiguousarray(edge_field(seed, n)[:, :, ::-1]))
    writer.release()
    out = tmp_path / "v.jsonl"
    assert run_classify(edge_bundle, "--source", str(video), "--jsonl", str(out)) == 0
    records = read_jsonl(out, list(CLASSES))
    assert [(r["frame"], r["_kind"]) for r in records] == [(0, "cell"), (1, "empty"), (2, "cell")]


def test_user_errors_are_one_line(edge_bundle, data, tmp_path, capsys):
    assert main(["classify", "--model", str(tmp_path), "--source", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"wbc-edge: {tmp_path / 'bundle.json'}: no bundle here (expected a folder "
        "holding bundle.json)"
    )
    assert run_classify(edge_bundle, "--source", str(tmp_path / "missing")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wbc-edge: ") and "no such file" in err and "\n" not in err
    with pytest.raises(SystemExit):
        main(["classify", "--model", str(edge_bundle), "--source", "x", "--runtime", "tf"])


def test_edge_code_path_never_imports_tensorflow(edge_bundle, data):
    code = (
        "import wbc_edge.edge_app, wbc_edge.edge_app.cli, wbc_edge.core.runtime\n"
        "import wbc_edge.core.field, wbc_edge.edge_app.classify\n"
        "import wbc_edge.edge_app.live, wbc_edge.edge_app.summary, wbc_edge.edge_app.overlay\n"
        "import wbc_edge.edge_app.sources\n"
        "import wbc_edge.edge_app.sources.picamera, wbc_edge.edge_app.sources.opencv\n"
        "import wbc_edge.edge_app.sources.files\n"
        "from wbc_edge.edge_app.cli import main\n"
        f"rc = main(['classify', '--model', {str(edge_bundle)!r}, '--source', "
        f"{str(data / 'fields' / 'field0.png')!r}])\n"
    )
    run_child_without(code, ("tensorflow", "keras"))
