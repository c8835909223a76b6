"""The shapes of a training run's own files, read back by `wbc-train`, decoded by
`core.typed_json`: a run's report.json (`train.report`; a K-fold run's adds `kfold`) and the
checkpoint state (`checkpoints/state.json`). The shapes name what is read; the files hold more
(settings, split counts, every metric), which is kept in the file and checked only for being
JSON. A file that is not one is one DataError naming it and listing every problem.

A diverged epoch's loss is NaN, which Python's json writes as the bare word `NaN`: it is read as
null, so a history is a list of numbers or nulls (`float | None`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from wbc_edge.core.errors import DataError
from wbc_edge.core.json_limits import read_json
from wbc_edge.core.typed_json import decode_file
from wbc_edge.train.report import REPORT_JSON

RUN_FILE_BYTES = 64_000_000


@dataclass
class Averages:
    open_keys: ClassVar[bool] = True
    precision: float
    recall: float
    f1: float


@dataclass
class Scores:
    """One side's metrics (`core.dataset.metrics.metrics_from_confusion`): what is read of them;
    per class and weighted figures stay in the file."""

    open_keys: ClassVar[bool] = True
    accuracy: float
    n: int
    macro_avg: Averages
    confusion_matrix: list[list[int]]


@dataclass
class Summary:
    """Mean and sd over the folds of every metric, keyed `accuracy`, `macro_avg.f1`, ..."""

    mean: dict[str, float]
    sd: dict[str, float]


@dataclass
class Fold:
    open_keys: ClassVar[bool] = True
    fold: str
    metrics: Scores
    best_epoch: int | None


@dataclass
class KFold:
    """A K-fold run's report.json `kfold` (`train.kfold.train_kfold`)."""

    open_keys: ClassVar[bool] = True
    name: str
    k: int
    folds: list[Fold]
    summary: Summary


@dataclass
class RunReport:
    """A run's report.json (`train.fitting.RunResult` and what `train.report` adds)."""

    open_keys: ClassVar[bool] = True
    metrics: dict[str, Scores]
    history: dict[str, list[float | None]]
    best_epoch: int | None
    epochs_run: int
    timing: dict[str, float]
    notes: list[str] = field(default_factory=list)
    kfold: KFold | None = None


@dataclass
class CheckpointState:
    """checkpoints/state.json, written after every epoch (`train.checkpoints`)."""

    open_keys: ClassVar[bool] = True
    epoch: int
    history: dict[str, list[float | None]]
    best: float | None
    model: str


def read_run_json(file: Path) -> Any:
    """The JSON of a run's file (NaN, Infinity read as null); DataError naming it otherwise."""
    return read_json(file, RUN_FILE_BYTES, error=DataError, nan_as_null=True)


def read_run_report(file: Path) -> tuple[RunReport, dict[str, Any]]:
    """A run's report.json decoded, and its JSON (whose metrics are passed on whole)."""
    data = read_run_json(file)
    return decode_file(RunReport, data, file, DataError), data


def read_kfold(kfold_dir: Path) -> KFold:
    """A K-fold run's `kfold` from its report.json; DataError naming the file otherwise."""
    file = Path(kfold_dir) / REPORT_JSON
    if not file.is_file():
        raise DataError("not the report of a `wbc-train --kfold` run (no such file)", file)
    report, _ = read_run_report(file)
    if report.kfold is None:
        raise DataError("not the report of a `wbc-train --kfold` run (no kfold)", file)
    return report.kfold
