"""Decode any JPEG/PNG/BMP/TIFF into RGB uint8, whatever its mode, bit depth or EXIF rotation."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edge_app.errors import ImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def decode_image(source: Path | str | bytes) -> np.ndarray:
    """Return an (H, W, 3) RGB uint8 array; raise ImageError naming the file on failure."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ImageError(exc.strerror or "cannot open", name) from None
    try:
        with fp, Image.open(fp) as im:
            im.load()
            return to_rgb8(ImageOps.exif_transpose(im))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"not a readable image ({_short(exc)})", name) from None


def to_rgb8(im: Image.Image) -> np.ndarray:
    """Convert a PIL image of any mode (1, L, P, RGBA, I;16, I, F, CMYK…) to RGB uint8."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def is_image_file(path: Path) -> bool:
    """True for a file whose suffix names an image format we decode."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
