"""`wbc-train colour-step`: a bundle trained without the colour step gets it, and says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tiny_bundle import tiny_bundle  # noqa: F401  (session fixture)

from wbc_edge.core.bundle import load_bundle
from wbc_edge.train.cli import main as train_main


def test_colour_step_measures_the_training_colours_and_clears_parity(
    tiny_bundle: Path,  # noqa: F811
    cell_tree,
    tmp_path: Path,
    capsys,
) -> None:
    root, _ = cell_tree
    bundle_dir = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    assert load_bundle(bundle_dir).preprocessing.colour.method == "none"
    assert train_main(["colour-step", str(bundle_dir), str(root)]) == 0
    assert "run wbc-convert for parity" in capsys.readouterr().out
    bundle = load_bundle(bundle_dir)
    spec = bundle.preprocessing
    assert spec.colour.method == "reference" and spec.colour.background[1] > spec.colour.red_cell[1]
    assert spec.nucleus.for_field().stain_threshold > spec.nucleus.stain_threshold
    assert all(a.status == "unchecked" for a in bundle.artifacts) and not bundle.parity
    notes = bundle.provenance["training"]["notes"]
    assert any("colour step added after training" in n for n in notes)
    written = json.loads((bundle_dir / "bundle.json").read_text())["preprocessing"]
    assert written["colour"]["method"] == "reference"
    assert train_main(["colour-step", str(bundle_dir), str(root)]) == 2  # only once


def test_colour_step_needs_images_with_glass_and_red_cells(
    tiny_bundle: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    import numpy as np
    from PIL import Image

    data = tmp_path / "data"
    for cls in ("A", "B"):
        (data / cls).mkdir(parents=True)
        Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(data / cls / "x.png")
    bundle_dir = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    assert train_main(["colour-step", str(bundle_dir), str(data)]) == 2
    assert load_bundle(bundle_dir).preprocessing.colour.method == "none"


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
