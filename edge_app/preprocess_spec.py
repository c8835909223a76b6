"""The preprocessing spec: every step from a decoded image to the model's input tensor.

It is stored in the bundle (`bundle.json` → `preprocessing`) and applied by one function,
`edge_app.preprocess.preprocess`, in training, calibration, parity and on the device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

CropMethod = Literal["nucleus", "none", "center"]
NormKind = Literal["scale", "mean_std"]
ColourMethod = Literal["none", "reference"]
Interpolation = Literal["area", "linear", "cubic", "nearest"]


@dataclass(frozen=True)
class NucleusParams:
    """How the stained nucleus is found. Areas and radii are in training-image pixels."""

    stain_threshold: float = 45.0  # B - G (0..255) above which a pixel counts as nucleus stain
    max_green: float = 200.0  # and G at most this: pale background never passes
    min_area: int = 250  # smallest nucleus, training px (platelets are far smaller)
    close_radius: int = 2  # morphological closing that fills the nucleus
    merge_radius: int = 10  # lobes closer than this belong to one nucleus
    centre_weight: float = 1.0  # 0: largest component wins; higher favours the image centre
    # Field mode looks for white cells among everything a field shows (platelet clumps, stain
    # debris): a stricter stain threshold and a larger smallest nucleus; None: as above.
    field_stain_threshold: float | None = None
    field_min_area: int | None = None

    @classmethod
    def colour_normalised(cls) -> NucleusParams:
        """Defaults for frames after the colour step: field mode's threshold and smallest
        nucleus as measured on BCCD's 364 frames (benchmarks/detect_bccd.py, docs/edge.md)."""
        return cls(field_stain_threshold=70.0, field_min_area=600)

    def for_field(self) -> NucleusParams:
        """The parameters field mode uses (its own threshold and smallest nucleus, if set)."""
        return replace(
            self,
            stain_threshold=self.stain_threshold
            if self.field_stain_threshold is None
            else self.field_stain_threshold,
            min_area=self.min_area if self.field_min_area is None else self.field_min_area,
        )


@dataclass(frozen=True)
class ColourSpec:
    """Colour normalisation, the first step after decoding (see `edge_app.colour`).

    `reference`: the image's empty glass and red cells are mapped onto these colours (RGB,
    0..255), measured once on the training data. `none`: the image is used as decoded.
    """

    method: ColourMethod = "none"
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    red_cell: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class CropSpec:
    """Which window goes to the model. `size` is the square side in training-image pixels."""

    method: CropMethod = "nucleus"
    size: int = 150


@dataclass(frozen=True)
class NormSpec:
    """`scale`: x = rgb * scale + offset. `mean_std`: x = (rgb / 255 - mean) / std per channel."""

    kind: NormKind = "scale"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class PreprocessSpec:
    """decode → colour → locate cell → crop → resize → colour order → normalise."""

    height: int = 128
    width: int = 128
    color_order: Literal["RGB", "BGR"] = "RGB"
    crop: CropSpec = field(default_factory=CropSpec)
    nucleus: NucleusParams = field(default_factory=NucleusParams)
    interpolation: Interpolation = "area"
    norm: NormSpec = field(default_factory=NormSpec)
    colour: ColourSpec = field(default_factory=ColourSpec)

    def after_colour(self) -> PreprocessSpec:
        """The same spec for an image whose colour step has already been applied."""
        return replace(self, colour=ColourSpec())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every step's parameters."""
        d = asdict(self)
        d["norm"]["mean"] = list(self.norm.mean)
        d["norm"]["std"] = list(self.norm.std)
        d["colour"]["background"] = list(self.colour.background)
        d["colour"]["red_cell"] = list(self.colour.red_cell)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        """Inverse of `to_dict`; raises KeyError/TypeError/ValueError on a bad dict."""
        d = dict(d)
        d.pop("steps", None)  # a list of step names older bundles wrote and nothing read
        norm = dict(d.pop("norm", {}))
        colour = dict(d.pop("colour", {}))
        for part, key in (
            ("norm", "mean"),
            ("norm", "std"),
            ("colour", "background"),
            ("colour", "red_cell"),
        ):
            values = norm if part == "norm" else colour
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
                if len(values[key]) != 3:
                    raise ValueError(f"{part}.{key} needs 3 values")
        spec = cls(
            colour=ColourSpec(**colour),
            crop=CropSpec(**d.pop("crop", {})),
            nucleus=NucleusParams(**d.pop("nucleus", {})),
            norm=NormSpec(**norm),
            **d,
        )
        spec.check()
        return spec

    def check(self) -> None:
        """Raise ValueError naming the first impossible value."""
        if self.height < 8 or self.width < 8:
            raise ValueError(f"input size {self.height}x{self.width} is below 8x8")
        if self.color_order not in ("RGB", "BGR"):
            raise ValueError(f"color_order {self.color_order!r} is not RGB or BGR")
        if self.crop.method not in ("nucleus", "none", "center"):
            raise ValueError(f"crop.method {self.crop.method!r} is not nucleus, none or center")
        if self.crop.size < 8:
            raise ValueError(f"crop.size {self.crop.size} is below 8")
        if self.interpolation not in ("area", "linear", "cubic", "nearest"):
            raise ValueError(f"interpolation {self.interpolation!r} is unknown")
        if self.norm.kind not in ("scale", "mean_std"):
            raise ValueError(f"norm.kind {self.norm.kind!r} is not scale or mean_std")
        if self.norm.kind == "mean_std" and min(self.norm.std) <= 0:
            raise ValueError("norm.std must be positive")
        if self.colour.method not in ("none", "reference"):
            raise ValueError(f"colour.method {self.colour.method!r} is not none or reference")
        if self.colour.method == "reference":
            refs = (*self.colour.background, *self.colour.red_cell)
            if not all(0.0 < v <= 255.0 for v in refs):
                raise ValueError("colour references must lie in (0, 255]")
            if self.colour.background[1] <= self.colour.red_cell[1]:
                raise ValueError("colour.background must be brighter in green than red_cell")
