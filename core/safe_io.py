"""Writing files safely, whatever their names: atomic writes, byte-safe image I/O, printable names.

- `atomic_write(path, data)`: a temporary file beside `path`, fsynced, then renamed over it, so a
  reader sees the old file or the new one, never half of one; a failure is one WbcError line.
- `read_image_bgr` / `encode_image`: images through numpy buffers (`cv2.imdecode`/`imencode`) and
  Python file I/O. OpenCV's own path functions take a `str` they cannot encode when a name is not
  UTF-8 (Python holds such bytes as surrogates) and crash the process.
- `opencv_path(path)`: a name OpenCV can open for a video (`/proc/self/fd/N` for an odd name).
- `printable(text)`: control characters, bidi overrides and undecodable bytes escaped, so a
  file name never moves the cursor, retitles the terminal or splits a line.
- `csv_field(value)`: a spreadsheet never runs a cell as a formula (OWASP CSV injection).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wbc_edge.core.errors import WbcError

# Characters that start a formula in Excel, LibreOffice or Google Sheets (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def atomic_write(path: Path | str, data: bytes | str, mode: int = 0o644) -> Path:
    """Write `data` to `path` through a temporary file and a rename; WbcError if it cannot."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".wbc-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise WbcError(f"cannot write ({exc.strerror or exc})", printable(str(path))) from None
    return path


def check_writable(
    folder: Path, problem: str = "cannot write here", error: type[WbcError] = WbcError
) -> None:
    """Create `folder` and prove a file can be written in it; `error` naming it otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".wbc-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise error(f"{problem} ({exc.strerror or exc})", printable(str(folder))) from None


def encode_image(rgb: np.ndarray, suffix: str, quality: int = 92) -> bytes:
    """An RGB uint8 image encoded as `suffix` (.jpg or .png) bytes."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise WbcError(f"cannot encode a {suffix} image")
    return buf.tobytes()


def write_image(path: Path, rgb: np.ndarray, quality: int = 92) -> Path:
    """Write an RGB image atomically (JPEG or PNG by suffix); WbcError if it cannot."""
    return atomic_write(path, encode_image(rgb, path.suffix, quality))


def read_image_bgr(path: Path) -> np.ndarray | None:
    """An image file as OpenCV's BGR array, or None when it cannot be read or decoded."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError):
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


@contextlib.contextmanager
def opencv_path(path: Path) -> Iterator[str]:
    """A name of `path` that OpenCV's VideoCapture can take: the path itself when it is plain
    UTF-8 text, else the open file's `/proc/self/fd/N` (Linux); WbcError where neither works."""
    name = str(path)
    if is_plain(name):
        yield name
        return
    if not Path("/proc/self/fd").is_dir():
        raise WbcError("OpenCV cannot open a file with this name: rename it", printable(name))
    fd = os.open(path, os.O_RDONLY)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def is_plain(text: str) -> bool:
    """True for text that encodes as UTF-8 and holds no control character."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return printable(text) == text


def printable(text: str) -> str:
    """`text` with control characters (C0, C1, DEL, line separators, bidi overrides) escaped
    as `\\x1b`, `\\u202e`, and bytes that were not UTF-8 (surrogate escapes) as `\\xff`."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        elif ch == "\\" or not (ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp")):
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def csv_field(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: names printable, and a string starting with
    = + - @ tab CR LF prefixed with ' (OWASP); numbers are left as numbers."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return "'" + text if value.startswith(FORMULA_START) else text


def safe_file_stem(text: str, limit: int = 80) -> str:
    """`text` as part of a file name: letters, digits and `._-+` kept, anything else `_`."""
    out = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-+") else "_" for ch in text)
    out = out.strip(".") or "_"
    return out[:limit]
