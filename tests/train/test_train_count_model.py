"""Training's side of the differential: another camera through the colour step, per-cell and
smear metrics, and the count model fitted out of fold and stored in the bundle."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from wbc_edge.core.bundle import CountModel, load_bundle
from wbc_edge.core.errors import BundleError
from wbc_edge.core.preprocess_spec import ColourSpec
from wbc_edge.train.augment import Augment, augment_batch
from wbc_edge.train.count_model import fit_count_model, write_count_model
from wbc_edge.train.out_of_fold import HeldOut
from wbc_edge.train.smears import MIXES, confusion_matrix, per_cell, per_image, smear_errors

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
SPEC = ColourSpec("reference", (207.0, 207.0, 203.0), (191.0, 170.0, 177.0), "run")


def reference_image() -> np.ndarray:
    """Half glass, half red cells, in the references' own colours."""
    img = np.empty((32, 32, 3), np.uint8)
    img[:, :16] = np.round(SPEC.background)
    img[:, 16:] = np.round(SPEC.red_cell)
    return img


def test_lamp_is_another_camera_mapped_back_by_the_colour_step() -> None:
    batch = np.stack([reference_image()] * 16)
    seen = augment_batch(batch, Augment.parse("lamp=0.3"), np.random.default_rng(0), SPEC)
    raw = augment_batch(batch, Augment.parse("lamp=0.3"), np.random.default_rng(0), None)
    moved = np.abs(raw.astype(int) - batch).reshape(16, -1).max(1)
    left = np.abs(seen.astype(int) - batch).reshape(16, -1).max(1)
    unclipped = raw.reshape(16, -1).max(1) < 250
    assert moved.max() > 20  # the cameras moved the colours a lot
    assert unclipped.sum() >= 8 and (left[unclipped] <= 2).all()  # the step maps them back
    assert (left[~unclipped] > 2).any()  # what a clipped camera lost stays lost


def test_lamp_parses_and_describes() -> None:
    aug = Augment.parse("flips,lamp=0.2")
    assert aug.lamp == 0.2 and "lamp=0.2" in aug.describe()


def held_out(seed: int = 0, cells_per_class: int = 6, copies: int = 5) -> HeldOut:
    """Cells of four classes, each with copies; neutrophils read as eosinophils 20 % of the time."""
    rng = np.random.default_rng(seed)
    labels, groups, probs = [], [], []
    for k in range(4):
        for c in range(cells_per_class):
            for _ in range(copies):
                p = np.full(4, 0.02)
                pred = 0 if k == 3 and rng.random() < 0.2 else k
                p[pred] = 0.94
                labels.append(k)
                groups.append(f"{CLASSES[k]}-{c}")
                probs.append(p)
    n = len(labels)
    return HeldOut(CLASSES, [f"x{i}.jpeg" for i in range(n)], np.array(labels), groups,
                   np.array(probs, np.float32))  # fmt: skip


def test_per_cell_gives_every_source_cell_one_vote() -> None:
    held = held_out()
    _, rec_img = per_image(held)
    acc_cell, rec_cell = per_cell(held)
    assert rec_cell[:3] == [1.0, 1.0, 1.0] and rec_img[:3] == [1.0, 1.0, 1.0]
    assert 0.6 < rec_cell[3] < 0.95
    assert acc_cell == pytest.approx(np.mean(rec_cell))  # equal cells per class


def test_smears_show_the_raw_bias_and_the_correction_removes_it() -> None:
    held = held_out(cells_per_class=40)
    conf = confusion_matrix(held_out(seed=1, cells_per_class=40))
    errors = smear_errors(held, conf, smears=30)
    assert set(errors) == set(MIXES)
    normal = errors["normal"]
    raw_bias = np.mean(normal["raw"]["EOSINOPHIL"])
    corrected_bias = np.mean(normal["corrected"]["EOSINOPHIL"])
    assert raw_bias > 6  # 20 % of 60 % neutrophils added to 3 % eosinophils
    assert abs(corrected_bias) < 3
    checked = smear_errors(held, conf, smears=4, intervals=3)["normal"]["covered"]
    assert all(len(v) == 3 and set(v) <= {0.0, 1.0} for v in checked.values())
    assert np.mean([np.mean(v) for v in checked.values()]) >= 0.75


def test_the_count_model_is_stored_and_checked(tmp_path, edge_bundle) -> None:
    import shutil

    bundle_dir = tmp_path / "b"
    shutil.copytree(edge_bundle, bundle_dir)
    held = held_out(cells_per_class=10)
    model, stats = fit_count_model(held, "synthetic out-of-fold cells")
    assert stats["ece_after"] <= stats["ece_before"]
    write_count_model(bundle_dir, model, stats)
    again = load_bundle(bundle_dir)
    assert again.count_model == model and (bundle_dir / "calibration.png").stat().st_size > 1000
    data = json.loads((bundle_dir / "bundle.json").read_text())
    data["count_model"]["temperature"] = 1e6
    data["count_model"]["confusion"] = [[1, 2], [3, 4]]
    (bundle_dir / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert "count_model.temperature" in str(err.value.problems)
    assert "count_model.confusion" in str(err.value.problems)


def test_the_runtime_calibrates_with_the_bundles_temperature(tmp_path, edge_bundle) -> None:
    import shutil

    from wbc_edge.core.bundle import save_bundle
    from wbc_edge.core.runtime import open_runtime
    from wbc_edge.core.temperature import calibrate

    bundle_dir = tmp_path / "b"
    shutil.copytree(edge_bundle, bundle_dir)
    bundle = load_bundle(bundle_dir)
    spec = bundle.preprocessing
    x = np.random.default_rng(0).random((3, spec.height, spec.width, 3), np.float32)
    plain = open_runtime(bundle).predict(x)
    k = len(bundle.classes)
    bundle.count_model = CountModel(2.0, np.eye(k, dtype=int).tolist(), "test", 50)
    save_bundle(bundle)
    warm = open_runtime(load_bundle(bundle_dir)).predict(x)
    np.testing.assert_allclose(warm, calibrate(plain, 2.0), atol=1e-5)
    assert dataclasses.is_dataclass(bundle.count_model)
