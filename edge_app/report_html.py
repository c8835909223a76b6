"""The run report's page: self-contained (inline CSS, SVG chart, data-URI images), printable.

`render_html(data, folder, form=True)` is the same page with a class choice under each cell, the
review instructions, keys and sign/amend forms, as `wbc-edge review` serves it. The markup is
templates/report.html, filled by the one page builder (`core.page`); this module gathers its
values: the count table's columns, the chart's bars, the gallery's groups and captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from wbc_edge.core import page
from wbc_edge.edge_app.identity import MAX_LENGTH
from wbc_edge.edge_app.signing import result_status

MIN_DIFFERENTIAL = 100  # white cells a differential needs (CLSI H20 counts 200 by hand)
NOT_A_CELL = "not a white cell"

LEGEND = [
    ("differential %", "share of the white cells counted, per class; (corrected): adjusted for "
     "the model's known confusions between classes"),
    ("95 % interval", "the range that holds the true share with 95 % confidence"),
    ("raw %", "each cell's class as the model gave it, counted"),
    ("uncertain", "the model's confidence was below the threshold; review these first"),
    ("reviewed", "after a person confirmed or changed each cell"),
    ("#12 · 0.93", "cell number · the model's confidence in its class (0-1)"),
    ("2nd", "the runner-up class and its probability"),
    ("f12", "frame 12 of a video (or frames 3-9 of a tracked cell)"),
    ("N", "nucleus area (µm², or px² without a scale)"),
    ("N:C", "nucleus-to-cell area ratio"),
    ("lobes", "separate lobes of the nucleus"),
    ("gran", "granule score 0-1: texture of the cytoplasm (eosinophil granules score high)"),
    ("REVIEW", "an uncertain cell"),
    ("✓ / →", "confirmed as the model's class / changed to another class"),
    ("scale", "camera pixels per training-image pixel"),
    ("sha256", "fingerprint of a file (the model's bundle.json, or what was signed)"),
    ("UTC", "coordinated universal time"),
]  # fmt: skip


def render_html(data: dict[str, Any], folder: Path, form: bool = False, token: str = "") -> str:
    """The page for a report folder's data (report.json, plus `review` once reviewed); with
    `form`, the review page, whose buttons send the server's `token`. Once the review is
    signed, the headline and chart show the reviewed count (and say so) and the page is
    read-only."""
    meta, count = data["meta"], data["count"]
    review = data.get("review")
    signed = result_status(review) == "final"
    shown = review["count"] if signed else count
    return page.render(
        "wbc_edge.edge_app",
        "report.html",
        meta=meta,
        count=count,
        review=review,
        status=result_status(review),
        signed=signed,
        form=form,
        editable=form and not signed,
        token=token,
        version=review.get("version", 1) if review else 1,
        shown=shown,
        notes=data.get("notes", []),
        min_differential=MIN_DIFFERENTIAL,
        specimen=specimen_items(meta, review),
        table=count_table(count, review),
        chart=chart(shown["rows"]),
        run=meta_items(meta, count),
        flagged=data.get("flagged_frames", []),
        gallery=gallery(data["cells"], meta["classes"], folder, review, form, token),
        classes=meta["classes"],
        not_a_cell=NOT_A_CELL,
        choices=[("", "(not reviewed)")] + [(c, c) for c in (*meta["classes"], NOT_A_CELL)],
        max_length=MAX_LENGTH,
        legend=LEGEND,
    )


def specimen_items(meta: dict[str, Any], review: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Specimen, operator, reviewer and signature: the fields a lab files."""
    sig = (review or {}).get("signature")
    items = [
        ("Specimen (sample id)", meta.get("sample") or "not given"),
        ("Operator", meta.get("operator") or "not given"),
        ("Result", "final (signed)" if sig else "preliminary (not signed)"),
        ("Reviewed by", sig["reviewer"] if sig else "not yet"),
    ]
    if review:
        items.append(("Review version", str(review.get("version", 1))))
    if sig:
        items += [("Signed (UTC)", sig["time"]), ("Signature sha256", sig["sha256"])]
    for old in (review or {}).get("history", []):
        old_sig = old.get("signature") or {}
        items.append(
            (
                f"Version {old.get('version', 1)}",
                f"signed by {old_sig.get('reviewer', '?')} at {old_sig.get('time', '?')}, "
                f"amended {old.get('amended', '?')} (signed/report-v{old.get('version', 1)}.html)",
            )
        )
    return items


def count_table(count: dict[str, Any], review: dict[str, Any] | None) -> dict[str, Any]:
    """The count table: the differential a lab reads (corrected when the bundle can) with its
    interval, the raw count beside it, and the reviewed count after review; once signed, the
    reviewed columns come first (they are the result)."""
    reviewed = {r["class"]: r for r in (review or {}).get("count", {}).get("rows", [])}
    rows = [
        {
            "class": r["class"],
            "model": _model_cells(r, r.get("raw_percent", r["percent"])),  # raw: older reports
            "reviewed": _reviewed_cells(reviewed[r["class"]]) if reviewed else None,
        }
        for r in count["rows"]
    ]
    left = review["count"]["uncertain"] if review else 0
    return {
        "corrected": count.get("estimate") == "corrected",
        "reviewed_first": result_status(review) == "final",
        "has_reviewed": bool(reviewed),
        "rows": rows,
        "reviewed_total": review["count"]["cells"] if reviewed else None,
        "corrections": len(review.get("corrections", {})) if review else 0,
        "rejected": review["count"].get("rejected", 0) if review else 0,
        "confirmed": len(review.get("confirmed", [])) if review else 0,
        "left": f"{left} uncertain {'cell' if left == 1 else 'cells'}" if left else "",
        "reviewed_on": review.get("date", "") if review else "",
        "note": count.get("estimate_note") or "",
        "raw_interval": count.get("raw_interval", count["interval"]),
    }


def _model_cells(r: dict[str, Any], raw: float) -> dict[str, str]:
    return {
        "cells": str(r["cells"]),
        "percent": f"{r['percent']:.1f}",
        "low": f"{r['ci95_low']:.1f}",
        "high": f"{r['ci95_high']:.1f}",
        "raw": f"{raw:.1f}",
        "uncertain": str(r["uncertain"]),
    }


def _reviewed_cells(v: dict[str, Any]) -> dict[str, str]:
    return {
        "cells": str(v["cells"]),
        "percent": f"{v['percent']:.1f}",
        "low": f"{v['ci95_low']:.1f}",
        "high": f"{v['ci95_high']:.1f}",
    }


def chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars (percent) with the 95 % interval as a whisker; 0-100 % axis."""
    left, width, row, top = 104, 320, 30, 10
    x = lambda pct: left + width * pct / 100  # noqa: E731
    bars = []
    for k, r in enumerate(rows):
        y = top + k * row
        mid = y + row / 2 - 2
        lo, hi = x(r["ci95_low"]), x(r["ci95_high"])
        bars.append(
            {
                "class": r["class"],
                "label_y": f"{mid + 4}",
                "y": f"{y + 4}",
                "width": f"{x(r['percent']) - left:.1f}",
                "height": f"{row - 12}",
                "whisker": f"M{lo:.1f} {mid}H{hi:.1f}M{lo:.1f} {mid - 5}v10M{hi:.1f} {mid - 5}v10",
                "text_x": f"{hi + 6:.1f}",
                "text": f"{r['cells']} ({r['percent']:.1f} %)",
            }
        )
    base = top + row * len(rows)
    return {
        "left": left,
        "label_x": left - 6,
        "right": left + width,
        "view_width": left + width + 124,
        "view_height": base + 26,
        "base": base,
        "bars": bars,
        "ticks": [(pct, x(pct)) for pct in (0, 25, 50, 75, 100)],
    }


def meta_items(meta: dict[str, Any], count: dict[str, Any]) -> list[tuple[str, Any]]:
    """The run: model, bundle, runtime, mode and scale, source, frames, date."""
    return [
        ("model", meta["model"]),
        ("bundle", meta["bundle"]),
        ("bundle.json sha256", meta["bundle_sha256"]),
        ("runtime", meta["runtime"]),
        ("mode, scale", f"{meta['mode']} mode, scale {_scales(meta)} camera px per training px"),
        ("uncertain below", f"{meta['threshold']:.2f} confidence"),
        ("source", meta["source"]),
        (
            "frames",
            f"{count['frames']} ({count['frames_without_white_cell']} without a white "
            f"cell, {count['errors']} unreadable)",
        ),
        ("date (UTC)", meta["date"]),
    ]


def _scales(meta: dict[str, Any]) -> str:
    """The scale the frames were analysed at: `2.1`, or `2.11 (measured over the run; frames
    analysed at 1.76-2.11 while it settled)` when frames differed (the summary's value)."""
    scales = meta.get("scales")
    if not isinstance(scales, dict) or len(scales) < 2:
        return f"{meta['scale']:g}"
    values = [float(s) for s in scales]
    return (
        f"{meta['scale']:g} (measured over the run; frames analysed at {min(values):g}-"
        f"{max(values):g} while it settled)"
    )


def gallery_order(cells: list[dict[str, Any]], classes: list[str]) -> list[list[dict[str, Any]]]:
    """Cells grouped by the model's class; uncertain first (least confident first)."""
    groups = []
    for cls in classes:
        mine = [c for c in cells if c["label"] == cls]
        unsure = sorted((c for c in mine if c["uncertain"]), key=lambda c: c["confidence"])
        groups.append(unsure + [c for c in mine if not c["uncertain"]])
    return groups


def gallery(
    cells: list[dict[str, Any]],
    classes: list[str],
    folder: Path,
    review: dict[str, Any] | None,
    served: bool,
    token: str,
) -> dict[str, Any]:
    """Every shown cell, grouped by the model's class, uncertain first; on the review page
    (`served` and not signed) every uncertain cell comes first in a group of its own.
    `served`: links go to the review server's `/context/ID` (with `token`)."""
    decisions = _decisions(review)
    first = served and result_status(review) != "final"
    figure = lambda c: _figure(c, folder, decisions.get(str(c["id"])), served, token)  # noqa: E731
    groups = gallery_order(cells, classes)
    unsure: list[dict[str, Any]] = []
    if first:
        unsure = sorted((c for c in cells if c["uncertain"]), key=lambda c: c["confidence"])
        groups = [[c for c in g if not c["uncertain"]] for g in groups]
    return {
        "uncertain": [figure(c) for c in unsure] if first else None,
        "groups": [
            {
                "class": cls,
                "id": f"g{k}",
                "cells": "cell" if len(group) == 1 else "cells",
                "n": len(group),
                "uncertain": sum(c["uncertain"] for c in group),
                "figures": [figure(c) for c in group],
            }
            for k, (cls, group) in enumerate(zip(classes, groups, strict=True))
        ],
    }


def _decisions(review: dict[str, Any] | None) -> dict[str, str]:
    """{cell id: the class a person gave it} (confirmed cells keep the model's: marked '=')."""
    review = review or {}
    out = dict.fromkeys(review.get("confirmed", []), "=")
    out.update(review.get("corrections", {}))
    return out


def _figure(
    c: dict[str, Any], folder: Path, decided: str | None, served: bool, token: str
) -> dict[str, Any]:
    """One cell's picture, caption and choice."""
    others = sorted(
        ((p, k) for k, p in c.get("probs", {}).items() if k != c["label"]), reverse=True
    )
    return {
        "id": c["id"],
        "kind": "uncertain" if c["uncertain"] else "certain",
        "label": c["label"],
        "uncertain": c["uncertain"],
        "src": _data_uri(folder, c["crop"]),
        "confidence": f"{c['confidence']:.2f}",
        "runner_up": f"{others[0][1]} {others[0][0]:.2f}" if others else "",
        "where": Path(c["source"]).name + (f" f{c['frame']}" if c["frame"] not in (0, "0") else ""),
        "context": context_href(c, served, token),
        "morphology": morphology_line(c["morphology"]).split(" · ") if c.get("morphology") else [],
        "decided": decided,
        "chosen": c["label"] if decided == "=" else (decided or ""),
    }


def context_href(c: dict[str, Any], served: bool, token: str) -> str:
    """The link to the cell's picture at training-image scale (its surroundings), or ''."""
    if not c.get("context"):
        return ""
    # served: the server's route; a file: relative, never a scheme such as javascript:
    return f"context/{c['id']}?token={quote(token)}" if served else "./" + quote(c["context"])


def morphology_line(m: dict[str, Any]) -> str:
    """A gallery caption of the measurements: nucleus area, N:C ratio, lobes, granules."""
    area = (
        f"{m['nucleus_area_um2']:.0f} µm²"
        if m.get("nucleus_area_um2") is not None
        else (f"{m['nucleus_area_px']:.0f} px²")
    )
    lobes = "lobe" if m["lobes"] == 1 else "lobes"
    return (
        f"N {area} · N:C {m['nc_ratio']:.2f} · {m['lobes']} {lobes} · gran {m['granule_score']:.2f}"
    )


def _data_uri(folder: Path, rel: str) -> str:
    """The image `rel` under `folder` as a JPEG data URI (a fifth of the PNG's size: the page
    stays small); empty when it is not a readable image inside the folder."""
    from wbc_edge.core.errors import WbcError
    from wbc_edge.core.safe_io import read_image_bgr
    from wbc_edge.edge_app.report_check import confined

    path = confined(folder, rel)
    bgr = read_image_bgr(path) if path is not None else None
    if bgr is None:
        return ""
    try:
        return page.image_uri(bgr[:, :, ::-1], ".jpg", quality=90)
    except WbcError:
        return ""
