"""The preprocessing spec: every step from a decoded image to the model's input tensor.

It is stored in the bundle (`bundle.json` → `preprocessing`) and applied by one function,
`core.preprocess.preprocess`, in training, calibration, parity and on the device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from wbc_edge.core.spec_ranges import range_problems
from wbc_edge.core.typed_json import decode_dataclass

CropMethod = Literal["nucleus", "none", "center"]
NormKind = Literal["scale", "mean_std"]
ColourMethod = Literal["none", "reference"]
ColourEstimate = Literal["image", "run"]
Interpolation = Literal["area", "linear", "cubic", "nearest"]
ColorOrder = Literal["RGB", "BGR"]


def light_problems(
    background: tuple[float, float, float], red_cell: tuple[float, float, float], prefix: str = ""
) -> list[str]:
    """What is impossible about a light's two references (RGB, 0..255), as `field: message`:
    each value lies in (0, 255], and the glass is brighter in green than the red cells. One
    rule for the bundle's colour step and a camera profile (`edge_app.profile`)."""
    out = [
        f"{prefix}{name}: values must lie in (0, 255], got {[round(v, 2) for v in rgb]}"
        for name, rgb in (("background", background), ("red_cell", red_cell))
        if not all(0.0 < v <= 255.0 for v in rgb)
    ]
    if not out and background[1] <= red_cell[1]:
        out.append(f"{prefix}background: must be brighter in green than red_cell")
    return out


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
    """Colour normalisation, the first step after decoding (see `core.colour`).

    `reference`: the image's empty glass and red cells are mapped onto these colours (RGB,
    0..255), measured once on the training data. `none`: the image is used as decoded.
    `estimate` says whose glass and red cells are measured: `run`, pooled over a run's frames
    (one camera's lamp and white balance: `edge_app.light.RunLight`; a data set is one run,
    `core.colour.pooled_table`); `image`, each image's own (bundles made before the pooled
    estimate; noisy on a single crop).
    """

    method: ColourMethod = "none"
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    red_cell: tuple[float, float, float] = (0.0, 0.0, 0.0)
    estimate: ColourEstimate = "image"


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
    color_order: ColorOrder = "RGB"
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
        if self.colour.estimate == "image":
            del d["colour"]["estimate"]  # as bundles wrote it before `estimate` existed
        return d

    @classmethod
    def from_dict(cls, d: Any) -> PreprocessSpec:
        """Inverse of `to_dict`; raises ValueError listing every problem."""
        problems: list[str] = []
        spec = cls.decode(d, "", problems)
        if spec is None:
            raise ValueError("; ".join(problems))
        return spec

    @classmethod
    def decode(cls, d: Any, path: str, problems: list[str]) -> PreprocessSpec | None:
        """Strictly typed from a parsed dict (`typed_json`), then checked; problems are
        appended as `path.field: message`. `steps` (written by older bundles) is ignored."""
        if isinstance(d, dict):
            d = {k: v for k, v in d.items() if k != "steps"}
        before = len(problems)
        spec = decode_dataclass(cls, d, path, problems)
        if spec is None:
            return None
        prefix = f"{path}." if path else ""
        problems += [f"{prefix}{p}" for p in spec.problems()]
        return spec if len(problems) == before else None

    def check(self) -> None:
        """Raise ValueError naming the first impossible value."""
        problems = self.problems()
        if problems:
            raise ValueError(problems[0])

    def problems(self) -> list[str]:
        """Every impossible value, as `field: message`."""
        out = []
        for name, value, kind in (
            ("color_order", self.color_order, ColorOrder),
            ("crop.method", self.crop.method, CropMethod),
            ("interpolation", self.interpolation, Interpolation),
            ("norm.kind", self.norm.kind, NormKind),
            ("colour.method", self.colour.method, ColourMethod),
            ("colour.estimate", self.colour.estimate, ColourEstimate),
        ):
            if value not in get_args(kind):
                out.append(f"{name}: {value!r} is not one of {', '.join(get_args(kind))}")
        if self.height < 8 or self.width < 8:
            out.append(f"height: input size {self.height}x{self.width} is below 8x8")
        if self.crop.size < 8:
            out.append(f"crop.size: {self.crop.size} is below 8")
        if self.norm.kind == "scale" and self.norm.scale == 0:
            out.append("norm.scale: must not be 0")
        if self.norm.kind == "mean_std" and min(self.norm.std) <= 0:
            out.append("norm.std: must be positive")
        if self.colour.method == "reference":
            out += light_problems(self.colour.background, self.colour.red_cell, "colour.")
        nucleus = self.nucleus
        for name in ("min_area", "close_radius", "merge_radius"):
            if getattr(nucleus, name) < 0:
                out.append(f"nucleus.{name}: must not be negative")
        seen = {p.split(":")[0] for p in out}  # one message per field
        return out + [p for p in range_problems(self) if p.split(":")[0] not in seen]
