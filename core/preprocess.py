"""The one preprocessing: RGB uint8 → colour-normalised → cell-centred crop → model input.

Training caches `prepare` (uint8, cheap to augment); everything that feeds a model calls
`preprocess` (= `prepare` then `normalise`). The bundle's `PreprocessSpec` drives both.
The colour step (`core.colour`) runs first, on the whole image, because the stain mask
that finds the nucleus depends on colour too. Field mode corrects a frame once and cuts its
cells from the corrected frame with `spec.after_colour()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wbc_edge.core.colour import apply_lut, correct_colour
from wbc_edge.core.decode import decode_image
from wbc_edge.core.errors import NoCellFound
from wbc_edge.core.nucleus import Nucleus, locate_cell
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.core.resample import shrink

_INTERPOLATION = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization of a model input: q = round(x / scale + zero_point)."""

    scale: float
    zero_point: int
    dtype: str  # "int8" or "uint8"


def crop_window(
    rgb: np.ndarray, cx: float, cy: float, size: float
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A square `size` window centred on (cx, cy), shifted to stay inside the image.

    Where the image is smaller than the window, the missing part is padded with edge pixels.
    Returns the crop and its box (x0, y0, x1, y1) in image pixels (may exceed the image then).
    """
    h, w = rgb.shape[:2]
    side = max(1, round(size))
    x0 = _clamp(round(cx - side / 2), 0, w - side)
    y0 = _clamp(round(cy - side / 2), 0, h - side)
    box = (x0, y0, x0 + side, y0 + side)
    pad = [(max(0, -y0), max(0, y0 + side - h)), (max(0, -x0), max(0, x0 + side - w)), (0, 0)]
    crop = rgb[max(0, y0) : y0 + side, max(0, x0) : x0 + side]
    if any(p != (0, 0) for p in pad):
        crop = np.pad(crop, pad, mode="edge")
    return crop, box


def corrected_window(
    rgb: np.ndarray, cx: float, cy: float, size: float, lut: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """`crop_window` with the frame's colour table (None: none) applied to the window only,
    and the window's top-left corner in the image."""
    window, box = crop_window(rgb, cx, cy, size)
    return (window if lut is None else apply_lut(window, lut)), box[:2]


def crop_cell(
    rgb: np.ndarray, spec: PreprocessSpec, scale: float = 1.0, nucleus: Nucleus | None = None
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Apply the spec's crop step. `scale` = image pixels per training-image pixel.

    With `crop.method == "nucleus"` and no nucleus given, the cell is located first; an image
    without a stained nucleus raises NoCellFound.
    """
    method = spec.crop.method
    if method == "none":
        return rgb, None
    h, w = rgb.shape[:2]
    if method == "center":
        return crop_window(rgb, w / 2, h / 2, spec.crop.size * scale)
    if nucleus is None:
        nucleus = locate_cell(rgb, spec.nucleus, scale)
    if nucleus is None:
        raise NoCellFound("no stained white-cell nucleus found")
    return crop_window(rgb, nucleus.cx, nucleus.cy, spec.crop.size * scale)


def resize(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Resize to the model's input size with the spec's interpolation."""
    if rgb.shape[:2] == (spec.height, spec.width):
        return rgb
    shrinking = rgb.shape[0] >= spec.height and rgb.shape[1] >= spec.width
    if spec.interpolation == "area" and shrinking:
        return shrink(rgb, (spec.width, spec.height))
    interp = _INTERPOLATION[spec.interpolation]
    if spec.interpolation == "area":
        interp = cv2.INTER_LINEAR  # INTER_AREA is meant for shrinking
    return cv2.resize(rgb, (spec.width, spec.height), interpolation=interp)


def prepare(
    rgb: np.ndarray,
    spec: PreprocessSpec,
    scale: float = 1.0,
    nucleus: Nucleus | None = None,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """RGB uint8 image → colour-normalised, cropped, resized uint8 (H, W, 3) in model order.

    `lut`: the colour table of the whole frame (`core.colour.colour_table`), applied to
    the crop only, which gives the same pixels as correcting the frame first; `spec` is then
    the spec after its colour step (`after_colour()`) and the nucleus is given.
    """
    rgb, _ = correct_colour(rgb, spec.colour)
    crop, _ = crop_cell(rgb, spec, scale, nucleus)
    if lut is not None:
        crop = apply_lut(crop, lut)
    return finish_crop(crop, spec)


def finish_crop(crop: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The last steps of `prepare`: a cut, colour-corrected crop → uint8 at the model's size
    and in its colour order (for a caller that has cut the window itself)."""
    out = resize(crop, spec)
    if spec.color_order == "BGR":
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def normalise(batch: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 (…, H, W, 3) in model colour order → float32 per the spec's norm."""
    x = batch.astype(np.float32)
    norm = spec.norm
    if norm.kind == "scale":
        return x * np.float32(norm.scale) + np.float32(norm.offset)
    mean, std = np.asarray(norm.mean, np.float32), np.asarray(norm.std, np.float32)
    if spec.color_order == "BGR":
        mean, std = mean[::-1], std[::-1]
    return (x / np.float32(255.0) - mean) / std


def quantize(x: np.ndarray, quant: QuantParams) -> np.ndarray:
    """float32 model input → integer input of a quantized model."""
    info = np.iinfo(quant.dtype)
    q = np.round(x / np.float32(quant.scale)) + quant.zero_point
    return np.clip(q, info.min, info.max).astype(quant.dtype)


def preprocess(
    rgb: np.ndarray,
    spec: PreprocessSpec,
    scale: float = 1.0,
    nucleus: Nucleus | None = None,
    quant: QuantParams | None = None,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """The whole chain for one decoded image: float32 (H, W, 3), or quantized if `quant`."""
    x = normalise(prepare(rgb, spec, scale, nucleus, lut), spec)
    return quantize(x, quant) if quant is not None else x


def preprocess_file(path: Path | str, spec: PreprocessSpec) -> np.ndarray:
    """Decode a file and preprocess it (a cell image at training scale)."""
    return preprocess(decode_image(path), spec)


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(v, hi)) if hi >= lo else (lo + hi) // 2
