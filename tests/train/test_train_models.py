"""The model zoo: every model builds, trains two steps and saves a bundle that loads; the
normalisation each model declares equals keras.applications' preprocess_input; the journal's
new-layer learning-rate factor works."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from synthetic import make_cell_dataset

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.preprocess import normalise, preprocess_file
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.train.config import TrainConfig
from wbc_edge.train.models import MODELS, WeightsChoice, build_model, get_model_info
from wbc_edge.train.models.heads import LrScaledDense, fold_weights, head_scale
from wbc_edge.train.trainer import train_bundle

SIZE_DEPENDENT = {"vgg16", "alexnet"}  # a Flatten feeds their first dense layer


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-cells")
    make_cell_dataset(root, cells_per_class=2, copies_per_cell=3, size=(160, 120))
    return root, tmp_path_factory.mktemp("zoo-cache")


@pytest.mark.slow  # the zoo: about nine minutes on 2 cores (densenet201, inception: ~30 s each)
@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in MODELS])
def test_every_model_trains_two_steps_and_saves_a_loadable_bundle(name, cells, tmp_path):
    root, cache = cells
    info = get_model_info(name)
    size = max(32, info.min_size)
    cfg = TrainConfig(
        model=name, epochs=1, batch_size=4, input_size=size, crop_size=75, split="random",
        weights="none", verbose=0, run_eagerly=True, cache_dir=cache,
    )  # fmt: skip
    out = train_bundle(root, tmp_path / name, cfg, max_steps=2)

    bundle = load_bundle(out)  # checks the artifact's sha256
    assert bundle.preprocessing.height == size and bundle.preprocessing.norm == info.norm
    assert bundle.preprocessing.color_order == info.color_order
    report = json.loads((out / "report.json").read_text())
    assert report["timing"]["steps_per_epoch"] == 2 and report["epochs_run"] == 1
    model = keras.saving.load_model(bundle.artifact_path(bundle.find("keras", "fp32")))
    assert getattr(model, "optimizer", None) is None, "the bundle's model has no optimizer"
    custom = [type(la).__name__ for la in _all_layers(model) if not _is_builtin(la)]
    assert custom == [], "the saved model must load without wbc-edge code"
    image = next(root.glob("*/*.jpeg"))
    probs = keras.ops.convert_to_numpy(model(preprocess_file(image, bundle.preprocessing)[None]))
    assert probs.shape == (1, 4) and probs.sum() == pytest.approx(1.0, abs=1e-4)
    if name not in SIZE_DEPENDENT:
        assert model.count_params() == MODELS[name].params


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _is_builtin(layer):
    return type(layer).__module__.startswith("keras.") or isinstance(layer, keras.Model)


# keras.applications module whose preprocess_input the model's spec must reproduce
PREPROCESS_MODULES = {
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "densenet201": "densenet",
    "inception-resnet-v2": "inception_resnet_v2",
    "mobilenet-v2": "mobilenet_v2",
    "efficientnet-b0": "efficientnet",
}


@pytest.mark.parametrize("name", sorted(PREPROCESS_MODULES))
def test_spec_normalisation_equals_keras_preprocess_input(name):
    info = get_model_info(name)
    spec = PreprocessSpec(height=8, width=8, color_order=info.color_order, norm=info.norm)
    rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    model_order = rgb[..., ::-1] if info.color_order == "BGR" else rgb  # what prepare() gives
    ours = normalise(model_order, spec)
    module = getattr(keras.applications, PREPROCESS_MODULES[name])
    theirs = keras.ops.convert_to_numpy(module.preprocess_input(rgb.astype(np.float32)))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_mobilenet_v3_is_built_without_its_internal_rescaling():
    model = build_model("mobilenet-v3-small", 32, 4, WeightsChoice("none")).model
    assert not any(type(la).__name__ == "Rescaling" for la in _all_layers(model))
    assert get_model_info("mobilenet-v3-small").norm.scale == pytest.approx(1 / 127.5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_new_layer_learns_factor_times_faster(optimizer):
    factor, lr = 20.0, 1e-3
    x = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(8) % 3]
    steps = {}
    for name, scale in (("plain", 1.0), ("scaled", head_scale(optimizer, factor))):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((5,))
        layer = LrScaledDense(3, scale=scale)
        model = keras.Model(inputs, keras.layers.Softmax()(layer(inputs)))
        opt = keras.optimizers.SGD(lr) if optimizer == "sgd" else keras.optimizers.Adam(lr)
        model.compile(opt, "categorical_crossentropy")
        before = layer.folded_weights()[0]
        model.train_on_batch(x, y)
        steps[name] = layer.folded_weights()[0] - before
    ratio = np.abs(steps["scaled"]).sum() / np.abs(steps["plain"]).sum()
    assert ratio == pytest.approx(factor, rel=1e-2)


def test_folded_export_computes_what_the_training_model_computed():
    weights = WeightsChoice("none")
    trained = build_model("googlenet", 32, 4, weights, optimizer="sgdm", head_lr_factor=20)
    plain = build_model("googlenet", 32, 4, weights, plain=True)
    assert trained.head_scale == pytest.approx(20**0.5) and plain.head_scale is None
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    head = trained.model.get_layer("head_fc")
    head.bias.assign(np.full(4, 0.05, np.float32))  # nonzero, so the bias is folded too
    fold_weights(trained.model, plain.model)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(trained.model(x)),
        keras.ops.convert_to_numpy(plain.model(x)),
        atol=1e-5,
    )


def test_frozen_base_only_with_pretrained_weights(tmp_path):
    none = build_model("mobilenet-v3-small", 32, 4, WeightsChoice("none"))
    assert not none.frozen_base and "whole mobilenet-v3-small network trains" in none.notes[-1]
    # from scratch, batch-norm statistics must settle within a short run (Keras uses 0.999)
    base_layers = none.model.get_layer("MobileNetV3Small").layers
    bns = [x for x in base_layers if isinstance(x, keras.layers.BatchNormalization)]
    assert bns and all(x.momentum == 0.99 for x in bns) and "momentum 0.99" in none.notes[0]
    assert none.model.get_layer("MobileNetV3Small").trainable
    path = tmp_path / "base.weights.h5"
    none.model.get_layer("MobileNetV3Small").save_weights(path)
    local = build_model("mobilenet-v3-small", 32, 4, WeightsChoice("file", path))
    base = local.model.get_layer("MobileNetV3Small")
    assert local.frozen_base and not base.trainable and "base frozen" in local.notes[0]
    kept = [x.momentum for x in base.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert kept and all(m == 0.999 for m in kept)  # pretrained: Keras's own momentum kept
    np.testing.assert_array_equal(base.get_weights()[0], none.model.get_weights()[0])
    head = [w for w in local.model.trainable_weights if w.path.startswith("head")]
    assert len(local.model.trainable_weights) == len(head) == 4


def test_saved_journal_model_loads_without_importing_wbc_edge(tmp_path):
    built = build_model("alexnet", 67, 4, WeightsChoice("none"), plain=True)
    path = tmp_path / "m.keras"
    built.model.save(path)
    code = f"import keras; m = keras.saving.load_model({str(path)!r}); print(m.output.shape)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        cwd=tmp_path,  # not the repo: `train` is not importable by accident
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(None, 4)" in out.stdout
