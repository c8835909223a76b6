"""Expand a `--source` (file, folder, glob) into the inputs it names, problems recorded by name.

A folder is walked recursively in sorted order without following symlinked folders (a link
loop would never end): each one it meets, and each subfolder it cannot read, becomes an input
with `error` set, so the run records it instead of silently skipping it. A `**` glob is walked
the same way; other globs go through `glob.glob`, whose depth the pattern bounds.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from wbc_edge.core.decode import IMAGE_SUFFIXES
from wbc_edge.core.errors import WbcError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mjpeg", ".mjpg", ".h264")
MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
SYMLINKED_FOLDER = "a symlinked folder: not followed (give its target as the source to read it)"


@dataclass(frozen=True)
class Input:
    """One file to read, or (with `error`) a path that could not be read as part of the source."""

    path: Path
    error: str | None = None


def expand_inputs(src: str) -> list[Input]:
    """The inputs `src` names; raise WbcError when it names nothing at all."""
    if not src.strip():
        raise WbcError("the source is empty: name an image, a folder, a glob or a video")
    path = Path(src)
    if path.is_file():
        return [Input(path)]
    if path.is_dir():
        found = _walk(path, _is_media)
        if not found:
            raise WbcError(f"no images or videos in this folder ({', '.join(MEDIA_SUFFIXES)})", src)
        return found
    if glob.has_magic(src):
        found = _glob(src)
        if not found:
            raise WbcError("no files match this pattern", src)
        return found
    if path.is_symlink():
        return [Input(path, "a broken symlink (its target does not exist)")]
    raise WbcError("no such file, folder or pattern", src)


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_SUFFIXES


def _walk(root: Path, keep) -> list[Input]:
    """Files under `root` for which keep(path) holds, sorted; symlinked/unreadable folders too."""
    out: list[Input] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            out.append(Input(folder, f"cannot read this folder ({exc.strerror or exc})"))
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(path)
            elif entry.is_symlink() and entry.is_dir():
                out.append(Input(path, SYMLINKED_FOLDER))
            elif entry.is_symlink() and not os.path.exists(entry.path):
                if keep(path):
                    out.append(Input(path, "a broken symlink (its target does not exist)"))
            elif keep(path) and entry.is_file():
                out.append(Input(path))
        stack.extend(reversed(subfolders))
    return sorted(out, key=lambda i: i.path.parts)


def _glob(pattern: str) -> list[Input]:
    if "**" not in pattern:
        return [Input(Path(p)) for p in sorted(glob.glob(pattern)) if Path(p).is_file()]
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    wanted = parts[fixed:]
    if not root.is_dir():
        return []

    def keep(path: Path) -> bool:
        return _match(path.relative_to(root).parts, wanted)

    return _walk(root, keep)


def _match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Path components against glob components; `**` matches any number of folders."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and (not parts[0].startswith(".") or pattern[0].startswith("."))
        and _match(parts[1:], pattern[1:])
    )
