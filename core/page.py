"""The one page builder: every HTML page the program writes or serves comes from a Jinja2 template.

`render(package, name, **values)` fills the template `name` from `templates/` of the stage
`package` (`wbc_edge.convert`, `wbc_edge.edge_app`), falling back to core's own templates:
`base.html` (the layout every page extends), `macros.html` (a table of strings) and
`message.html` (a short page of lines). Every value is escaped, and shown printable (control
characters, bidi overrides and odd bytes as `\\x1b`, `core.safe_io.printable`), and a name the
template uses but the caller did not give is an error: a file name or a form field never
becomes markup. `write_page` writes a page atomically; `data_uri`, `image_uri` and `thumbnail`
embed pictures, encoded by the one image encoder (`core.safe_io.encode_image`), so a page is
one file.

To add a page: a template in the stage's `templates/` folder that extends "base.html", listed in
pyproject's package-data, and a function that gathers its values (formatted strings and plain
data, no markup) and calls `render` or `write_page`.
"""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from wbc_edge.core.safe_io import atomic_write, encode_image, printable

CORE = "wbc_edge.core"
WHITESPACE = {"trim_blocks": True, "lstrip_blocks": True}  # a line holding only a {% tag %} goes


@cache
def environment(package: str = CORE) -> Environment:
    """The Jinja2 environment of a stage's pages: its templates first, then core's."""
    loaders = [PackageLoader(p, "templates") for p in dict.fromkeys((package, CORE))]
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_printable,
        **WHITESPACE,
    )


def _printable(value: Any) -> Any:
    """Every text value as `safe_io.printable` shows it (then escaped): no control character,
    bidi override or undecodable byte of a file name reaches a page. Markup is left alone."""
    return printable(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def render(package: str, name: str, **values: Any) -> str:
    """The page `name` (a template of `package`, or of core) filled with `values`."""
    return environment(package).get_template(name).render(**values)


def write_page(path: Path, package: str, name: str, **values: Any) -> Path:
    """`render` written to `path` atomically."""
    return atomic_write(path, render(package, name, **values))


def data_uri(data: bytes, mime: str) -> str:
    """Bytes as a `data:` URI an <img> shows without another file."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_uri(rgb: np.ndarray, suffix: str = ".png", quality: int = 92) -> str:
    """An RGB uint8 image as a PNG or JPEG data URI."""
    mime = "image/png" if suffix == ".png" else "image/jpeg"
    return data_uri(encode_image(rgb, suffix, quality), mime)


def thumbnail(rgb: np.ndarray, size: int) -> np.ndarray:
    """`rgb` shrunk to fit in size x size, its aspect kept (never enlarged)."""
    import cv2

    h, w = rgb.shape[:2]
    f = size / max(h, w, 1)
    if f >= 1:
        return rgb
    return cv2.resize(
        rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
    )
