"""Declared shapes of bundle.json's open parts: `provenance`, `metrics`, `parity`, `quality`.

These parts are records the stages add to as they go (a training run's settings, a conversion's
summary), so a bundle keeps them as parsed dicts and a newer writer may add keys. What the
program reads back from them is declared here and decoded strictly by `core.typed_json` when a
bundle is loaded (`core.bundle`): `parity.thresholds.min_agreement` given as "0.99", or an
adaptation verdict's `wins` as "yes", is one line naming the field, never a traceback where it
is read. Keys not declared are kept and checked only for non-finite numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Status = Literal["ok", "failed", "unchecked"]  # an artifact's, set by the parity check


@dataclass
class Thresholds:
    """`parity.thresholds`: what an artifact needed to pass (agreement, accuracy drop)."""

    min_agreement: float
    max_drop: float


@dataclass
class ParitySet:
    """`parity.parity_set` and `parity.calibration`: which images, how many."""

    open_keys: ClassVar[bool] = True
    source: str
    n: int
    chosen: str | None = None


@dataclass
class ArtifactCheck:
    """`parity.artifacts[key]`: one artifact's parity with the float model."""

    open_keys: ClassVar[bool] = True
    file: str
    status: Status
    agreement: float | None = None
    accuracy_float: float | None = None
    accuracy_artifact: float | None = None
    drop_points: float | None = None
    max_abs_prob_diff: float | None = None
    runtime: dict[str, Any] | None = None


@dataclass
class Parity:
    """`parity`: wbc-convert's summary of its last check (`convert.report.summary_dict`)."""

    open_keys: ClassVar[bool] = True
    created: str = ""
    thresholds: Thresholds | None = None
    max_class_drop: float | None = None
    parity_set: ParitySet | None = None
    calibration: ParitySet | None = None
    artifacts: dict[str, ArtifactCheck] = field(default_factory=dict)
    conversion_failures: dict[str, Any] = field(default_factory=dict)
    passed: bool | None = None
    reports: list[str] = field(default_factory=list)


@dataclass
class Quality:
    """`quality`: the float model against the absolute floor (`convert.quality_floor`)."""

    open_keys: ClassVar[bool] = True
    passed: bool | None = None
    reason: str = ""
    measured_on: str = ""
    held_out_checked: bool | None = None
    images: int | None = None
    accuracy: float | None = None
    chance: float | None = None
    min_accuracy: float | None = None
    worst_class: str | None = None
    worst_recall: float | None = None
    min_recall: float | None = None
    created: str = ""


@dataclass
class Verdict:
    """`provenance.adaptation.verdict`: did the adapted model win against its parent?"""

    open_keys: ClassVar[bool] = True
    wins: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class Parent:
    """`provenance.adaptation.parent`: the bundle an adapted one was fine-tuned from."""

    open_keys: ClassVar[bool] = True
    name: str


@dataclass
class LabCells:
    """`provenance.adaptation.lab_cells`: the lab's cells kept for INT8 calibration."""

    open_keys: ClassVar[bool] = True
    file: str
    sha256: str
    n: int | None = None


@dataclass
class Adaptation:
    """`provenance.adaptation`: what `wbc-train adapt` recorded (`core.adaptation`)."""

    open_keys: ClassVar[bool] = True
    parent: Parent | None = None
    verdict: Verdict | None = None
    lab_cells: LabCells | None = None


@dataclass
class Provenance:
    """`provenance`: where the model came from. `data` is a folder, or `{"root": ...}` as
    wbc-train writes it; its other records (`split`, `groups`, `training`) are read with care
    where they are used."""

    open_keys: ClassVar[bool] = True
    created: str = ""
    git_commit: str | None = None
    data: Any = None
    split_manifest: str | None = None
    seed: float | None = None
    adaptation: Adaptation | None = None


@dataclass
class MetricsEntry:
    """One entry of `metrics`: the figures measured on a named split."""

    open_keys: ClassVar[bool] = True
    split: str
    values: dict[str, Any] = field(default_factory=dict)


# bundle.json's open parts and the shape each is decoded against.
OPEN_PARTS: dict[str, Any] = {
    "provenance": Provenance,
    "metrics": list[MetricsEntry],
    "parity": Parity,
    "quality": Quality,
}
