"""NaN and Infinity: refused in a bundle at load, an error record (never a label) from a model."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from repo_paths import REPO

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.decode import decode_image
from wbc_edge.core.errors import BundleError
from wbc_edge.edge_app import exit_codes
from wbc_edge.edge_app.classify import Classifier, classify_media
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.sources.files import MediaFrame

pytestmark = pytest.mark.edge

ROOT = REPO
DEFAULT = ROOT / "models" / "default"
FRAME = ROOT / "samples" / "frames" / "BloodImage_00000.jpg"  # one white cell


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d["preprocessing"]["norm"].update(scale=math.nan), "preprocessing.norm.scale"),
        (lambda d: d["preprocessing"]["norm"].update(std=[1, math.inf, 1]), "norm.std[1]"),
        (lambda d: d["preprocessing"]["nucleus"].update(stain_threshold=-math.inf), "nucleus"),
    ],
)
def test_bundle_with_nan_or_inf_is_refused_naming_the_key(tmp_path: Path, edit, key, capsys):
    data = json.loads((DEFAULT / "bundle.json").read_text())
    edit(data)
    (tmp_path / "bundle.json").write_text(json.dumps(data))  # json writes bare NaN/Infinity
    with pytest.raises(
        BundleError, match=rf"bundle.json: .*{re.escape(key)}.*: expected a finite number, got"
    ):
        load_bundle(tmp_path, verify=False)
    rc = main(["classify", "--model", str(tmp_path), "--source", str(FRAME)])
    err = capsys.readouterr().err
    assert rc == exit_codes.USER_ERROR and err.count("\n") == 1 and "Traceback" not in err


class NanRuntime:
    """The default bundle's contract with a model that answers NaN for chosen rows."""

    name, precision = "fake", "fp32"

    def __init__(self, bad_rows: set[int] | None = None, value: float = math.nan) -> None:
        self.bundle = load_bundle(DEFAULT, verify=False)
        self.bad_rows, self.value = bad_rows, value

    def predict(self, batch: np.ndarray) -> np.ndarray:
        n = len(self.bundle.classes)
        out = np.full((len(batch), n), 1.0 / n, np.float32)
        out[:, 0] = 0.7
        out[:, 1:] = 0.1
        for i in range(len(batch)):
            if self.bad_rows is None or i in self.bad_rows:
                out[i] = self.value
        return out


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_model_output_nan_is_an_error_record_never_a_label(tmp_path: Path, value) -> None:
    rgb = decode_image(FRAME)
    classifier = Classifier(NanRuntime(value=value), "field")
    result = classifier.classify(rgb)
    assert result.cells == [] and len(result.failed) == 1
    out = tmp_path / "o.jsonl"
    with JsonlWriter(out) as writer:
        count = classify_media([MediaFrame(str(FRAME), 0, rgb)], classifier, writer)
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(record) == {"source", "error"} and "not a finite number" in record["error"]
    assert "label" not in record and "NaN" not in out.read_text().replace("(NaN or", "")
    assert count.cells == 0 and count.errors == 1 and count.frames == 0
    assert exit_codes.exit_code(count) == exit_codes.ALL_FAILED


def test_only_the_nan_cell_fails_in_a_frame_of_two(tmp_path: Path) -> None:
    rgb = decode_image(FRAME)
    two = np.concatenate([rgb, rgb], axis=1)  # the same cell twice, side by side
    classifier = Classifier(NanRuntime(bad_rows={1}), "field")
    out = tmp_path / "o.jsonl"
    with JsonlWriter(out) as writer:
        count = classify_media([MediaFrame("two.png", 0, two)], classifier, writer)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted("error" in r for r in records) == [False, True]
    good = next(r for r in records if "label" in r)
    assert good["label"] == classifier.classes[0] and good["uncertain"] is False
    assert count.cells == 1 and count.errors == 1 and count.frames == 1
    assert exit_codes.exit_code(count) == exit_codes.SOME_FAILED


def test_saving_a_bundle_with_nan_is_refused(tmp_path: Path) -> None:
    from wbc_edge.core.bundle import save_bundle

    shutil.copy(DEFAULT / "bundle.json", tmp_path / "bundle.json")
    bundle = load_bundle(tmp_path, verify=False)
    bundle.add_metrics("val", {"loss": math.nan})
    with pytest.raises(BundleError, match=r"metrics\[\d+\]\.values\.loss"):
        save_bundle(bundle)
