"""One rule for every folder `wbc-edge` writes into (`--save`, `--report`, `--snapshots`, review).

- Never onto an input: a file that is (a link to) one of the run's inputs is never replaced.
- Never over, and never deleting, what the program did not write: the folder keeps a manifest
  (`.wbc-edge-written.json`) of the files wbc-edge wrote there; only those may be replaced or
  removed. A name taken by anything else gets a file beside it (`name-2.jpg`) or, where the name
  is fixed (a report's `report.json`), the folder is refused.
- Atomic: each file is written to a temporary name and renamed (`core.safe_io.atomic_write`).
- A folder that cannot be written fails at once, with one line, before anything is run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wbc_edge.core.errors import WbcError
from wbc_edge.core.json_limits import read_json
from wbc_edge.core.safe_io import atomic_write, check_writable, printable
from wbc_edge.core.typed_json import decode_file

MANIFEST = ".wbc-edge-written.json"
MANIFEST_BYTES = 32_000_000
MAX_BESIDE = 10_000


def file_ids(paths: Iterable[Path | str]) -> set[tuple[int, int]]:
    """(device, inode) of each path that exists: what `is_input` compares against."""
    out = set()
    for p in paths:
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            continue
        out.add((st.st_dev, st.st_ino))
    return out


class OutputFolder:
    """A folder written through `write`/`write_beside`/`remove`, remembered in its manifest."""

    def __init__(self, folder: Path, inputs: Iterable[Path | str] = ()) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise WbcError("is a file, not a folder", printable(str(self.folder)))
        check_writable(self.folder)
        self.inputs = file_ids(inputs)
        self.written = self._load_manifest()
        self._taken: set[str] = set()  # names given out in this run

    def is_input(self, path: Path) -> bool:
        return bool(self.inputs) and bool(file_ids([path]) & self.inputs)

    def may_replace(self, rel: str) -> bool:
        """True when `rel` is free, or holds a file wbc-edge wrote that is not an input."""
        path = self.folder / rel
        if not os.path.lexists(path):
            return True
        return (
            rel in self.written
            and path.is_file()
            and not path.is_symlink()
            and not (self.is_input(path))
        )

    def foreign(self, names: Iterable[str]) -> list[str]:
        """The names that hold something wbc-edge did not write (or an input)."""
        return [n for n in names if not self.may_replace(n)]

    def write(self, rel: str, data: bytes | str) -> Path:
        """Write `rel` (refused, WbcError, when its name holds what wbc-edge did not write)."""
        if not self.may_replace(rel):
            raise WbcError(
                "was not written by wbc-edge (or is an input): refusing to replace it",
                printable(str(self.folder / rel)),
            )
        path = atomic_write(self.folder / rel, data)
        self.written.add(rel)
        self._taken.add(rel)
        return path

    def write_beside(self, rel: str, data: bytes | str) -> Path:
        """Write `rel`, or `stem-2.ext`, `stem-3.ext`... when the name is taken."""
        return self.write(self.free_name(rel), data)

    def free_name(self, rel: str) -> str:
        """`rel` or the first `stem-k.ext` that is neither taken in this run nor foreign."""
        stem, dot, ext = rel.rpartition(".")
        if not dot:
            stem, ext = rel, ""
        for k in range(1, MAX_BESIDE):
            name = rel if k == 1 else f"{stem}-{k}{dot}{ext}"
            if name not in self._taken and self.may_replace(name):
                return name
        raise WbcError("too many files with the same name", printable(str(self.folder / rel)))

    def remove(self, rel: str) -> bool:
        """Delete `rel` if wbc-edge wrote it (and it is no input), and the folders it leaves
        empty on the way up; anything else stays."""
        if rel not in self.written or not self.may_replace(rel):
            return False
        path = self.folder / rel
        try:
            path.unlink(missing_ok=True)
        except OSError:
            return False
        self.written.discard(rel)
        for parent in path.parents:
            if parent == self.folder or self.folder not in parent.parents:
                break
            try:
                parent.rmdir()  # only ever an empty folder
            except OSError:
                break
        return True

    def owned_under(self, prefix: str) -> list[str]:
        """The names wbc-edge wrote under a subfolder (`corrections/`)."""
        return sorted(n for n in self.written if n.startswith(prefix))

    def save(self) -> None:
        """Write the manifest (atomically); names no longer on disk are dropped from it."""
        names = sorted(n for n in self.written if os.path.lexists(self.folder / n))
        atomic_write(self.folder / MANIFEST, json.dumps({"written": names}, indent=0) + "\n")

    def _load_manifest(self) -> set[str]:
        path = self.folder / MANIFEST
        if not path.exists():
            return set()
        manifest = decode_file(Manifest, read_json(path, MANIFEST_BYTES), path)
        return {n for n in manifest.written if _relative(n)}


@dataclass
class Manifest:
    """The manifest's shape (decoded by `core.typed_json`): the names wbc-edge wrote here."""

    written: list[str]


def _relative(name: str) -> bool:
    """A manifest entry inside the folder: relative, no `..`, no empty part."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)
