"""What `wbc-edge classify` writes besides JSONL: saved pictures, the report, input warnings.

`ClassifyOutputs` is the `on_frame` hook of `classify_media`; `finish()` writes the report and
gives the lines to print with the summary.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from wbc_edge.core.safe_io import printable
from wbc_edge.edge_app.classify import Classifier, FrameResult
from wbc_edge.edge_app.identity import Identity
from wbc_edge.edge_app.input_check import CropLikeInput
from wbc_edge.edge_app.sources.files import MediaFrame
from wbc_edge.edge_app.summary import CellNote, DifferentialCount, format_cells

log = logging.getLogger("wbc_edge.edge_app.run_outputs")


class ClassifyOutputs:
    """Saved frames (`save`), the run report (`report`), the crop-like check, per-cell lines."""

    def __init__(
        self,
        classifier: Classifier,
        runtime,
        source: str,
        save: Path | None = None,
        report: Path | None = None,
        inputs: Sequence[Path] = (),
        identity: Identity | None = None,
    ) -> None:
        """`inputs`: the run's files, which no output may replace; `identity`: the sample and
        operator the report names."""
        from wbc_edge.edge_app.annotated import AnnotatedFrames

        self.classifier = classifier
        self.saver = AnnotatedFrames(save, inputs) if save is not None else None
        self.report = None
        if report is not None:
            from wbc_edge.edge_app.report import RunReport, run_meta

            meta = run_meta(classifier.bundle, runtime, classifier, source, identity)
            self.report = RunReport(report, meta, classifier.classes, inputs)
            classifier.keep_crops = True
        self.crop_like = CropLikeInput(classifier.scale) if classifier.mode == "field" else None
        self.frames: list[tuple[str, list[CellNote]]] = []  # the first two, for per-cell lines

    def __call__(self, item: MediaFrame, result: FrameResult) -> None:
        if self.saver is not None:
            self.saver(item, result)
        if self.report is not None:
            self.report(item, result)
        if self.crop_like is not None:
            self.crop_like(item, result)
        if len(self.frames) < 2:
            notes = [
                CellNote(item.source, item.frame, c.box, c.label, c.confidence)
                for c in result.cells
            ]
            self.frames.append((item.source, notes))

    def warning(self) -> str | None:
        return self.crop_like.message() if self.crop_like is not None else None

    def finish(self, count: DifferentialCount) -> list[str]:
        """Write the report; the lines to print before the summary (per-cell for one image)."""
        lines = []
        warning = self.warning()
        if warning:
            log.warning("%s", warning)
        if len(self.frames) == 1 and count.frames == 1:
            source, notes = self.frames[0]
            lines.append(format_cells(source, notes, self.classifier.threshold))
        if self.saver is not None:
            self.saver.finish()
        if self.saver is not None and self.saver.saved:
            folder = printable(str(self.saver.folder))
            lines.append(f"annotated frames: {len(self.saver.saved)} in {folder}")
        if self.report is not None:
            if warning:
                self.report.notes.append(warning)
            page = self.report.write(count)
            csv = page.parent / "count.csv"
            lines.append(f"report: {printable(str(page))} (count: {printable(str(csv))})")
        return lines
