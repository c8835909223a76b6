"""Errors meant for people: one line naming the file and the problem."""

from __future__ import annotations

import re
from pathlib import Path

# Native frames OpenVINO (and other C++ libraries) prefix to the reason, one per line:
# "Exception from src/inference/src/cpp/core.cpp:117:", "Check 'x' failed at src/....cpp:12:".
_FRAME = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?)$")


class WbcError(Exception):
    """A user-facing error. The CLIs print `prog: message` and exit 2, without a traceback.

    The message and the path are kept apart (`.message`, `.path`); `str()` joins them as
    `path: message`. Code that names the file itself reads `.message`, never strips a prefix.
    """

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.message = message
        self.path = path
        super().__init__(message, path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path is not None else self.message


class BundleError(WbcError):
    """A model bundle is missing, malformed, or does not match its artifacts."""


class ImageError(WbcError):
    """An image file cannot be read or decoded."""


class NoCellFound(WbcError):
    """No stained white-cell nucleus in the image: reported, never guessed."""


class DataError(WbcError):
    """A data folder, split manifest or groups file is unusable."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The line of an exception that says what went wrong: its first, native source frames
    dropped (an OpenVINO error's first line is only `Exception from src/...core.cpp:117:`);
    its type name if it has no text."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = [line for line in lines if not _FRAME.match(line)]
    text = (reasons or lines or [type(exc).__name__])[0]
    return text[:limit]
