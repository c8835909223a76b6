"""Progress a technician can see: towards a `--target` cell count, and through a long folder.

On a terminal, one line is rewritten in place (at most `REDRAW` times a second) and a bell
rings when the target is reached; piped or logged (not a terminal), progress stays quiet and
only the target's one line is written, once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

REDRAW = 0.25  # seconds between redraws of the line
BAR = 20  # characters of the bar
FOLDER_MIN = 20  # inputs below which `classify` shows no progress
TARGETS = (100, 200)  # what a manual differential counts (CLSI H20-A2); others allowed

T = TypeVar("T")


def _interactive(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(done: int, total: int) -> str:
    filled = min(BAR, BAR * done // max(1, total))
    return "[" + "#" * filled + "." * (BAR - filled) + "]"


class TargetProgress:
    """The count towards `target` white cells: `update` says when it is reached (once)."""

    def __init__(self, target: int, stream: TextIO | None = None, clock=time.monotonic) -> None:
        self.target = target
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = _interactive(self.stream)
        self.reached = False
        self._clock = clock
        self._last = -REDRAW

    def line(self, counts: dict[str, int]) -> str:
        total = sum(counts.values())
        parts = "  ".join(f"{c[:3]} {n}" for c, n in counts.items())
        return f"{min(total, self.target)}/{self.target} cells {bar(total, self.target)}  {parts}"

    def update(self, counts: dict[str, int]) -> bool:
        """Redraw the line; True the first time the count reaches the target."""
        total = sum(counts.values())
        now = self._clock()
        if self.interactive and (now - self._last >= REDRAW or total >= self.target):
            self.stream.write("\r" + self.line(counts) + "\033[K")
            self.stream.flush()
            self._last = now
        if total < self.target or self.reached:
            return False
        self.reached = True
        bell = "\a" if self.interactive else ""
        self.stream.write(
            f"{bell}{'' if not self.interactive else chr(10)}"
            f"target reached: {self.target} white cells counted\n"
        )
        self.stream.flush()
        return True


def with_progress(
    items: Iterable[T], total: int, what: str, stream: TextIO | None = None, clock=time.monotonic
) -> Iterator[T]:
    """`items` unchanged, with a progress line on a terminal when there are many of them."""
    stream = stream if stream is not None else sys.stderr
    if total < FOLDER_MIN or not _interactive(stream):
        yield from items
        return
    start = last = clock()
    for done, item in enumerate(items, 1):
        yield item
        now = clock()
        if now - last >= REDRAW or done == total:
            rate = done / max(now - start, 1e-9)
            left = (total - done) / rate if rate > 0 and done < total else 0.0
            stream.write(
                f"\r{what}: {done}/{total} {bar(done, total)} {rate:.1f}/s, "
                f"{_duration(left)} left\033[K"
            )
            stream.flush()
            last = now
    stream.write("\r\033[K")
    stream.flush()


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
