"""`wbc-train card`: the card is built from recorded numbers; the shipped one is current."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from repo_paths import REPO

from wbc_edge.core.errors import DataError
from wbc_edge.train.cli import main as train_main
from wbc_edge.train.model_card import CARD_FILE, write_card

DEFAULT = REPO / "models" / "default"


@pytest.fixture()
def default_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEFAULT, tmp_path / "default"))


def test_card_quotes_the_kfold_report_and_the_parity_record(default_copy: Path):
    card = write_card(default_copy, default_copy / "cv").read_text()
    kfold = json.loads((default_copy / "cv" / "report.json").read_text())["kfold"]
    mean, sd = kfold["summary"]["mean"], kfold["summary"]["sd"]
    assert f"accuracy **{mean['accuracy']:.3f} ± {sd['accuracy']:.3f}**" in card
    for cls in json.loads((default_copy / "bundle.json").read_text())["classes"]:
        key = f"per_class.{cls}.recall"
        assert f"{mean[key]:.3f} ± {sd[key]:.3f}" in card
    for fold in kfold["folds"]:
        assert f"| {fold['fold']} | {fold['metrics']['n']} |" in card
    parity = json.loads((default_copy / "bundle.json").read_text())["parity"]["artifacts"]
    for key, art in parity.items():
        assert f"| {key} | `{art['file']}` |" in card
        assert f"| {art['agreement']:.4f} | {art['drop_points']:+.2f} | {art['status']} |" in card
    assert "not a diagnostic device" in card and "## Known failure modes" in card


def test_card_without_cv_or_speed_has_no_cv_section(default_copy: Path):
    card = write_card(default_copy).read_text()
    assert "grouped 5-fold (mean ± sd" not in card and "## Speed" not in card
    assert "## Converted artifacts and their parity" in card


def test_shipped_card_matches_a_regenerated_one(default_copy: Path):
    """MODEL_CARD.md in models/default was written by `wbc-train card` from the files beside
    it; regenerating it must give the same text (no figure edited by hand or left stale)."""
    regenerated = write_card(default_copy, default_copy / "cv", default_copy / "speed.txt")
    assert regenerated.read_text() == (DEFAULT / CARD_FILE).read_text()


def test_card_of_a_folder_without_kfold_report_is_a_one_line_error(default_copy: Path, capsys):
    with pytest.raises(DataError, match="not the report of a `wbc-train --kfold` run"):
        write_card(default_copy, default_copy)  # report.json of a single run, no "kfold"
    assert train_main(["card", str(default_copy), "--cv", str(default_copy)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "report.json" in err[0]


def test_a_malformed_kfold_report_is_one_error_naming_the_file_with_every_problem(
    default_copy: Path,
):
    file = default_copy / "cv" / "report.json"
    report = json.loads(file.read_text())
    report["kfold"]["k"] = "five"
    del report["kfold"]["folds"][1]["metrics"]["n"]
    report["kfold"]["folds"][2]["metrics"]["confusion_matrix"] = [[1, 2], "3"]
    del report["kfold"]["summary"]["sd"]
    file.write_text(json.dumps(report))
    with pytest.raises(DataError) as err:
        write_card(default_copy, default_copy / "cv")
    assert err.value.path == file
    assert set(err.value.problems) == {
        "kfold.k: expected an integer, got 'five'",
        "kfold.folds[1].metrics.n: missing",
        "kfold.folds[2].metrics.confusion_matrix[1]: expected a list, got '3'",
        "kfold.summary.sd: missing",
    }
    assert str(err.value).count(str(file)) == 4  # one line per problem, each naming the file
