"""What `wbc-edge calibrate` reads and writes: the frames of a --source or a --camera, the
outputs checked before a frame is read, then the profile and its picture (PNG) written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wbc_edge.core.errors import WbcError
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.core.safe_io import write_image
from wbc_edge.edge_app.calibrate import Calibration, picture

Frames = Iterator[tuple[str, np.ndarray | None, str | None]]  # name, RGB or None, error or None


def calibration_frames(
    source: str | None, camera: str | None, size: tuple[int, int] | None = None
) -> tuple[Frames, str]:
    """The frames to measure and the name of where they come from: the files (or video) of
    `source`, else the `camera` at `size`."""
    if source is not None:
        from wbc_edge.edge_app.sources.files import iter_media

        media = iter_media(source)
        return (
            (f"{m.source}:{m.frame}" if m.frame else m.source, m.rgb, m.error) for m in media
        ), source
    from wbc_edge.edge_app.sources import FrameStream, open_source

    stream = FrameStream(open_source(camera, size=size))
    return ((f"frame {i}", rgb, None) for i, (_, rgb) in enumerate(stream)), str(camera)


def check_outputs(source: str | None, out: Path, png: Path) -> None:
    """Refuse an `out` or `png` that is one of the `source` files, one and the same file, or
    (for `out`) an existing file that is not a camera profile."""
    from wbc_edge.edge_app.output_folder import file_ids
    from wbc_edge.edge_app.profile import is_profile_file
    from wbc_edge.edge_app.sources.files import expand_source

    inputs = file_ids(expand_source(source)) if source is not None else set()
    for path, what in ((out, "the profile"), (png, "the picture")):
        if file_ids([path]) & inputs:
            raise WbcError(f"is one of the inputs: refusing to overwrite it with {what}", path)
    if out.resolve() == png.resolve():
        raise WbcError("--out and --picture name the same file; give another --picture", png)
    if out.exists() and not is_profile_file(out):
        raise WbcError(
            "exists and is not a camera profile: refusing to overwrite it (choose another --out)",
            out,
        )


def write_calibration(cal: Calibration, spec: PreprocessSpec, out: Path, png: Path) -> None:
    """The camera profile at `out` and the picture of what was measured at `png`, each atomic."""
    from wbc_edge.edge_app.profile import save_profile

    save_profile(cal.profile, out)
    write_image(png, picture(cal, spec))
