"""`wbc-train adapt`'s reader of reviewed reports (`train.lab_cells`): report.json and review.json
are decoded by their shapes in the core; a file that is not one is one error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wbc_edge.core.errors import DataError
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.train.lab_cells import read_reviewed

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE"]


def _report() -> dict:
    """A well-formed report.json of a run that found no cells."""
    meta = {"classes": CLASSES, "model": "m", "bundle": "b", "bundle_sha256": "0" * 64,
            "runtime": "onnxruntime", "mode": "cell", "source": "s", "date": "2026-01-01",
            "scale": 1.0, "threshold": 0.6}  # fmt: skip
    count = {"cells": 0, "frames": 1, "frames_without_white_cell": 1, "errors": 0,
             "uncertain": 0, "threshold": 0.6, "rows": []}  # fmt: skip
    return {"meta": meta, "count": count, "cells": []}


def test_a_well_formed_report_of_no_cells_gives_no_cells(tmp_path: Path):
    review = {"corrections": {}, "count": {"cells": 0, "uncertain": 0, "rows": []}}
    cells = read_reviewed([_folder(tmp_path, _report(), review)], CLASSES, PreprocessSpec())
    assert len(cells.labels) == 0 and cells.reports[0]["signed"] is False


def _folder(tmp_path: Path, report: dict, review: dict) -> Path:
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps(report))
    (folder / "review.json").write_text(json.dumps(review))
    return folder


def test_a_malformed_report_is_one_error_naming_the_file_with_every_problem(tmp_path: Path):
    report = {
        "meta": {"classes": CLASSES, "model": "m"},  # bundle, date, scale, ... missing
        "count": "12 cells",
        "cells": [{"id": "1", "label": 3}],
    }
    folder = _folder(tmp_path, report, {"corrections": {}, "count": {}})
    with pytest.raises(DataError) as err:
        read_reviewed([folder], CLASSES, PreprocessSpec())
    assert err.value.path == folder / "report.json"
    text = str(err.value)
    for problem in (
        "meta.bundle_sha256: missing",
        "count: expected an object, got '12 cells'",
        "cells[0].id: expected an integer, got '1'",
        "cells[0].label: expected a string, got 3",
        "cells[0].crop: missing",
    ):
        assert problem in text
    assert len(err.value.problems) > 5  # every problem, not the first


def test_a_malformed_review_names_the_review(tmp_path: Path):
    folder = _folder(tmp_path, _report(), {"corrections": ["1"], "confirmed": "all"})
    with pytest.raises(DataError) as err:
        read_reviewed([folder], CLASSES, PreprocessSpec())
    assert err.value.path == folder / "review.json"
    assert set(err.value.problems) == {
        "corrections: expected an object, got a list",
        "confirmed: expected a list, got 'all'",
        "count: missing",
    }
