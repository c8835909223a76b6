"""Sane ranges of the numeric options, checked where they are parsed (one line each).

`--scale nan`, `--threads 100000` or `--min-nucleus-area -5` are refused by argparse with a
line naming the option and its range, never a traceback or a silent nonsense count.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from wbc_edge.core.errors import WbcError

SCALE_RANGE = (0.05, 50.0)  # --scale: camera px per training px (a measurement: edge_app.scale)
THREADS_RANGE = (1, 64)  # inference threads (a Pi has 4 cores, big servers well under 64)
THRESHOLD_RANGE = (0.0, 1.0)  # a confidence
AREA_RANGE = (1, 1_000_000)  # nucleus area in training-image px² (a 150 px crop is 22,500)
FRAMES_RANGE = (1, 10**12)


def check_scale(value: float) -> float:
    """The scale, or WbcError when it is not finite or outside SCALE_RANGE."""
    lo, hi = SCALE_RANGE
    if not (math.isfinite(value) and lo <= value <= hi):
        raise WbcError(f"scale must be a number from {lo:g} to {hi:g}, got {value}")
    return float(value)


def check_threads(value: int) -> int:
    lo, hi = THREADS_RANGE
    if not lo <= value <= hi:
        raise WbcError(f"threads must be from {lo} to {hi}, got {value}")
    return int(value)


def float_in(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse type: a finite float within [lo, hi]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"{text} is not a number from {lo:g} to {hi:g}")
        return value

    parse.__name__ = "number"  # argparse names the type in its message
    return parse


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: a whole number within [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is not from {lo} to {hi}")
        return value

    parse.__name__ = "whole number"
    return parse
