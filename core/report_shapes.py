"""The shapes of a report folder's report.json and review.json, decoded by `core.typed_json`.

`wbc-edge classify|run --report` writes them (`edge_app.report`), `wbc-edge review` checks
them before it serves a page (`edge_app.report_check` adds the checks of names, ids, labels and
files on top) and `wbc-train adapt` reads the reviewed cells (`train.lab_cells`). Keys a newer
writer adds are kept (open shapes). Decode with `core.typed_json` (`decode_file(Report, data,
file)`): every problem is listed, one line each naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class Meta:
    """report.json's `meta`: the run (`edge_app.report.run_meta`)."""

    open_keys: ClassVar[bool] = True
    classes: list[str]
    model: str
    bundle: str
    bundle_sha256: str
    runtime: str
    mode: str
    source: str
    date: str
    scale: float
    threshold: float
    run_id: str | None = None  # these three: absent or null in older reports
    sample: str | None = None
    operator: str | None = None


@dataclass
class CountRow:
    """One class's row of a count (its `class` is checked against the report's classes)."""

    open_keys: ClassVar[bool] = True
    label: str = field(metadata={"key": "class"})
    cells: int
    percent: float
    ci95_low: float
    ci95_high: float
    uncertain: int = 0


@dataclass
class Count:
    """report.json's `count` (`edge_app.report.count_table` and the run's frames)."""

    open_keys: ClassVar[bool] = True
    cells: int
    frames: int
    frames_without_white_cell: int
    errors: int
    uncertain: int
    threshold: float
    rows: list[CountRow]


@dataclass
class Cell:
    """One of report.json's `cells` (`edge_app.report.ReportCell`); `frame` is a number or a
    live run's `first-last`."""

    open_keys: ClassVar[bool] = True
    id: int
    source: str
    frame: Any
    box: list[int] | None
    label: str
    confidence: float
    probs: dict[str, float]
    uncertain: bool
    crop: str
    context: str
    morphology: dict[str, Any] | None = None
    scale: float | None = None


@dataclass
class FlaggedFrame:
    """A frame not counted, and why (`flags`: out of focus, badly exposed, no red cells...)."""

    open_keys: ClassVar[bool] = True
    source: str
    frame: Any
    flags: list[str]


@dataclass
class Report:
    """report.json."""

    open_keys: ClassVar[bool] = True
    meta: Meta
    count: Count
    cells: list[Cell]
    flagged_frames: list[FlaggedFrame] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Signature:
    """A signed version's signature (`edge_app.signing`)."""

    open_keys: ClassVar[bool] = True
    reviewer: str
    time: str
    sha256: str
    report_sha256: str


@dataclass
class ReviewCount:
    open_keys: ClassVar[bool] = True
    cells: int
    uncertain: int
    rows: list[CountRow]


@dataclass
class ReviewVersion:
    """One version of a review: the technician's corrections and the count they give."""

    open_keys: ClassVar[bool] = True
    corrections: dict[str, str]
    count: ReviewCount
    confirmed: list[str] = field(default_factory=list)
    version: int = 1
    date: str = ""
    signature: Signature | None = None


@dataclass
class Review(ReviewVersion):
    """review.json: the open version and the earlier ones it keeps."""

    history: list[ReviewVersion] = field(default_factory=list)
