"""The run report (`--report DIR`): one offline HTML page a lab can print, and the count as CSV.

DIR holds:

    report.html      the differential count (table + bar chart with 95 % intervals), the gallery
                     of every counted cell as the model saw it, flagged frames, model and run
    count.csv        class, cells, percent, ci95_low, ci95_high (the differential a lab reads:
                     corrected for the model's known confusions when the bundle has a count
                     model and enough cells were counted, `estimate` says which),
                     raw_percent, raw_ci95_low, raw_ci95_high (classify-and-count, Wilson),
                     uncertain (+ a total row)
    cells.csv        one row per counted cell: where it was, what it was called, and its
                     nucleus and cell area (µm²), nucleus:cell ratio, lobes and granule score
    report.json      all of the above, read back by `wbc-edge review`; each cell with its
                     measured morphology (`edge_app.morphology`)
    cells/N.png      the crop the model saw (96x96 for the default model)
    cells/N-context.jpg  the cell at training-image scale and size (what `wbc-train` learns from)

The page embeds its images (data URIs) and loads nothing from the network, so report.html alone
can be mailed or filed. The raw count's interval is the Wilson score interval for a proportion
of n cells; the corrected one's is a bootstrap over the cells and the confusion matrix
(`core.label_shift`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wbc_edge.core.digest import sha256_file
from wbc_edge.core.errors import WbcError
from wbc_edge.core.field import TRAINING_IMAGE, training_window
from wbc_edge.core.gallery import to_rgb
from wbc_edge.core.json_limits import read_json
from wbc_edge.core.label_shift import MIN_CELLS, corrected_differential
from wbc_edge.core.safe_io import atomic_write, csv_field, encode_image, printable
from wbc_edge.edge_app.annotated import frame_flags
from wbc_edge.edge_app.classify import CellResult, FrameResult, cell_result
from wbc_edge.edge_app.identity import Identity
from wbc_edge.edge_app.output_folder import OutputFolder
from wbc_edge.edge_app.report_check import check_report, check_review
from wbc_edge.edge_app.report_html import render_html
from wbc_edge.edge_app.sources.files import MediaFrame
from wbc_edge.edge_app.summary import DifferentialCount

Z95 = 1.959963984540054
LIVE_GALLERY = 500  # cells a live report shows (crops on disk, images in the page); all counted
INTERVAL = "Wilson score interval, 95 %"
CORRECTED_INTERVAL = "bootstrap over the cells and the confusion matrix, 95 %"


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (0..1); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bundle_hash(bundle_dir: Path) -> str:
    """sha256 of the bundle's bundle.json (names the exact model a count came from)."""
    return sha256_file(Path(bundle_dir) / "bundle.json")


@dataclasses.dataclass
class ReportCell:
    """One counted cell of the report."""

    id: int
    source: str
    frame: int | str
    box: list[int] | None
    label: str
    confidence: float
    probs: dict[str, float]
    uncertain: bool
    crop: str  # file under DIR, the crop the model saw
    context: str  # file under DIR, the cell at training-image scale
    morphology: dict[str, Any] | None = None  # edge_app.morphology's record of the cell
    scale: float | None = None  # camera px per training px its frame was analysed at


class RunReport:
    """Collects the cells of a run (their crops go to DIR/cells/ as they come) and writes it.

    Use as `classify_media(..., on_frame=report)`; a live run with tracking calls `add_cell`
    for each counted cell instead. The folder is an `OutputFolder`: a report is never written
    over the run's inputs or files wbc-edge did not write, and a folder holding a technician's
    review is refused (a new report would discard it). With `max_cells` the gallery keeps the
    first so many cells (a live run can go on for hours); every cell is still counted.
    """

    def __init__(
        self,
        folder: Path,
        meta: dict[str, Any],
        classes: list[str],
        inputs: Iterable[Path | str] = (),
        max_cells: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.meta = dict(meta)
        self.classes = list(classes)
        self.max_cells = max_cells
        self.cells: list[ReportCell] = []
        self.flagged: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.uncertain = dict.fromkeys(self.classes, 0)  # every counted cell, gallery or not
        self.not_shown = 0  # cells counted beyond max_cells
        self.scales: dict[float, int] = {}  # frames analysed at each scale
        self.last_scale: float | None = None  # the last frame's: the run's pooled scale
        self.out = open_report_folder(self.folder, inputs)
        for old in self.out.owned_under("cells/"):
            self.out.remove(old)  # a previous report's crops (ours: listed in the manifest)

    def __call__(self, item: MediaFrame, result: FrameResult) -> None:
        """One classified frame of `classify`: every cell counted, with its crop."""
        self.frame_scale(result.scale)
        flags = frame_flags(result)
        if flags:
            self.flagged.append({"source": item.source, "frame": item.frame, "flags": flags})
        if result.cells and (result.crops is None or result.centres is None):
            raise ValueError("the report needs the crops: set Classifier.keep_crops")
        for cell, crop, centre in zip(
            result.cells, result.crops or [], result.centres or [], strict=True
        ):
            context = self.context_of(item.rgb, centre, result.scale)
            self.add_cell(item.source, item.frame, cell, crop, context, result.scale)

    def frame_scale(self, scale: float) -> None:
        """One more frame analysed at `scale` (camera px per training px; kept to 0.01)."""
        key = round(float(scale), 2)
        self.scales[key] = self.scales.get(key, 0) + 1
        self.last_scale = key

    def add_cell(
        self,
        source: str,
        frame: int | str,
        cell: CellResult,
        crop: np.ndarray,
        context: np.ndarray | None = None,
        scale: float | None = None,
    ) -> None:
        """One counted cell; `crop` is the model's crop (model colour order), `scale` the one
        its frame was analysed at."""
        if cell.uncertain and cell.label in self.uncertain:
            self.uncertain[cell.label] += 1
        if self.max_cells is not None and len(self.cells) >= self.max_cells:
            self.not_shown += 1
            return
        n = len(self.cells) + 1
        spec = self.meta["spec"]
        png = encode_image(to_rgb(crop, spec), ".png")
        crop_name = self.out.write_beside(f"cells/{n:05d}.png", png)
        context_name = ""
        if context is not None:
            data = encode_image(context, ".jpg")
            context_name = self.out.write_beside(f"cells/{n:05d}-context.jpg", data)
        box = list(cell.box) if cell.box is not None else None
        self.cells.append(
            ReportCell(
                n,
                source,
                frame,
                box,
                cell.label,
                cell.confidence,
                dict(cell.probs),
                cell.uncertain,
                _rel(crop_name, self.folder),
                _rel(context_name, self.folder) if context_name else "",
                cell.morphology.to_record() if cell.morphology is not None else None,
                None if scale is None else round(float(scale), 4),
            )
        )

    def context_of(
        self, rgb: np.ndarray | None, centre: tuple[float, float] | None, scale: float
    ) -> np.ndarray | None:
        """The cell as a training image: TRAINING_IMAGE training px around it, cut at the scale
        its frame was analysed at (cell mode: the whole image)."""
        if rgb is None:
            return None
        if centre is None:
            return rgb
        window = training_window(rgb, centre[0], centre[1], float(scale))
        if window.shape[1::-1] != TRAINING_IMAGE:
            window = cv2.resize(window, TRAINING_IMAGE, interpolation=cv2.INTER_AREA)
        return window

    def write(self, count: DifferentialCount) -> Path:
        """Write report.json, count.csv, cells.csv and report.html; returns the page's path."""
        meta = {k: v for k, v in self.meta.items() if k != "spec"}
        if self.scales:  # what the frames were analysed at, not what the run began with
            meta["scale"] = self.last_scale  # the run's pooled measurement, once settled
            meta["scales"] = {f"{s:g}": n for s, n in sorted(self.scales.items())}
        notes = list(self.notes)
        if self.not_shown:
            notes.append(
                f"the gallery shows the first {len(self.cells)} of "
                f"{len(self.cells) + self.not_shown} counted cells (a live report keeps at most "
                f"{self.max_cells}); the count covers them all"
            )
        data = {
            "meta": meta,
            "count": count_table(
                count.counts, count.threshold, self.uncertain, self.meta.get("count_model")
            )
            | {
                "frames": count.frames,
                "frames_without_white_cell": count.empty_frames,
                "errors": count.errors,
            },
            "cells": [dataclasses.asdict(c) for c in self.cells],
            "flagged_frames": self.flagged,
            "notes": notes,
        }
        self.out.write("report.json", json.dumps(data, indent=1) + "\n")
        self.out.write("count.csv", count_csv(data["count"], meta))
        self.out.write("cells.csv", cells_csv(self.cells, self.classes, meta))
        page = render_report(self.folder, out=self.out)
        self.out.save()
        return page


REPORT_FILES = ("report.json", "report.html", "count.csv", "cells.csv")
REVIEW_FILES = ("review.json", "count_reviewed.csv")


def open_report_folder(folder: Path, inputs: Iterable[Path | str] = ()) -> OutputFolder:
    """The report folder, refused (WbcError) when a new report would destroy something there:
    a technician's review, or files of the report's names that wbc-edge did not write."""
    out = OutputFolder(folder, inputs)
    reviewed = [n for n in REVIEW_FILES if (out.folder / n).exists()]
    if reviewed:
        raise WbcError(
            f"holds a technician's review ({', '.join(reviewed)}): a new report would discard "
            "it; choose another --report folder, or move the review files out to start afresh",
            printable(str(folder)),
        )
    foreign = out.foreign(REPORT_FILES)
    if foreign:
        raise WbcError(
            f"holds files wbc-edge did not write ({', '.join(foreign)}): choose an empty or new "
            "--report folder",
            printable(str(folder)),
        )
    return out


def _rel(path: Path | str, folder: Path) -> str:
    return Path(path).relative_to(folder).as_posix()


def count_table(
    counts: dict[str, int],
    threshold: float,
    uncertain: dict[str, int] | None = None,
    count_model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per class (percent, 0..100): the estimate a lab reads (`percent`, `ci95_*`), the raw
    classify-and-count (`raw_*`, Wilson intervals) and the uncertain cells. The estimate is
    corrected for the model's out-of-fold confusions when `count_model` (a bundle's, as
    `report_count_model` gives it) is given and enough cells were counted; else it is the raw
    count, and `estimate` says so."""
    n = sum(counts.values())
    uncertain = uncertain or {}
    confusion = None if count_model is None else count_model["confusion"]
    min_cells = MIN_CELLS if count_model is None else int(count_model["min_cells"])
    diff = corrected_differential(
        list(counts), list(counts.values()), confusion, min_cells=min_cells
    )
    rows = []
    for i, (cls, k) in enumerate(counts.items()):
        lo, hi = wilson_interval(k, n)
        raw = {
            "raw_percent": round(100 * k / n, 2) if n else 0.0,
            "raw_ci95_low": round(100 * lo, 2),
            "raw_ci95_high": round(100 * hi, 2),
        }
        if diff.corrected is not None and diff.low is not None and diff.high is not None:
            est = (diff.corrected[i], diff.low[i], diff.high[i])
        else:
            est = (k / n if n else 0.0, lo, hi)
        estimate = {
            key: round(100 * v, 2)
            for key, v in zip(("percent", "ci95_low", "ci95_high"), est, strict=True)
        }
        rows.append(
            {"class": cls, "cells": k, **estimate, **raw, "uncertain": uncertain.get(cls, 0)}
        )
    corrected = diff.corrected is not None
    return {
        "cells": n,
        "rows": rows,
        "uncertain": sum(uncertain.values()),
        "threshold": threshold,
        "estimate": "corrected" if corrected else "raw",
        "estimate_note": diff.note,
        "interval": CORRECTED_INTERVAL if corrected else INTERVAL,
        "raw_interval": INTERVAL,
    }


def report_count_model(bundle) -> dict[str, Any] | None:
    """What report.json keeps of the bundle's count model (the review recounts with it)."""
    cm = bundle.count_model
    return None if cm is None else {"confusion": cm.confusion, "min_cells": cm.min_cells}


COUNT_FIELDS = [
    "class", "cells", "percent", "ci95_low", "ci95_high", "estimate",
    "raw_percent", "raw_ci95_low", "raw_ci95_high", "uncertain", "sample", "operator",
]  # fmt: skip
IDENTITY_FIELDS = ("sample", "operator")


def count_csv(table: dict[str, Any], meta: dict[str, Any] | None = None) -> str:
    """count.csv's text: one row per class and a total row; `percent` and its interval are the
    differential (`estimate`: corrected or raw), `raw_*` each cell's label counted; `sample`
    and `operator` from the report's `meta` on every row (empty when not given)."""
    estimate = table.get("estimate", "raw")
    ident = identity_columns(meta)
    fh = io.StringIO(newline="")
    w = csv.DictWriter(fh, COUNT_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in table["rows"]:
        w.writerow({k: csv_field(v) for k, v in {**row, "estimate": estimate, **ident}.items()})
    total = table["cells"]
    w.writerow(
        {
            "class": "total",
            "cells": total,
            "percent": 100.0 if total else 0.0,
            "ci95_low": "",
            "ci95_high": "",
            "estimate": estimate,
            "raw_percent": 100.0 if total else 0.0,
            "uncertain": table["uncertain"],
            **{k: csv_field(v) for k, v in ident.items()},
        }
    )
    return fh.getvalue()


def identity_columns(meta: dict[str, Any] | None) -> dict[str, str]:
    """The sample and operator columns of the report's CSVs ("" when unknown)."""
    meta = meta or {}
    return {k: meta.get(k) or "" for k in IDENTITY_FIELDS}


CSV_MORPHOLOGY = ("nucleus_area_um2", "cell_area_um2", "nc_ratio", "lobes", "granule_score")


def cells_csv(
    cells: list[ReportCell], classes: list[str], meta: dict[str, Any] | None = None
) -> str:
    """cells.csv's text: one row per cell, with the report's sample and operator; names
    printable, no cell a spreadsheet formula."""
    head = ["id", "source", "frame", "x0", "y0", "x1", "y1", "label", "confidence", "uncertain"]
    ident = list(identity_columns(meta).values())
    fh = io.StringIO(newline="")
    w = csv.writer(fh)
    w.writerow([csv_field(h) for h in [*head, *(f"p_{c}" for c in classes), *CSV_MORPHOLOGY]]
               + ["crop", "scale", *IDENTITY_FIELDS])  # fmt: skip
    for c in cells:
        box = c.box or ["", "", "", ""]
        probs = [c.probs.get(k, "") for k in classes]
        m = c.morphology or {}
        measured = ["" if m.get(k) is None else m[k] for k in CSV_MORPHOLOGY]
        row = [c.id, c.source, c.frame, *box, c.label, c.confidence, int(c.uncertain)]
        row += [*probs, *measured, c.crop, "" if c.scale is None else c.scale, *ident]
        w.writerow([csv_field(v) for v in row])
    return fh.getvalue()


def render_report(folder: Path, form: bool = False, out: OutputFolder | None = None) -> Path:
    """(Re)write DIR/report.html from report.json (and review.json once reviewed)."""
    folder = Path(folder)
    data = load_report(folder)
    html = render_html(data, folder, form=form)
    if out is None:
        return atomic_write(folder / "report.html", html)
    return out.write("report.html", html)


REPORT_BYTES = 256_000_000  # report.json of a very long classify run
REVIEW_BYTES = 64_000_000


def load_report(folder: Path) -> dict[str, Any]:
    """report.json of a report folder, checked (`report_check`), with review.json's
    corrections merged in if present; WbcError naming the file otherwise."""
    folder = Path(folder)
    path = folder / "report.json"
    if not path.exists():
        raise WbcError("no report here (expected a folder written by --report)", path)
    data = check_report(read_json(path, REPORT_BYTES), path)
    review = folder / "review.json"
    if review.exists():
        data["review"] = check_review(read_json(review, REVIEW_BYTES), data, review)
    return data


def run_meta(
    bundle, runtime, classifier, source: str, identity: Identity | None = None
) -> dict[str, Any]:
    """What the report says about the run: its id, sample and operator (None when not given),
    model, bundle hash, runtime, scale, date."""
    identity = identity or Identity()
    return {
        "run_id": uuid.uuid4().hex,
        "sample": identity.sample,
        "operator": identity.operator,
        "model": bundle.name,
        "bundle": str(bundle.root),
        "bundle_sha256": bundle_hash(bundle.root),
        "classes": list(bundle.classes),
        "runtime": runtime.describe(),
        "mode": classifier.mode,
        "scale": classifier.scale,
        "threshold": classifier.threshold,
        "source": source,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "spec": classifier.spec,
        "count_model": report_count_model(bundle),
    }


class LiveReportCells:
    """Feeds a RunReport from `wbc-edge run`: per counted cell, once per tracked cell.

    A tracked cell is shown by its most confident frame's crop and counted with its averaged
    class (as the live count does); untracked cells are added per frame.
    """

    def __init__(self, report: RunReport) -> None:
        self.report = report
        self._best: dict[int, tuple[float, float, Any, np.ndarray, np.ndarray | None]] = {}

    def frame(
        self, source: str, frame: int, rgb: np.ndarray, result: FrameResult, tracks: list
    ) -> None:
        self.report.frame_scale(result.scale)
        crops = result.crops or []
        centres = result.centres or [None] * len(crops)
        for cell, crop, centre, track in zip(result.cells, crops, centres, tracks, strict=False):
            context = self.report.context_of(rgb, centre, result.scale)
            if track is None:
                self.report.add_cell(source, frame, cell, crop, context, result.scale)
            elif track not in self._best or cell.confidence > self._best[track][0]:
                self._best[track] = (cell.confidence, result.scale, cell.box, crop, context)

    def counted(self, source: str, track, classifier) -> None:
        """A tracked cell (`edge_app.live.Track`) counted with its averaged probabilities."""
        best = self._best.pop(track.id, None)
        if best is None:
            return
        _, scale, box, crop, context = best
        cell = cell_result(classifier.classes, track.mean_probs(), classifier.threshold, box)
        frames = f"{track.first_frame}-{track.last_frame}"
        self.report.add_cell(source, frames, cell, crop, context, scale)
