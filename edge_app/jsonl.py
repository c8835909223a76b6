"""The JSONL log of a run: one whole, valid JSON object per line, or a one-line failure.

- An output path that is one of the run's inputs is refused before anything is opened, so an
  input is never overwritten before it is read.
- Each line is built whole and written with one call; if the disk fills up halfway, the file is
  cut back to its last whole line. A full disk or a closed pipe (`| head -1`) ends the log:
  `failure` says why in one line, later writes do nothing, and the run stops and prints its
  summary (the CLI then exits non-zero).
- Only valid JSON: NaN and Infinity are refused (`allow_nan=False`); such a record is replaced by
  an error record for its source, never written as bare `NaN`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wbc_edge.core.cli_support import silence_stdout
from wbc_edge.core.errors import WbcError

log = logging.getLogger("wbc_edge.edge_app.jsonl")


class JsonlWriter:
    """One JSON object per line, written whole; `-` is stdout. Does nothing for None."""

    def __init__(
        self,
        target: str | Path | None,
        inputs: Iterable[Path | str] = (),
        fields: dict[str, str] | None = None,
    ) -> None:
        """`fields` (the run's sample and operator) are added to every record."""
        self.target = target
        self.fields = dict(fields or {})
        self.lines = 0  # whole lines written
        self.failure: str | None = None  # why the log ended early (one line), if it did
        self._fd: int | None = None
        self._text = None  # a stdout without a file descriptor (tests' capture)
        self._own = False
        self._offset = 0
        if target is None:
            return
        if str(target) == "-":
            self._open_stdout()
            return
        refuse_input(target, inputs)
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise WbcError(f"cannot write ({exc.strerror})", target) from None
        self._own = True

    @property
    def to_stdout(self) -> bool:
        """Records go to stdout (so the summary must go to stderr)."""
        return self.target is not None and str(self.target) == "-"

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def write(self, record: dict[str, Any]) -> bool:
        """Write one record as one line; False once the log has failed (nothing written)."""
        if self.failure is not None or (self._fd is None and self._text is None):
            return self.failure is None
        data = (_dumps({**record, **self.fields}) + "\n").encode("utf-8")
        try:
            if self._text is not None:
                self._text.write(data.decode("utf-8"))
                self._text.flush()
            else:
                self._write_all(data)
        except OSError as exc:
            self._fail(exc)
            return False
        self.lines += 1
        return True

    def close(self) -> None:
        if self._fd is not None and self._own:
            os.close(self._fd)
        self._fd = None
        self._text = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_stdout(self) -> None:
        try:
            sys.stdout.flush()
            self._fd = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
            self._text = sys.stdout

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._cut_back()
            raise
        self._offset += len(data)

    def _cut_back(self) -> None:
        """Remove a partial last line from a regular file (a pipe cannot be cut)."""
        if not self._own or self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._offset)
        except OSError as exc:
            log.debug("could not cut %s back to its last whole line: %s", self.target, exc)

    def _fail(self, exc: OSError) -> None:
        name = "stdout" if self.to_stdout else str(self.target)
        if exc.errno == errno.EPIPE:
            why = "the reader closed the pipe"
            if self.to_stdout:
                silence_stdout()
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
            why = "the disk is full"
        else:
            why = exc.strerror or type(exc).__name__
        done = f"the log ends after {self.lines} whole records"
        self.failure = f"{name}: cannot write the JSONL log ({why}); {done}"
        self.close()


def refuse_input(target: str | Path, inputs: Iterable[Path | str]) -> None:
    """Raise WbcError when `target` is (the same file as) one of `inputs`."""
    out = Path(target)
    if not out.exists():
        return
    for path in inputs:
        try:
            same = os.path.samefile(out, path)
        except OSError:
            continue
        if same:
            raise WbcError("is one of the inputs: refusing to overwrite it with the log", target)


def _dumps(record: dict[str, Any]) -> str:
    try:
        return json.dumps(record, separators=(", ", ": "), allow_nan=False)
    except ValueError:  # NaN/Infinity: never written as invalid JSON, never as a result
        log.warning("%s: a record held NaN/Infinity; written as an error", record.get("source"))
        error = {"source": record.get("source", "?"), "error": "the result held NaN or Infinity"}
        if isinstance(record.get("frame"), int) and record["frame"]:
            error["frame"] = record["frame"]
        return json.dumps(error, separators=(", ", ": "))
