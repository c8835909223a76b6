"""`classify --save DIR`: each frame drawn with its cells, named after its source.

`field0.png` -> `DIR/field0.jpg`; frame 12 of `clip.mp4` -> `DIR/clip-frame000012.jpg`. Two
sources with the same name (`EOS/1.png`, `LYM/1.png`) get their folder put in front
(`EOS_1.jpg`), then a number. DIR is an `OutputFolder`: an input or a file wbc-edge did not
write is never replaced (the picture goes beside it, `field0-2.jpg`), and a folder that cannot
be written fails before the run starts. Names are written as bytes, whatever their encoding.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from wbc_edge.core.errors import WbcError
from wbc_edge.core.safe_io import encode_image
from wbc_edge.edge_app.classify import FrameResult
from wbc_edge.edge_app.output_folder import OutputFolder
from wbc_edge.edge_app.sources.files import VIDEO_SUFFIXES, MediaFrame

log = logging.getLogger("wbc_edge.edge_app.annotated")


class AnnotatedFrames:
    """Write annotated copies of classified frames into one folder."""

    def __init__(self, folder: Path, inputs: Iterable[Path | str] = ()) -> None:
        self.out = OutputFolder(folder, inputs)
        self.folder = self.out.folder
        self._used: set[str] = set()
        self.saved: dict[tuple[str, int], Path] = {}  # (source, frame) -> file

    def __call__(self, item: MediaFrame, result: FrameResult) -> None:
        from wbc_edge.edge_app.overlay import draw_cells

        if item.rgb is None:
            return
        flags = frame_flags(result)
        status = [frame_line(result)] + ([f"quality: {', '.join(flags)}"] if flags else [])
        view = draw_cells(item.rgb, result.cells, status=status)
        name = self.name_for(item.source, item.frame)
        path = self.out.write_beside(name, encode_image(view, ".jpg"))
        self.saved[(item.source, item.frame)] = path

    def finish(self) -> None:
        """Record what was written (the folder's manifest)."""
        self.out.save()

    def name_for(self, source: str, frame: int) -> str:
        """A file name for this frame, unique in the folder."""
        src = Path(source)
        tail = f"-frame{frame:06d}" if src.suffix.lower() in VIDEO_SUFFIXES else ""
        candidates = [f"{src.stem}{tail}", f"{src.parent.name}_{src.stem}{tail}"]
        candidates += [f"{candidates[-1]}-{k}" for k in range(2, 10_000)]
        for stem in candidates:
            name = f"{stem}.jpg"
            if name not in self._used:
                self._used.add(name)
                return name
        raise WbcError("too many frames with the same name", source)


def frame_line(result: FrameResult) -> str:
    """`2 cells: NEU 1, EOS 1 (1 uncertain)` for the banner of one frame."""
    n = len(result.cells)
    if n == 1 and result.cells[0].box is None:  # cell mode: the image is the cell
        cell = result.cells[0]
        return f"{cell.label} {cell.confidence:.2f}" + (" (uncertain)" if cell.uncertain else "")
    counts: dict[str, int] = {}
    for cell in result.cells:
        counts[cell.label[:3]] = counts.get(cell.label[:3], 0) + 1
    text = f"{n} {'cell' if n == 1 else 'cells'}"
    if counts:
        text += ": " + ", ".join(f"{c} {k}" for c, k in counts.items())
    uncertain = sum(c.uncertain for c in result.cells)
    return text + (f" ({uncertain} uncertain)" if uncertain else "")


def frame_flags(result: FrameResult) -> list[str]:
    """Quality flags a frame carries (`result.quality`: a dict or object with `flags`)."""
    quality = getattr(result, "quality", None)
    if quality is None:
        return []
    flags = quality.get("flags") if isinstance(quality, dict) else getattr(quality, "flags", None)
    return [str(f) for f in flags or []]
