"""Reading JSON files within limits: a regular file, at most so many bytes, nested so deep.

A bundle.json, camera profile or report.json is checked before it is parsed: a link to
`/dev/zero` or a FIFO is refused instead of read until memory runs out, a 100 MB file instead of
loaded, and `[[[[...` 100,000 deep instead of a RecursionError. Every problem is a WbcError
naming the file, in one line.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.errors import WbcError

MAX_DEPTH = 64  # deepest nesting of objects and lists accepted (wbc-edge's own files use < 10)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def read_json(
    path: Path | str,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
    error: type = WbcError,
    nan_as_null: bool = False,
) -> Any:
    """The parsed JSON of a regular file of at most `max_bytes`; `error` (a WbcError class)
    naming the file when it is not one, is too large, too deep or not valid JSON.
    `nan_as_null` reads the bare words NaN and ±Infinity (Python's json writes them) as null."""
    raw = read_limited(path, max_bytes, error)
    depth = json_depth(raw)
    if depth > max_depth:
        raise error(f"JSON nested {depth} deep, over the limit of {max_depth}", path)
    try:
        constant = (lambda _: None) if nan_as_null else None
        return json.loads(raw.decode("utf-8"), parse_constant=constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise error(f"not valid JSON ({str(exc)[:120]})", path) from None


def read_limited(path: Path | str, max_bytes: int, error: type = WbcError) -> bytes:
    """The bytes of a regular file (a link to one is fine) of at most `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error("no such file", path) from None
    except OSError as exc:
        raise error(f"cannot open ({exc.strerror or exc})", path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error("not a regular file (a device, FIFO or folder?)", path)
        if st.st_size > max_bytes:
            raise error(f"{st.st_size:,} bytes, over the limit of {max_bytes:,}", path)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read ({exc.strerror or exc})", path) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"over the limit of {max_bytes:,} bytes", path)
    return data


def json_depth(raw: bytes) -> int:
    """The deepest nesting of `[` and `{` in JSON text (strings skipped), without parsing it."""
    bare = _STRING.sub(b"", raw)
    codes = np.frombuffer(bare, dtype=np.uint8)
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int32)
    step -= np.isin(codes, (ord("]"), ord("}"))).astype(np.int32)
    return int(np.cumsum(step).max(initial=0))
