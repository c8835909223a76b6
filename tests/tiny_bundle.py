"""A tiny trained bundle for tests: a small Keras CNN on generated cell images, converted.

`build_tiny_bundle(workdir)` writes generated Kaggle-like images (4 classes x 2 source cells
x 3 copies), a grouped train/val split manifest, a 32x32 CNN trained for a few steps on the
train side through `core.preprocess`, and a bundle (`model.keras`, `split.csv`). With
`convert=True` (the default) a copy of it gets every format at every precision via
`convert.pipeline.convert_bundle`, parity included. It is built in a child process (the test
process never imports TensorFlow) and cached per session (per process): later calls return
the first call's bundle, whatever `workdir` they pass.

Use it from a test module:

    from tiny_bundle import build_tiny_bundle, tiny_bundle  # noqa: F401  (fixture)
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_cell_dataset

from wbc_edge.core.bundle import load_bundle, new_bundle, save_bundle
from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.dataset.splits import stratified_grouped, write_manifest
from wbc_edge.core.decode import decode_image
from wbc_edge.core.preprocess import preprocess
from wbc_edge.core.preprocess_spec import CropSpec, NucleusParams, PreprocessSpec

log = logging.getLogger(__name__)

# The generated images are half Kaggle's size: nucleus areas and radii scaled to match.
SPEC = PreprocessSpec(
    height=32,
    width=32,
    crop=CropSpec("nucleus", 100),
    nucleus=NucleusParams(min_area=100, merge_radius=5),
)
TRAIN_EPOCHS = 30
# The CNN's conv filters and hidden dense units; the committed edge fixture (tests/fixtures)
# is the same recipe with a narrower network, so its artifacts stay a few hundred KB.
WIDTHS = (16, 32, 32)
_CACHE: dict[bool, Path] = {}


def build_tiny_bundle(workdir: Path, convert: bool = True) -> Path:
    """The bundle folder: float only, or (convert=True) with every artifact and parity.

    Built in a child process, so the calling test process never imports TensorFlow (as on
    the device, where tflite-runtime must not share a process with it).
    """
    if convert in _CACHE and (_CACHE[convert] / "bundle.json").exists():
        return _CACHE[convert]
    if False in _CACHE:  # reuse the float bundle already trained this session
        workdir = _CACHE[False].parent
    paths = _build_in_child(Path(workdir), convert)
    _CACHE.update({key == "converted": Path(p) for key, p in paths.items()})
    return _CACHE[convert]


def _build_in_child(workdir: Path, convert: bool) -> dict[str, str]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import tiny_bundle; "
        "print(json.dumps(tiny_bundle.build_here(sys.argv[2], sys.argv[3] == '1')))"
    )
    here = str(Path(__file__).resolve().parent)
    args = [sys.executable, "-c", code, here, str(workdir), "1" if convert else "0"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"building the tiny bundle failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_here(
    workdir: Path | str, convert: bool, widths: tuple[int, int, int] = WIDTHS
) -> dict[str, str]:
    """Build in this process (TensorFlow imported here): {"float": dir[, "converted": dir]}."""
    workdir = Path(workdir)
    float_dir = workdir / "tiny"
    if not (float_dir / "bundle.json").exists():
        float_dir = _train_float_bundle(workdir, widths)
    paths = {"float": str(float_dir)}
    if convert:
        out = workdir / "tiny-converted"
        if out.exists():
            shutil.rmtree(out)
        _convert_all(float_dir, out)
        paths["converted"] = str(out)
    return paths


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session's tiny bundle with every format converted."""
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny-bundle"))


def _train_float_bundle(workdir: Path, widths: tuple[int, int, int]) -> Path:
    import keras

    data = workdir / "data"
    made = make_cell_dataset(data, cells_per_class=2, copies_per_cell=3, size=(160, 120), seed=7)
    cell_of = {r.path.as_posix(): r.cell_id for r in made}
    images = list_images(data)
    groups = [cell_of[r.path.as_posix()] for r in images.records]  # ground-truth source cells
    sides = stratified_grouped([r.label for r in images.records], groups, [0.5, 0.5], seed=0)
    root = workdir / "tiny"
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root / "split.csv", images.records, groups, sides)

    train = [r for r, s in zip(images.records, sides, strict=True) if s == "train"]
    x = np.stack([preprocess(decode_image(data / r.path), SPEC) for r in train])
    y = np.array([images.classes.index(r.label) for r in train])
    keras.utils.set_random_seed(0)
    model = _cnn(len(images.classes), widths)
    model.compile(keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=len(x), epochs=TRAIN_EPOCHS, verbose=0)
    model.save(root / "model.keras")

    bundle = new_bundle(
        root,
        "tiny-cnn",
        images.classes,
        SPEC,
        data=str(data.resolve()),
        split_manifest="split.csv",
        seed=0,
        model="tiny-cnn (tests/tiny_bundle.py)",
    )
    bundle.add_artifact("keras", "fp32", "model.keras")
    save_bundle(bundle)
    return root


def _cnn(n_classes: int, widths: tuple[int, int, int]):
    import keras
    from keras import layers

    inp = keras.Input((SPEC.height, SPEC.width, 3), name="image")
    x = layers.Conv2D(widths[0], 3, padding="same", activation="relu")(inp)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(widths[1], 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(widths[2], activation="relu")(x)
    out = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inp, out, name="tiny_cnn")


def cnn_macs(widths: tuple[int, int, int], n_classes: int = 4) -> int:
    """Multiply-accumulates of `_cnn` on SPEC's 32x32x3 input."""
    c1, c2, dense = widths
    flat = (SPEC.height // 4) * (SPEC.width // 4) * c2
    return 32 * 32 * c1 * 27 + 16 * 16 * c2 * 9 * c1 + flat * dense + dense * n_classes


def _convert_all(float_dir: Path, out: Path) -> None:
    from wbc_edge.convert.formats import FORMAT_NAMES
    from wbc_edge.convert.parity import Thresholds
    from wbc_edge.convert.pipeline import ConvertConfig, convert_bundle
    from wbc_edge.core.vocab import PRECISIONS

    config = ConvertConfig(
        formats=list(FORMAT_NAMES),
        precisions=list(PRECISIONS),
        calib_images=24,
        thresholds=Thresholds(min_agreement=0.75, max_drop=0.25),
        out=out,
    )
    result = convert_bundle(float_dir, config)
    log.info("tiny bundle converted:\n%s", result.table())
    assert load_bundle(out).artifacts, "the tiny bundle has no artifacts"


__all__ = ["WIDTHS", "build_here", "build_tiny_bundle", "cnn_macs", "tiny_bundle"]
