"""Issue 28: no output (`--save`, `--report`, `calibrate --out/--picture`, review's files) ever
replaces an input or deletes a file wbc-edge did not write; writes are atomic; a folder that
cannot be written is one line and exit 2; a re-run into a reviewed report is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from edge_setup import FRAMES, MODEL, needs_runtime

from wbc_edge.core.errors import WbcError
from wbc_edge.core.safe_io import atomic_write
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.output_folder import MANIFEST, OutputFolder
from wbc_edge.edge_app.report_html import NOT_A_CELL
from wbc_edge.edge_app.review import apply_review

pytestmark = [pytest.mark.edge, needs_runtime]


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Two sample frames, copied: the user's own pictures."""
    out = tmp_path / "photos"
    out.mkdir()
    for name in ("BloodImage_00000.jpg", "BloodImage_00010.jpg"):
        shutil.copyfile(FRAMES / name, out / name)
    return out


def classify(*extra: str, source: Path) -> int:
    return main(["classify", "--model", str(MODEL), "--source", str(source), *extra])


def test_save_into_the_source_folder_keeps_every_original(photos: Path, capsys) -> None:
    before = digests(photos)
    assert classify("--save", str(photos), source=photos) == 0
    after = digests(photos)
    assert all(after[name] == digest for name, digest in before.items())  # nothing replaced
    beside = sorted(n for n in after if n not in before and n.endswith(".jpg"))
    assert beside == ["BloodImage_00000-2.jpg", "BloodImage_00010-2.jpg"]
    assert "annotated frames: 2" in capsys.readouterr().out


def test_save_to_a_folder_that_cannot_be_written_is_one_line(photos, tmp_path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert classify("--save", str(blocker / "out"), source=photos) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"wbc-edge: {blocker / 'out'}: cannot write here") and "\n" not in err


def test_report_into_a_folder_keeps_the_users_own_files(photos, tmp_path) -> None:
    report = tmp_path / "report"
    (report / "cells").mkdir(parents=True)
    (report / "cells" / "00001.png").write_bytes(b"my own picture")
    (report / "notes.txt").write_text("mine")
    assert classify("--report", str(report), source=photos) == 0
    assert (report / "cells" / "00001.png").read_bytes() == b"my own picture"
    assert (report / "notes.txt").read_text() == "mine"
    data = json.loads((report / "report.json").read_text())
    assert data["cells"][0]["crop"] == "cells/00001-2.png"  # written beside the user's file
    # a second run replaces its own crops (listed in the manifest), never the user's
    assert classify("--report", str(report), source=photos) == 0
    assert (report / "cells" / "00001.png").read_bytes() == b"my own picture"
    written = json.loads((report / MANIFEST).read_text())["written"]
    assert "cells/00001.png" not in written and "report.json" in written


def test_rerun_into_a_reviewed_report_is_refused(photos, tmp_path, capsys) -> None:
    report = tmp_path / "report"
    assert classify("--report", str(report), source=photos) == 0
    apply_review(report, {"1": NOT_A_CELL})
    before = digests(report)
    capsys.readouterr()
    assert classify("--report", str(report), source=photos) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a technician's review (review.json, count_reviewed.csv)" in err
    assert "move the review files out to start afresh" in err and "\n" not in err
    assert digests(report) == before  # the review, its crops and the count all kept


def test_report_over_a_foreign_report_json_is_refused(photos, tmp_path, capsys) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.json").write_text('{"mine": true}')
    assert classify("--report", str(report), source=photos) == 2
    assert "holds files wbc-edge did not write (report.json)" in capsys.readouterr().err
    assert (report / "report.json").read_text() == '{"mine": true}'


def test_review_save_keeps_hand_placed_corrections(photos, tmp_path) -> None:
    report = tmp_path / "report"
    assert classify("--report", str(report), source=photos) == 0
    mine = report / "corrections" / "LYMPHOCYTE" / "placed-by-hand.jpg"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"hand")
    (report / "rejected").mkdir()
    (report / "rejected" / "hand.jpg").write_bytes(b"hand")
    apply_review(report, {"1": NOT_A_CELL})
    apply_review(
        report, {"1": json.loads((report / "report.json").read_text())["cells"][0]["label"]}
    )
    assert (
        mine.read_bytes() == b"hand" and (report / "rejected" / "hand.jpg").read_bytes() == b"hand"
    )
    assert [p.name for p in (report / "rejected").iterdir()] == ["hand.jpg"]  # ours removed


def test_calibrate_never_writes_onto_its_inputs(photos, tmp_path, capsys) -> None:
    before = digests(photos)
    base = ["calibrate", "--model", str(MODEL), "--source", str(photos)]
    image = photos / "BloodImage_00010.jpg"
    cases = [
        ["--out", str(image)],  # the profile onto an input
        ["--out", str(tmp_path / "p.json"), "--picture", str(image)],  # the picture onto one
    ]
    for extra in cases:
        assert main(base + extra) == 2
        assert "is one of the inputs: refusing to overwrite it" in capsys.readouterr().err
    shutil.copyfile(image, photos / "lab.png")  # the default picture beside --out is an input
    before = digests(photos)
    assert main([*base, "--out", str(photos / "lab.json")]) == 2
    assert "lab.png: is one of the inputs" in capsys.readouterr().err
    other = tmp_path / "notes.json"
    other.write_text("[1, 2]")
    assert main([*base, "--out", str(other)]) == 2
    assert "is not a camera profile: refusing to overwrite it" in capsys.readouterr().err
    assert digests(photos) == before and other.read_text() == "[1, 2]"


def test_atomic_write_leaves_the_old_file_or_the_new(tmp_path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # the rename onto a folder fails: nothing half-written is left behind
    with pytest.raises(WbcError, match="cannot write"):
        atomic_write(target, b"data")
    assert target.is_dir() and list(tmp_path.iterdir()) == [target]
    atomic_write(tmp_path / "f.txt", "one")
    atomic_write(tmp_path / "f.txt", "two")
    assert (tmp_path / "f.txt").read_text() == "two" and len(list(tmp_path.iterdir())) == 2


def test_output_folder_removes_only_what_it_wrote(tmp_path) -> None:
    out = OutputFolder(tmp_path, inputs=[])
    out.write("a.txt", "ours")
    (tmp_path / "b.txt").write_text("theirs")
    out.save()
    again = OutputFolder(tmp_path)
    assert again.remove("a.txt") and not (tmp_path / "a.txt").exists()
    assert not again.remove("b.txt") and (tmp_path / "b.txt").read_text() == "theirs"
    with pytest.raises(WbcError, match="was not written by wbc-edge"):
        again.write("b.txt", "over")
    assert again.write_beside("b.txt", "new").name == "b-2.txt"
