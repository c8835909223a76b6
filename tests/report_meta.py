"""The `meta` a run report is made with, for tests that build a RunReport by hand."""

from __future__ import annotations

from typing import Any

from wbc_edge.core.preprocess_spec import PreprocessSpec


def report_meta(spec: PreprocessSpec, classes: list[str], **changes: Any) -> dict[str, Any]:
    """A report's meta as `edge_app.report.run_meta` gives it, with fixed made-up values."""
    meta: dict[str, Any] = {
        "model": "m",
        "bundle": "b",
        "bundle_sha256": "0" * 64,
        "classes": classes,
        "runtime": "r",
        "mode": "field",
        "scale": 2.0,
        "threshold": 0.6,
        "source": "s",
        "date": "2026-12-01T00:00:00+00:00",
        "spec": spec,
    }
    return meta | changes
