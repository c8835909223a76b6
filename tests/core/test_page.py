"""The one page builder (core.page): every page escapes what it is given, a missing value is an
error, pictures are inlined; hostile names and strings come out as text on each page."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from jinja2 import UndefinedError
from repo_paths import REPO

from wbc_edge.core import page
from wbc_edge.edge_app.live_page import _page
from wbc_edge.edge_app.report_html import render_html
from wbc_edge.edge_app.review import message_page

pytestmark = pytest.mark.edge

HOSTILE = "<script>alert('x')</script>\x1b[2J\u202e"
CLASSES = ["EOSINOPHIL", "LYMPHOCYTE"]


def assert_escaped(html: str) -> None:
    """The hostile string is on the page only as text."""
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_values_are_escaped_and_a_missing_value_is_an_error(tmp_path) -> None:
    html = page.render(
        "wbc_edge.edge_app", "message.html", title=HOSTILE, lines=[HOSTILE], link=None
    )
    assert_escaped(html)
    assert html.startswith("<!doctype html>") and "<meta charset=utf-8>" in html
    with pytest.raises(UndefinedError):
        page.render("wbc_edge.edge_app", "message.html", title="t", lines=[])
    written = page.write_page(tmp_path / "p.html", page.CORE, "message.html", title="t",
                              lines=["a"], link=("/x?token='><b>", "back"))  # fmt: skip
    assert "href='/x?token=&#39;&gt;&lt;b&gt;'" in written.read_text()
    assert not list(tmp_path.glob(".wbc-*"))  # written through a temporary file, renamed


def test_pictures_are_inlined_by_the_one_encoder() -> None:
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[..., 0] = 255
    uri = page.image_uri(page.thumbnail(rgb, 20), ".png")
    assert uri.startswith("data:image/png;base64,")
    import cv2

    back = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), 1)
    assert back.shape == (15, 20, 3) and (back[..., 2] == 255).all()  # red, aspect kept
    assert page.thumbnail(rgb, 96) is rgb  # never enlarged
    assert page.image_uri(rgb, ".jpg").startswith("data:image/jpeg;base64,")


def report_data(source: str, note: str) -> dict:
    """A report.json's content by hand: one cell from `source`, a `note` on top."""
    rows = [
        {"class": c, "cells": 1, "percent": 50.0, "ci95_low": 9.5, "ci95_high": 90.5,
         "uncertain": 0} for c in CLASSES
    ]  # fmt: skip
    meta = {
        "classes": CLASSES, "model": note, "date": "2026-01-01T00:00:00Z", "bundle": source,
        "bundle_sha256": "0" * 64, "runtime": "litert", "mode": "field", "scale": 2.0,
        "threshold": 0.9, "source": source, "sample": None, "operator": None,
    }  # fmt: skip
    count = {
        "rows": rows, "cells": 2, "frames": 1, "interval": "Wilson", "threshold": 0.9,
        "uncertain": 0, "frames_without_white_cell": 0, "errors": 0, "estimate_note": note,
    }  # fmt: skip
    cell = {
        "id": 1, "source": source, "frame": 0, "label": "EOSINOPHIL", "confidence": 0.95,
        "uncertain": True, "crop": "cells/00001.png", "context": "", "probs": {note: 0.05},
    }  # fmt: skip
    return {
        "meta": meta, "count": count, "cells": [cell], "notes": [note],
        "flagged_frames": [{"source": source, "frame": 0, "flags": [note]}],
    }  # fmt: skip


@pytest.mark.parametrize("form", [False, True])
def test_the_report_page_shows_hostile_names_as_text(tmp_path, form: bool) -> None:
    source = f"/frames/{HOSTILE}.jpg"
    html = render_html(report_data(source, HOSTILE), tmp_path, form=form, token="t'><b>")
    assert_escaped(html)
    assert "\x1b" not in html and "\u202e" not in html
    assert "\\x1b[2J\\u202e.jpg" in html  # a file name: control characters shown escaped
    if form:
        assert "action='save?token=t&#39;&gt;&lt;b&gt;'" in html
        names = re.search(r"<script type=application/json id=classes>(.*?)</script>", html)[1]
        assert names == '["EOSINOPHIL", "LYMPHOCYTE", "not a white cell"]'


def test_the_live_page_and_the_review_messages_escape_what_they_show() -> None:
    live = _page("</script><script>alert(1)</script>").decode()
    assert "</script><script>alert" not in live and "\\u003c/script\\u003e" in live
    assert_escaped(message_page(HOSTILE, [HOSTILE, HOSTILE], ("/?token=t", "Back")))


def test_every_template_is_packaged() -> None:
    tomllib = pytest.importorskip("tomllib")
    root = REPO
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = {f"{pkg.split('.')[1]}/{glob}" for pkg, globs in data["package-data"].items()
              for glob in globs}  # fmt: skip
    for template in root.glob("*/templates/*.html"):
        assert f"{template.parent.parent.name}/templates/*.html" in listed, template
