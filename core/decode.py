"""Decode any JPEG/PNG/BMP/TIFF into RGB uint8, whatever its mode, bit depth or EXIF rotation.

This is the one decode path of every stage: whatever a file holds (a header claiming 100000 x
100000 pixels, flipped bytes, a truncated stream), the result is an array or an `ImageError`
naming the file, never another exception. Images over `MAX_PIXELS` are refused before their
pixels are decoded: a Raspberry Pi has 1-8 GB. `decode_stain_image` also refuses grey images,
which cannot show the stain that finds a white cell.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from wbc_edge.core.errors import ImageError, WbcError, first_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Largest image decoded, in pixels; a larger file is refused with its size. Measured peak memory
# of `wbc-edge classify` on one image (x86, LiteRT): 12 MP 0.30 GB, 48 MP 0.93 GB, so 50 MP fits a
# 2 GB Pi; on a 1 GB Pi set WBC_MAX_PIXELS=20000000. Callers may pass `max_pixels`.
MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "WBC_MAX_PIXELS"
MAX_PIXELS_LIMIT = 1_000_000_000  # the most WBC_MAX_PIXELS may allow (3 GB an RGB image)
GREY_TOLERANCE = 6  # max |R-G|, |G-B| (0..255) of a sampled pixel for the image to count as grey
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def decode_image(source: Path | str | bytes, max_pixels: int | None = None) -> np.ndarray:
    """Return an (H, W, 3) RGB uint8 array; raise ImageError naming the file on failure."""
    return _decode(source, max_pixels)[0]


def decode_stain_image(source: Path | str | bytes, max_pixels: int | None = None) -> np.ndarray:
    """`decode_image`, refusing grey-scale images (no stain colour, so no cell to find)."""
    rgb, mode = _decode(source, max_pixels)
    if mode in _GREY_MODES or is_grey(rgb):
        raise ImageError("cannot analyse: not a colour stain image (grey-scale)", _name(source))
    return rgb


def is_grey(rgb: np.ndarray) -> bool:
    """True when (a sample of) the pixels have equal channels within GREY_TOLERANCE."""
    step = max(1, int(max(rgb.shape[:2]) // 256))
    sample = rgb[::step, ::step].astype(np.int16)
    rg = np.abs(sample[..., 0] - sample[..., 1]).max(initial=0)
    gb = np.abs(sample[..., 1] - sample[..., 2]).max(initial=0)
    return max(int(rg), int(gb)) <= GREY_TOLERANCE


def check_pixels(width: int, height: int, name: str, max_pixels: int | None = None) -> None:
    """Raise ImageError when width x height is over the pixel budget (a video frame, too)."""
    limit = pixel_budget() if max_pixels is None else max_pixels
    if width * height > limit:
        raise ImageError(
            f"image is too large: {width}x{height} pixels ({_mp(width * height)}), over the "
            f"{_mp(limit)} this device decodes",
            name,
        )


def pixel_budget() -> int:
    """MAX_PIXELS, or the WBC_MAX_PIXELS environment variable when it is set."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return MAX_PIXELS
    try:
        value = int(float(text))
    except (ValueError, OverflowError):  # "inf" is a float no int can hold
        value = 0
    if not 1 <= value <= MAX_PIXELS_LIMIT:
        raise WbcError(
            f"{MAX_PIXELS_ENV}={text!r} is not a positive number of pixels (at most "
            f"{MAX_PIXELS_LIMIT:,})"
        )
    return value


def _decode(source: Path | str | bytes, max_pixels: int | None) -> tuple[np.ndarray, str]:
    name = _name(source)
    max_pixels = pixel_budget() if max_pixels is None else max_pixels
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ImageError(exc.strerror or "cannot open", name) from None
    try:
        with fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb and broken-tag warnings: an error or nothing
            with Image.open(fp) as im:
                check_pixels(*im.size, name, max_pixels)
                im.load()
                return to_rgb8(ImageOps.exif_transpose(im)), im.mode
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{_mp(int(pixels[1]))}" if pixels else "over PIL's limit"
        raise ImageError(f"image is too large: its header claims {size}", name) from None
    except Exception as exc:  # a hostile file may make any decoder raise anything
        raise ImageError(f"not a readable image ({_short(exc)})", name) from None


def _name(source: Path | str | bytes) -> str:
    return "<bytes>" if isinstance(source, bytes) else str(source)


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:,.1f} MP"


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
    text = re.sub(r" ?<_io\.\w+ name=[^>]*>", "", first_line(exc, 1000))  # PIL names the file
    return text[:120]
