"""What a technician gets: saved pictures, the run report and its review, the summary's lines.

Runs the bundled default model on the committed samples (no TensorFlow, a few seconds).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request

import cv2
import numpy as np
import pytest
from edge_setup import FRAMES, MODEL, ROOT, needs_runtime, run_child_without
from report_meta import report_meta

from wbc_edge.core.bundle import load_bundle
from wbc_edge.edge_app.annotated import AnnotatedFrames
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.overlay import _label, label_origin
from wbc_edge.edge_app.report import wilson_interval
from wbc_edge.edge_app.report_html import NOT_A_CELL
from wbc_edge.edge_app.review import apply_review, make_server
from wbc_edge.edge_app.summary import CellNote, DifferentialCount

CELLS = ROOT / "samples" / "cells"
CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
THRESHOLD = "0.9"  # high enough that some sample cells are uncertain

pytestmark = [pytest.mark.edge, needs_runtime]
FIGURE = re.compile(r"<figure class=(uncertain|certain) id=cell-(\d+) data-label='([A-Z]+)'>")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One classify run of the sample frames with --save and --report."""
    out = tmp_path_factory.mktemp("technician")
    args = [
        "classify",
        "--model",
        str(MODEL),
        "--source",
        str(FRAMES),
        "--threshold",
        THRESHOLD,
        "--save",
        str(out / "frames"),
        "--report",
        str(out / "report"),
        "--jsonl",
        str(out / "cells.jsonl"),
    ]
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(args) == 0
    records = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    return {"out": out, "text": text.getvalue(), "cells": [r for r in records if "label" in r]}


def test_wilson_interval_matches_published_values() -> None:
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_report_counts_intervals_and_gallery(run) -> None:
    folder, cells = run["out"] / "report", run["cells"]
    html = (folder / "report.html").read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html)  # nothing from the network
    data = json.loads((folder / "report.json").read_text())
    n = len(cells)
    assert data["count"]["cells"] == n > 0
    for row in data["count"]["rows"]:
        k = sum(c["label"] == row["class"] for c in cells)
        lo, hi = wilson_interval(k, n)
        assert row["cells"] == k and row["percent"] == pytest.approx(100 * k / n, abs=0.01)
        assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((100 * lo, 100 * hi), abs=0.01)
        assert f"<td>{row['class']}</td><td>{k}</td><td>{100 * k / n:.1f}</td>" in html
        assert f"{100 * lo:.1f}&ndash;{100 * hi:.1f}" in html
    assert "Wilson score interval" in html and data["meta"]["bundle_sha256"] in html
    with open(folder / "count.csv", newline="") as fh:
        rows = {r["class"]: r for r in csv.DictReader(fh)}
    assert {c: int(rows[c]["cells"]) for c in CLASSES} == {
        r["class"]: r["cells"] for r in data["count"]["rows"]
    }
    assert int(rows["total"]["cells"]) == n
    # the gallery: one figure per counted cell, grouped by class, uncertain first in each group
    figures = FIGURE.findall(html)
    assert len(figures) == n and len({i for _, i, _ in figures}) == n
    labels = [label for _, _, label in figures]
    assert labels == sorted(labels, key=CLASSES.index)
    for cls in CLASSES:
        kinds = [k for k, _, label in figures if label == cls]
        assert kinds == sorted(kinds, key=lambda k: k != "uncertain"), cls
    uncertain = sum(c["uncertain"] for c in cells)
    assert 0 < uncertain < n and html.count("<span class=tag>REVIEW</span>") == uncertain
    # each figure is the crop the model saw: the model's input size
    crop = cv2.imread(str(folder / data["cells"][0]["crop"]))
    assert crop.shape == (96, 96, 3)


def test_saved_frames_are_named_after_their_source(run) -> None:
    saved = sorted(p.name for p in (run["out"] / "frames").iterdir() if p.suffix == ".jpg")
    assert saved == sorted(p.stem + ".jpg" for p in FRAMES.iterdir() if p.suffix == ".jpg")
    assert f"annotated frames: {len(saved)}" in run["text"]


def test_summary_names_the_uncertain_cells(run) -> None:
    for c in run["cells"]:
        x0, y0, x1, y1 = c["box"]
        line = f"    {c['source']} box {x0},{y0}-{x1},{y1}: {c['label']} {c['confidence']:.2f}"
        assert (line in run["text"]) is c["uncertain"]


def test_uncertain_list_is_limited() -> None:
    count = DifferentialCount(CLASSES, 0.6)
    for i in range(25):
        count.add_cell("MONOCYTE", 0.4)
        count.note_uncertain(CellNote("a.png", 0, (i, 0, i + 5, 5), "MONOCYTE", 0.4))
    text = count.format()
    assert text.count("a.png box") == 20 and "... and 5 more" in text


def test_a_single_image_gets_one_line_per_cell(capsys) -> None:
    image = FRAMES / "BloodImage_00000.jpg"
    assert main(["classify", "--model", str(MODEL), "--source", str(image)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^{re.escape(str(image))}: 1 white cell$", out, re.M)
    assert re.search(r"^  1\. box \d+,\d+-\d+,\d+: [A-Z]+ [\d.]+", out, re.M)
    assert "1 white cell in 1 frame" in out and "1 cells" not in out


def test_field_mode_on_cell_crops_says_use_mode_cell(caplog, capsys) -> None:
    assert main(["classify", "--model", str(MODEL), "--source", str(CELLS)]) == 0
    warned = [r.getMessage() for r in caplog.records if "--mode cell" in r.getMessage()]
    assert len(warned) == 1 and "of 8 images look like single-cell crops" in warned[0]
    caplog.clear()
    assert main(["classify", "--model", str(MODEL), "--source", str(FRAMES)]) == 0
    assert not [r for r in caplog.records if "--mode cell" in r.getMessage()]
    assert main(["classify", "--model", str(MODEL), "--source", str(CELLS), "--mode", "cell"]) == 0
    assert not [r for r in caplog.records if "--mode cell" in r.getMessage()]


def test_labels_stay_inside_the_image_and_off_the_banner() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    banner = _label(img, "12 cells  EOS 3  LYM 4  MON 2  NEU 3  9.8 fps", (6, 16), 0.5, 0, 1)
    text = "LYMPHOCYTE 0.93"
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    for p0, p1 in [
        ((10, 2), (60, 50)),
        ((290, 100), (319, 150)),
        ((100, 0), (180, 239)),
        ((250, 200), (319, 239)),
    ]:
        x, y = label_origin(text, p0, p1, (320, 240), 0.5, 1, [banner])
        rect = (x, y - th - 2, x + tw + 2, y + base)
        assert rect[0] >= 0 and rect[2] < 320 and rect[1] >= 0 and rect[3] < 240, (p0, rect)
        assert rect[1] > banner[3] or rect[0] > banner[2] or rect[3] < banner[1], (p0, rect)


def test_saved_names_are_unique(tmp_path) -> None:
    saver = AnnotatedFrames(tmp_path)
    assert saver.name_for("a/EOS/1.png", 0) == "1.jpg"
    assert saver.name_for("a/LYM/1.png", 0) == "LYM_1.jpg"
    assert saver.name_for("clip.mp4", 12) == "clip-frame000012.jpg"


def test_review_writes_the_corrected_count_and_labelled_crops(run, tmp_path) -> None:
    folder = tmp_path / "report"
    shutil.copytree(run["out"] / "report", folder)
    data = json.loads((folder / "report.json").read_text())
    first, second = data["cells"][0], data["cells"][1]
    new = next(c for c in CLASSES if c != first["label"])
    review = apply_review(folder, {str(first["id"]): new, str(second["id"]): NOT_A_CELL})
    counts = {r["class"]: r["cells"] for r in review["count"]["rows"]}
    before = {r["class"]: r["cells"] for r in data["count"]["rows"]}
    expect = dict(before)
    expect[first["label"]] -= 1
    expect[new] += 1
    expect[second["label"]] -= 1
    assert counts == expect and review["count"]["rejected"] == 1
    with open(folder / "count_reviewed.csv", newline="") as fh:
        assert {r["class"]: int(r["cells"]) for r in csv.DictReader(fh)}["total"] == len(
            data["cells"]
        ) - 1
    saved = list((folder / "corrections" / new).glob("*.jpg"))
    assert len(saved) == 1 and cv2.imread(str(saved[0])).shape == (240, 320, 3)
    assert len(list((folder / "rejected").iterdir())) == 1
    html = (folder / "report.html").read_text()
    assert "reviewed cells" in html and f"&rarr; {new}" in html
    # choosing the model's label again undoes the correction
    review = apply_review(folder, {str(first["id"]): first["label"]})
    assert list(review["corrections"]) == [str(second["id"])]
    assert not (folder / "corrections").exists() or not any((folder / "corrections").iterdir())


def test_review_page_on_localhost(run, tmp_path) -> None:
    folder = tmp_path / "report"
    shutil.copytree(run["out"] / "report", folder)
    server = make_server(folder, "127.0.0.1", 0)
    assert server.server_address[0] == "127.0.0.1"
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    token = f"?token={server.guard.token}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = urllib.request.urlopen(server.guard.url(), timeout=10).read().decode()
        assert (
            page.count("<select name=c")
            == json.loads((folder / "report.json").read_text())["count"]["cells"]
        )
        body = urllib.parse.urlencode({"c1": NOT_A_CELL}).encode()
        post = {"Origin": origin}
        save = urllib.request.Request(f"{origin}/save{token}", body, post)
        urllib.request.urlopen(save, timeout=10).read()
        assert json.loads((folder / "review.json").read_text())["corrections"] == {"1": NOT_A_CELL}
        done = urllib.request.Request(f"{origin}/done{token}", body, post)
        done = urllib.request.urlopen(done, timeout=10).read().decode()
        assert "Saved: 1 corrections" in done
        thread.join(timeout=10)
        assert not thread.is_alive()
    finally:
        server.shutdown()
        server.server_close()


def test_live_run_report_has_one_entry_per_tracked_cell(tmp_path, capsys) -> None:
    video = tmp_path / "clip.avi"
    frame = cv2.imread(str(FRAMES / "BloodImage_00017.jpg"))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, frame.shape[1::-1])
    for _ in range(4):
        writer.write(frame)
    writer.release()
    report = tmp_path / "live"
    argv = ["run", "--model", str(MODEL), "--camera", f"file:{video}", "--report", str(report)]
    assert main(argv) == 0
    data = json.loads((report / "report.json").read_text())
    assert data["count"]["cells"] == len(data["cells"]) == 1
    assert data["cells"][0]["frame"] == "0-3"
    assert len(FIGURE.findall((report / "report.html").read_text())) == 1


def test_report_renders_in_a_browser(run, tmp_path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium to render the page")
    shot = tmp_path / "report.png"
    page = (run["out"] / "report" / "report.html").as_uri()
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1000,1400",
            page,
        ],
        capture_output=True,
        timeout=90,
    )
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1400, 1000)
    assert img.std() > 10  # not a blank page


def test_frames_with_quality_flags_are_listed(tmp_path) -> None:
    from wbc_edge.edge_app.classify import CellResult, FrameResult
    from wbc_edge.edge_app.report import RunReport
    from wbc_edge.edge_app.sources.files import MediaFrame
    from wbc_edge.edge_app.summary import DifferentialCount

    meta = report_meta(load_bundle(MODEL).preprocessing, CLASSES)
    report = RunReport(tmp_path, meta, CLASSES)
    rgb = np.full((240, 320, 3), 200, np.uint8)
    cell = CellResult((10, 10, 60, 60), "MONOCYTE", 0.5, dict.fromkeys(CLASSES, 0.25), True)
    result = FrameResult([cell], crops=[rgb[:32, :32]], centres=[(35.0, 35.0)])
    result.quality = {"flags": ["blurred", "too dark"]}  # as issue 17's frames will carry
    report(MediaFrame("blurry.png", 0, rgb), result)
    report(MediaFrame("fine.png", 0, rgb), FrameResult([]))
    count = DifferentialCount(CLASSES, 0.6)
    count.add_frame([("MONOCYTE", 0.5)])
    count.add_frame([])
    html = report.write(count).read_text()
    assert "<td>blurry.png</td><td>0</td><td>blurred, too dark</td>" in html
    assert "fine.png" not in html and len(FIGURE.findall(html)) == 1


def test_review_of_a_folder_without_a_report_is_one_line(tmp_path, capsys) -> None:
    assert main(["review", str(tmp_path), "--no-browser", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"wbc-edge: {tmp_path / 'report.json'}: no report here (expected a folder "
        "written by --report)"
    )


def test_kept_crops_are_what_the_model_was_fed() -> None:
    from wbc_edge.core.decode import decode_image
    from wbc_edge.core.preprocess import normalise
    from wbc_edge.core.runtime import open_runtime
    from wbc_edge.edge_app.classify import Classifier

    bundle = load_bundle(MODEL)
    with open_runtime(bundle) as rt:
        classifier = Classifier(rt, "field")
        classifier.keep_crops = True
        rgb = decode_image(FRAMES / "BloodImage_00010.jpg")
        result = classifier.classify(rgb)
        fed = classifier.model_inputs(rgb)  # colour step, run scale, detector: as classify
    assert len(result.crops) == len(result.cells) == len(fed) == 2
    np.testing.assert_array_equal(normalise(np.stack(result.crops), bundle.preprocessing), fed)


def test_saved_frame_shows_the_quality_flags(tmp_path) -> None:
    from wbc_edge.edge_app.classify import FrameResult
    from wbc_edge.edge_app.sources.files import MediaFrame

    saver = AnnotatedFrames(tmp_path)
    rgb = np.full((240, 320, 3), 255, np.uint8)
    plain, flagged = FrameResult([]), FrameResult([])
    flagged.quality = {"flags": ["blurred"]}
    saver(MediaFrame("a.png", 0, rgb), plain)
    saver(MediaFrame("b.png", 0, rgb), flagged)
    a, b = (cv2.imread(str(tmp_path / n)) for n in ("a.jpg", "b.jpg"))
    assert (a[30:50] > 200).all() and (b[30:50] < 100).any()  # a second status line


def test_report_and_review_import_neither_tensorflow_nor_matplotlib(tmp_path) -> None:
    code = (
        "from wbc_edge.edge_app.cli import main\n"
        "import wbc_edge.edge_app.review, wbc_edge.edge_app.report, wbc_edge.edge_app.report_html\n"
        "import wbc_edge.edge_app.annotated\n"
        f"rc = main(['classify', '--model', {str(MODEL)!r}, '--source', {str(FRAMES)!r},\n"
        f"           '--save', {str(tmp_path / 'f')!r}, '--report', {str(tmp_path / 'r')!r}])\n"
    )
    run_child_without(code, ("tensorflow", "keras", "matplotlib"))
