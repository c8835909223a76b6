"""Errors meant for people: one line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class WbcError(Exception):
    """A user-facing error. The CLIs print `prog: message` and exit 2, without a traceback."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}" if path is not None else message)


class BundleError(WbcError):
    """A model bundle is missing, malformed, or does not match its artifacts."""


class ImageError(WbcError):
    """An image file cannot be read or decoded."""


class NoCellFound(WbcError):
    """No stained white-cell nucleus in the image: reported, never guessed."""


class DataError(WbcError):
    """A data folder, split manifest or groups file is unusable."""
