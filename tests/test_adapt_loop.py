"""The lab loop end to end on the tiny bundle: reviewed reports -> wbc-train adapt (held-out run,
no forgetting, verdict, provenance) -> wbc-train ship (convert with the lab's cells in the INT8
calibration, verify, install) -> classify with @current (report and JSONL name the model) ->
rollback. And the refusals: too few cells of a class, an unreviewed report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import make_cell_dataset
from tiny_bundle import build_tiny_bundle

from wbc_edge.core.bundle import load_bundle
from wbc_edge.edge_app.report import load_report
from wbc_edge.edge_app.review import apply_review

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _cli(tool: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / tool), *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _lab_run(root: Path, seed: int, per_class: int = 3) -> None:
    """Generated cells under another stain: half of red and green swapped (what the model never
    saw), written as the lab's camera would save them."""
    for r in make_cell_dataset(root, cells_per_class=per_class, copies_per_cell=2, seed=seed):
        bgr = cv2.imread(str(root / r.path)).astype(np.float32)
        cv2.imwrite(str(root / r.path), (0.5 * bgr + 0.5 * bgr[..., [0, 2, 1]]).astype(np.uint8))


def _reviewed_report(bundle: Path, work: Path, i: int, per_class: int = 3) -> Path:
    """Classify a lab run with --report, then a technician confirms or corrects every cell
    (the truth is the class folder the generated image sits in)."""
    src, rep = work / f"lab{i}", work / f"report{i}"
    _lab_run(src, 21 + i, per_class)
    proc = _cli("wbc-edge", "classify", "--model", str(bundle), "--source", str(src),
                "--mode", "cell", "--report", str(rep), "--sample", f"SLIDE-{i}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = load_report(rep)["cells"]
    apply_review(rep, {str(c["id"]): Path(c["source"]).parent.name for c in cells})
    return rep


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("lab")
    parent = build_tiny_bundle(tmp_path_factory.mktemp("tiny"))
    reports = [_reviewed_report(parent, work, i) for i in range(3)]
    return {"work": work, "parent": parent, "reports": reports}


ADAPT = ["--epochs", "25", "--steps-per-epoch", "10", "--batch-size", "16", "--lr", "1e-3",
         "--min-learn", "4",
         # the tiny held-out side has 3 cells a class: one cell is 0.33 of a class's recall
         "--accuracy-tolerance", "0.1", "--recall-tolerance", "0.34"]  # fmt: skip


def test_reviewed_reports_to_installed_model_and_back(lab: dict, tmp_path: Path) -> None:
    child, store = tmp_path / "child", tmp_path / "store"
    proc = _cli("wbc-train", "adapt", str(lab["parent"]), *map(str, lab["reports"]),
                "--out", str(child), *ADAPT)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr  # 0: the child wins
    assert "WINS" in proc.stdout
    bundle = load_bundle(child)
    rec = bundle.provenance["adaptation"]
    assert rec["parent"]["name"] == load_bundle(lab["parent"]).name
    assert [r["sample"] for r in rec["reports"]] == ["SLIDE-0", "SLIDE-1", "SLIDE-2"]
    assert all(r["cells"] == dict.fromkeys(bundle.classes, 6) for r in rec["reports"])
    # whole slides held out: the held-out cells are exactly one report's
    assert rec["cells"]["held_out_by"] == "run/slide" and len(rec["cells"]["held_out_units"]) == 1
    assert (
        sum(rec["cells"]["learn"].values()) == 48 and sum(rec["cells"]["held_out"].values()) == 24
    )
    ev = rec["evaluation"]
    assert ev["child"]["lab"]["accuracy"] > ev["parent"]["lab"]["accuracy"]
    assert ev["child"]["original"]["accuracy"] >= ev["parent"]["original"]["accuracy"] - 0.1
    assert rec["verdict"]["wins"] is True and bundle.count_model is None
    assert rec["timing"]["fine_tune_cpu_s"] > 0

    proc = _cli("wbc-train", "ship", str(child), "--store", str(store),
                "--artifacts", "tflite-fp32,tflite-int8")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shipped = load_bundle(child)
    assert "lab's reviewed cells" in shipped.parity["calibration"]["source"]
    state = json.loads((store / "installed.json").read_text())
    assert state["current"].startswith("child-")

    # the device counts with @current; the report and every JSONL record name that model
    env = {"WBC_MODELS": str(store)}
    out, jsonl = tmp_path / "run", tmp_path / "cells.jsonl"
    src = str(lab["work"] / "lab0")
    proc = _cli("wbc-edge", "classify", "--model", "@current", "--source", src,
                "--mode", "cell", "--report", str(out), "--jsonl", str(jsonl), env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    meta = load_report(out)["meta"]
    assert meta["model"] == "child" and Path(meta["bundle"]).name == state["current"]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert records and {r["model"] for r in records} == {"child"}
    assert {r["model_sha256"] for r in records} == {meta["bundle_sha256"]}

    # install the parent too, then roll back to the child
    proc = _cli("wbc-edge", "models", "install", str(lab["parent"]), env=env)
    assert proc.returncode == 0, proc.stderr
    proc = _cli("wbc-edge", "models", "rollback", env=env)
    assert proc.returncode == 0 and state["current"] in proc.stdout
    listing = _cli("wbc-edge", "models", "list", env=env).stdout
    assert f"* {state['current']}" in listing and "tiny-cnn" in listing


def test_a_child_that_does_not_win_is_written_but_never_shipped(lab: dict, tmp_path: Path) -> None:
    child = tmp_path / "child"
    args = [a if a != "25" else "1" for a in ADAPT]  # one epoch: no better than its parent
    args = [*args[:-4], "--accuracy-tolerance", "0", "--recall-tolerance", "0"]
    proc = _cli("wbc-train", "adapt", str(lab["parent"]), *map(str, lab["reports"]),
                "--out", str(child), "--lr", "1e-9", *args)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DOES NOT WIN" in proc.stdout
    proc = _cli("wbc-train", "ship", str(child), "--store", str(tmp_path / "store"))
    assert proc.returncode == 2 and "did not win" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


def test_too_few_cells_of_a_class_is_refused_with_the_reason(lab: dict, tmp_path: Path) -> None:
    proc = _cli("wbc-train", "adapt", str(lab["parent"]), str(lab["reports"][0]),
                "--out", str(tmp_path / "child"), "--min-learn", "5")  # fmt: skip
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "too few reviewed cells" in line and "EOSINOPHIL has 6" in line and "needs 8" in line
    assert not (tmp_path / "child").exists()


def test_an_unreviewed_report_is_refused(lab: dict, tmp_path: Path) -> None:
    rep = tmp_path / "unreviewed"
    proc = _cli("wbc-edge", "classify", "--model", str(lab["parent"]), "--source",
                str(lab["work"] / "lab1"), "--mode", "cell", "--report", str(rep))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = _cli("wbc-train", "adapt", str(lab["parent"]), str(rep), "--out", str(tmp_path / "c"))
    assert proc.returncode == 2 and "not reviewed" in proc.stderr
