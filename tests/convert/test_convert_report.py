"""The parity report's pages: which side is float, both confidences, the crop the model saw."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import pytest
from repo_paths import REPO

from wbc_edge.convert.report import html_report, markdown_report, table_rows
from wbc_edge.core.bundle import load_bundle

ROOT = REPO
MODEL = ROOT / "models" / "default"
SAMPLE = next((ROOT / "samples" / "cells" / "EOSINOPHIL").iterdir())

pytest.importorskip("matplotlib")


@pytest.fixture
def report(tmp_path) -> dict:
    """The default model's parity.json, its flipped images replaced by a committed sample."""
    rep = json.loads((MODEL / "parity.json").read_text())
    rep["artifacts"] = [a for a in rep["artifacts"] if a["flipped"]][:1]
    art = rep["artifacts"][0]
    art["flipped"] = art["flipped"][:2]
    art["latency_ms"] = 0.91
    for f in art["flipped"]:
        (tmp_path / f["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLE, tmp_path / f["file"])
    rep["parity_set"]["root"] = str(tmp_path)
    return rep


def test_captions_name_both_sides_with_confidences(report) -> None:
    art = report["artifacts"][0]
    rows = table_rows(report, None)
    assert rows[0][3] == "ms/image" and rows[1][3] == "0.91"
    md = markdown_report(report, rows)
    page = html_report(report, rows, load_bundle(MODEL).preprocessing)
    for f in art["flipped"]:
        line = (
            f"true {f['label']}: float {f['float']} {f['float_confidence']:.2f} → "
            f"{art['key']} {f['artifact']} {f['artifact_confidence']:.2f}"
        )
        assert line in md
        assert f"<b>float</b>: {f['float']} {f['float_confidence']:.2f}" in page
        assert f"<b>{art['key']}</b>: {f['artifact']} {f['artifact_confidence']:.2f}" in page


def test_thumbnails_are_the_crops_the_model_saw(report) -> None:
    from PIL import Image

    rows = table_rows(report, None)
    spec = load_bundle(MODEL).preprocessing
    for page, size in (
        (html_report(report, rows, spec), (96, 96)),
        (html_report(report, rows), (96, 72)),
    ):
        found = re.findall(r"<figure><img alt='' src='data:image/png;base64,([^']+)'", page)
        assert len(found) == len(report["artifacts"][0]["flipped"])
        with Image.open(io.BytesIO(base64.b64decode(found[0]))) as im:
            assert im.size == size  # the 96x96 model crop, not the 320x240 image shrunk


def test_curves_have_whole_epoch_ticks(tmp_path, monkeypatch) -> None:
    import matplotlib.pyplot as plt

    from wbc_edge.train import report as train_report

    ticks = []
    monkeypatch.setattr(plt, "close", lambda fig: ticks.extend(ax.get_xticks() for ax in fig.axes))
    history = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.8], "accuracy": [0.5, 0.6, 0.7]}
    train_report.plot_curves(history, tmp_path / "curves.png")
    assert ticks and all(float(t).is_integer() for axis in ticks for t in axis)


def test_the_verdict_line_says_the_direction_and_the_worst_class(report) -> None:
    from wbc_edge.convert.report import verdict_line, wilson_interval

    art = dict(report["artifacts"][0], status="failed", agreement=0.985, flipped=[{}] * 3)
    art.update(accuracy_float=0.8792, accuracy_artifact=0.8772, recall_change=[0, 0, 0.01, -0.03])
    art["float_scores"] = dict(art["float_scores"], recall=[0.9, 0.9, 0.9, 0.7])
    art["artifact_scores"] = dict(art["artifact_scores"], recall=[0.9, 0.9, 0.91, 0.67])
    line = verdict_line(art, ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"], 200)
    assert line == (
        f"{art['key']}: FAIL. Agrees with the float model on 98.50 % (3 of 200 images differ; "
        "95 % interval 95.68–99.49 %); accuracy 0.20 points lower (0.8792 → 0.8772); worst "
        "class NEUTROPHIL, recall 3.00 points lower (0.700 → 0.670)."
    )
    assert wilson_interval(12, 12)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)


def test_the_page_leads_with_the_answer_and_collapses_passing_matrices(report) -> None:
    rows = table_rows(report, None)
    page = html_report(report, rows)
    verdicts = page.index("<ul class=verdict>")
    assert verdicts < page.index("Checked on:") < page.index("<table>")  # the answer first
    assert "<details><summary>Confusion matrices" in page  # a passing artifact: collapsed
    assert "@page{size:A4" in page
    assert "disagree /1000" in rows[0] and "acc. change pts" in rows[0]
    md = markdown_report(report, rows)
    assert "## Per class" in md and "| NEUTROPHIL | 705 | " in md


def test_the_smear_line_shows_what_a_quantizer_does_to_a_differential(report) -> None:
    from wbc_edge.convert.report import smear_line

    art = report["artifacts"][0]
    assert "normal smear, raw count (float → artifact)" in smear_line(report, art)
    k = len(report["classes"])
    same = [[50 if i == j else 0 for j in range(k)] for i in range(k)]
    moved = [row[:] for row in same]
    moved[3] = [10, 0, 0, 40]  # the artifact reads a fifth of the neutrophils as eosinophils
    art["float_scores"]["confusion"], art["artifact_scores"]["confusion"] = same, moved
    line = smear_line(report, art)
    assert "NEUT 60.0 → 48.0" in line and "EOSI 3.0 → 15.0" in line
    assert "largest change over the five mixes: raw +17.0 points (EOSINOPHIL, neutrophilia)" in line
    report["count_confusion"] = moved  # corrected with a count model that knows those errors
    corrected = smear_line(report, art)
    assert "corrected -12.5 points (NEUTROPHIL, eosinophilia)" in corrected  # over-corrected
    report["count_confusion"] = same
    assert "corrected -17.1 points (NEUTROPHIL, neutrophilia)" in smear_line(report, art)
    art["artifact_scores"]["confusion"] = same
    assert "raw none, corrected none" in smear_line(report, art)
    assert "The differential a smear would get" in markdown_report(report, table_rows(report, None))


def test_hostile_names_and_strings_come_out_as_text(report) -> None:
    art = report["artifacts"][0]
    hostile = "<img src=x onerror=alert('x')>\x1b[2J"
    art["flipped"][0]["file"] = f"{hostile}.png"
    art["flipped"][0]["label"] = hostile
    art["reasons"] = [hostile]
    report["parity_set"]["note"] = hostile
    page = html_report(report, table_rows(report, None))
    assert "<img src=x" not in page and "\x1b" not in page
    assert "&lt;img src=x onerror=alert(&#39;x&#39;)&gt;\\x1b[2J.png<br>true: &lt;img" in page
    assert "<p class=failed>&lt;img src=x" in page and "<p>&lt;img src=x" in page
