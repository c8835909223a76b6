"""Random per-image augmentation of uint8 cell crops, in numpy and OpenCV (no TensorFlow).

Geometry: flips, 90° rotations, a small zoom and shift (mirrored borders, so no black corners).
Colour, for stain and illumination variation between labs: hue rotation, saturation and
brightness scaling, per-channel gains and a gamma (what the colour normalisation of the
preprocessing leaves of a camera's white balance and exposure); and a slight Gaussian blur
for focus. Written as a spec string:

    flips,rot90,scale=0.1,shift=0.05,hue=8,sat=0.2,bright=0.15,gain=0.05,gamma=0.1,blur=0.3

`lamp=AMOUNT` is another camera seen through the colour step, for a model whose bundle has
one: per-channel gains (1 ± AMOUNT), a gamma and an exposure are applied to the crop as the
camera would apply them to the raw frame, then the run's colour table (`core.colour`), built
from the training data's pooled references as that camera would show them, maps it back. The
model learns what the step leaves of a camera, as the device will show it.

Hue and saturation do not depend on the channel order (a hue rotation drawn symmetrically is
the same distribution for RGB and BGR), so one function serves every model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from wbc_edge.core.colour import CLIPPED, Illumination, apply_lut, colour_lut
from wbc_edge.core.errors import WbcError
from wbc_edge.core.preprocess_spec import ColourSpec

DEFAULT_AUGMENT = "flips,rot90,shift=0.1"
# name → (default when given without a value, largest allowed value, meaning)
_AMOUNTS: dict[str, tuple[float, float, str]] = {
    "shift": (0.1, 0.5, "largest shift, fraction of the side"),
    "scale": (0.1, 0.5, "largest zoom in or out, fraction"),
    "hue": (8.0, 90.0, "largest hue rotation, degrees"),
    "sat": (0.2, 1.0, "largest saturation change, fraction"),
    "bright": (0.15, 1.0, "largest brightness change, fraction"),
    "gain": (0.05, 0.5, "largest gain change of each channel on its own, fraction"),
    "gamma": (0.1, 0.5, "largest change of the exponent of a gamma curve, fraction"),
    "blur": (0.3, 1.0, "probability of a Gaussian blur (sigma 0.5 to 1.2 px)"),
    "lamp": (0.2, 0.5, "another camera before the colour step: largest gain change, fraction"),
}


@dataclass(frozen=True)
class Augment:
    """Which transforms to draw, and how strong (0 = off); see the module docstring."""

    hflip: bool = False
    vflip: bool = False
    rot90: bool = False
    shift: float = 0.0
    scale: float = 0.0
    hue: float = 0.0
    sat: float = 0.0
    bright: float = 0.0
    gain: float = 0.0
    gamma: float = 0.0
    blur: float = 0.0
    lamp: float = 0.0

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    @property
    def colour(self) -> bool:
        return bool(self.hue or self.sat or self.bright)

    @property
    def camera(self) -> bool:
        return bool(self.gain or self.gamma)

    @classmethod
    def parse(cls, text: str | None) -> Augment:
        """'flips,rot90,shift=0.1' → Augment; 'none' or '' → no augmentation.

        Tokens: hflip, vflip, flips (both), rot90, and NAME[=AMOUNT] for shift, scale, hue,
        sat, bright, gain, gamma, blur, lamp (AMOUNT defaults as in `_AMOUNTS`)."""
        if not text or text == "none":
            return cls()
        kw: dict[str, object] = {}
        for token in (t.strip() for t in text.split(",") if t.strip()):
            key, _, value = token.partition("=")
            if key == "flips" and not value:
                kw.update(hflip=True, vflip=True)
            elif key in ("hflip", "vflip", "rot90") and not value:
                kw[key] = True
            elif key in _AMOUNTS:
                kw[key] = _amount(key, value)
            else:
                names = ", ".join(f"{k}=AMOUNT" for k in _AMOUNTS)
                raise WbcError(
                    f"unknown augmentation {token!r} (use hflip, vflip, flips, rot90, {names} "
                    "or none)"
                )
        return cls(**kw)  # type: ignore[arg-type]

    def describe(self) -> str:
        parts = [n for n in ("hflip", "vflip", "rot90") if getattr(self, n)]
        parts += [f"{n}={getattr(self, n):g}" for n in _AMOUNTS if getattr(self, n)]
        return ",".join(parts) or "none"


def _amount(key: str, value: str) -> float:
    default, limit, meaning = _AMOUNTS[key]
    try:
        amount = float(value) if value else default
    except ValueError:
        raise WbcError(f"augment {key}={value!r}: not a number ({meaning})") from None
    if not 0 <= amount <= limit:
        raise WbcError(f"augment {key} must be in [0, {limit:g}], got {value} ({meaning})")
    return amount


def augment_batch(
    batch: np.ndarray,
    aug: Augment,
    rng: np.random.Generator,
    colour: ColourSpec | None = None,
) -> np.ndarray:
    """Augmented copy of a uint8 (N, H, W, 3) batch of square images (RGB order for `lamp`).

    `colour`: the model's colour step, which `lamp` passes each new camera through."""
    out = batch.copy()
    n, h, w = batch.shape[:3]
    if aug.hflip:
        flip = rng.random(n) < 0.5
        out[flip] = out[flip, :, ::-1]
    if aug.vflip:
        flip = rng.random(n) < 0.5
        out[flip] = out[flip, ::-1]
    if aug.rot90 and h == w:
        turns = rng.integers(0, 4, n)
        for k in (1, 2, 3):
            sel = turns == k
            if sel.any():
                out[sel] = np.rot90(out[sel], k, axes=(1, 2))
    if aug.scale > 0:
        out = _zoom_shift(out, aug.scale, aug.shift, rng)
    elif aug.shift > 0:
        out = _shift(out, aug.shift, rng)
    if aug.lamp > 0:
        out = _lamp(out, aug.lamp, rng, colour)
    if aug.colour:
        out = _colour(out, aug, rng)
    if aug.camera:
        out = _camera(out, aug, rng)
    if aug.blur > 0:
        out = _blur(out, aug.blur, rng)
    return out


def _shift(batch: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Translate each image by up to `fraction` of its side, filling with mirrored edges."""
    n, h, w = batch.shape[:3]
    ph, pw = round(fraction * h), round(fraction * w)
    if ph == 0 and pw == 0:
        return batch
    padded = np.pad(batch, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="reflect")
    dy = rng.integers(0, 2 * ph + 1, n)
    dx = rng.integers(0, 2 * pw + 1, n)
    return np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def _zoom_shift(
    batch: np.ndarray, scale: float, shift: float, rng: np.random.Generator
) -> np.ndarray:
    """Zoom each image about its centre by a factor in [1 - scale, 1 + scale] and translate it
    by up to `shift` of its side (one affine warp, bilinear, mirrored borders)."""
    n, h, w = batch.shape[:3]
    zoom = rng.uniform(1 - scale, 1 + scale, n)
    dx = rng.uniform(-shift, shift, n) * w
    dy = rng.uniform(-shift, shift, n) * h
    out = np.empty_like(batch)
    for i in range(n):
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, float(zoom[i]))
        m[:, 2] += (dx[i], dy[i])
        out[i] = cv2.warpAffine(
            batch[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
    return out


def _colour(batch: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """Hue rotation (degrees), saturation and brightness scaling, per image, in HSV."""
    n = len(batch)
    hue = rng.uniform(-aug.hue, aug.hue, n) / 2.0  # OpenCV's uint8 hue runs 0..179
    sat = rng.uniform(1 - aug.sat, 1 + aug.sat, n)
    val = rng.uniform(1 - aug.bright, 1 + aug.bright, n)
    out = np.empty_like(batch)
    for i in range(n):
        hsv = cv2.cvtColor(batch[i], cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = np.mod(hsv[..., 0] + hue[i], 180.0)
        hsv[..., 1] *= sat[i]
        hsv[..., 2] *= val[i]
        hsv = np.clip(np.rint(hsv), 0, [179, 255, 255]).astype(np.uint8)
        out[i] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return out


def _camera(batch: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """Per-channel gains (1 ± gain) and a gamma (1 ± gamma), per image, as lookup tables."""
    n = len(batch)
    gains = rng.uniform(1 - aug.gain, 1 + aug.gain, (n, 3))
    gammas = rng.uniform(1 - aug.gamma, 1 + aug.gamma, n)
    x = np.arange(256, dtype=np.float64) / 255.0
    out = np.empty_like(batch)
    for i in range(n):
        for c in range(3):
            lut = np.clip(255.0 * gains[i, c] * x ** gammas[i] + 0.5, 0, 255).astype(np.uint8)
            out[i, :, :, c] = cv2.LUT(batch[i, :, :, c], lut)
    return out


def _lamp(
    batch: np.ndarray, amount: float, rng: np.random.Generator, colour: ColourSpec | None
) -> np.ndarray:
    """Each image as another camera takes it (gains 1 ± amount per channel, gamma and exposure
    within exp(±2·amount) and exp(-1.5·amount)..exp(amount)), then through that camera's run
    table: the training references as the camera shows them, mapped back onto themselves."""
    n = len(batch)
    gains = rng.uniform(1 - amount, 1 + amount, (n, 3))
    gammas = np.exp(rng.uniform(-2 * amount, 2 * amount, n))
    exposure = np.exp(rng.uniform(-1.5 * amount, amount, n))
    x = np.arange(256, dtype=np.float64) / 255.0
    out = np.empty_like(batch)
    for i in range(n):
        k = gains[i] * exposure[i]

        def camera(v: np.ndarray, k=k, g=gammas[i]) -> np.ndarray:
            return np.clip(255.0 * k[:, None] * (v / 255.0) ** g, 0.0, 255.0)

        table = np.clip(camera(255.0 * np.tile(x, (3, 1))) + 0.5, 0, 255).astype(np.uint8)
        seen = apply_lut(batch[i], table)
        if colour is not None and colour.method == "reference":
            refs = np.asarray([colour.background, colour.red_cell], np.float64).T  # (3, 2)
            bg, red = camera(refs).T
            glass = None if min(bg) >= CLIPPED else (float(bg[0]), float(bg[1]), float(bg[2]))
            lut = colour_lut(
                Illumination(glass, (float(red[0]), float(red[1]), float(red[2]))), colour
            )
            if lut is not None:
                seen = apply_lut(seen, lut)
        out[i] = seen
    return out


def _blur(batch: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma 0.5..1.2 px) on a random `probability` share of the images."""
    out = batch.copy()
    chosen = np.flatnonzero(rng.random(len(batch)) < probability)
    for i in chosen:
        out[i] = cv2.GaussianBlur(batch[i], (0, 0), float(rng.uniform(0.5, 1.2)))
    return out
