"""Whether a file a bundle lists is really part of it: a regular file (or a SavedModel folder
of them) inside the bundle folder, never a link out of it, a device or a FIFO."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def file_outside(root: Path, path: Path) -> str | None:
    """Why `path` is not a file of the bundle at `root`, or None when it is (or is missing:
    the caller says that)."""
    try:
        real_root = Path(root).resolve()
        real = path.resolve()
    except (OSError, RuntimeError):
        return "cannot be resolved (a link loop?)"
    if not real.is_relative_to(real_root):
        return "lies outside the bundle folder (a link out of it?)"
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "is not a regular file (a device or FIFO?)"
    if stat.S_ISDIR(mode):
        for inner in path.rglob("*"):
            problem = file_outside(root, inner)
            if problem:
                return f"holds {inner.name}, which {problem}"
    return None
