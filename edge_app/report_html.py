"""The HTML of the run report: self-contained (inline CSS, SVG chart, data-URI images), printable.

`render_html(data, folder, form=True)` is the same page with a class choice under each cell and
a save button, as `wbc-edge review` serves it.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

NOT_A_CELL = "not a white cell"

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:14px 0 6px}.sub{color:#555}
.warn{background:#fff4e0;border:1px solid #e0a040;padding:6px 10px;margin:8px 0}
table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.total td{font-weight:bold;border-top:2px solid #999}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dt{color:#555}
dd{margin:0;word-break:break-all}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:112px;border:2px solid #9c9;padding:3px;font-size:11px;break-inside:avoid}
figure.uncertain{border-color:#e89a00;background:#fff4e0}
figure img{width:104px;height:104px;display:block;image-rendering:auto}
figcaption{overflow-wrap:anywhere}.tag{color:#b06000;font-weight:bold}
.fixed{color:#06c;font-weight:bold}select{width:104px;font-size:11px}
.buttons{position:sticky;bottom:0;background:#fff;padding:8px 0;border-top:1px solid #ccc}
@media print{body{margin:8mm}.buttons,select{display:none}h2{break-after:avoid}}
"""


def render_html(data: dict[str, Any], folder: Path, form: bool = False, token: str = "") -> str:
    """The page for a report folder's data (report.json, plus `review` once reviewed); with
    `form`, the review page, whose Save buttons send the server's `token`."""
    meta, count = data["meta"], data["count"]
    corrections = (data.get("review") or {}).get("corrections", {})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>White-cell differential count</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>White-cell differential count</h1>",
        f"<p class=sub>{count['cells']} white cells in {count['frames']} frames &middot; "
        f"{escape(meta['model'])} &middot; {escape(meta['date'])} &middot; research and "
        "teaching aid only, not a diagnostic device</p>",
        *(f"<p class=warn>{escape(n)}</p>" for n in data.get("notes", [])),
        "<h2>Differential count</h2>",
        count_html(count, data.get("review")),
        chart_svg(count["rows"]),
        f"<p class=sub>95 % interval: {escape(count['interval'])} ({count['cells']} cells). "
        f"Uncertain: confidence below {count['threshold']:.2f}, "
        "counted in the class the model gave, shown first in the gallery.</p>",
        "<h2>Run</h2>",
        meta_html(meta, count),
        "<h2>Frames with quality flags</h2>",
        flagged_html(data.get("flagged_frames", [])),
        "<h2>Every counted cell, as the model saw it</h2>",
    ]
    if form:
        parts.append(f"<form method=post action='save?token={escape(token)}'>")
    parts.append(gallery_html(data["cells"], meta["classes"], folder, corrections, form))
    if form:
        parts.append(
            "<p class=buttons><button type=submit>Save corrections</button> "
            f"<button type=submit formaction='done?token={escape(token)}'>Save and finish</button>"
            "</p></form>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def count_html(count: dict[str, Any], review: dict[str, Any] | None) -> str:
    """The count table: the differential a lab reads (corrected when the bundle can) with its
    interval, the raw count beside it, and the reviewed count after corrections."""
    reviewed = {r["class"]: r for r in (review or {}).get("count", {}).get("rows", [])}
    corrected = count.get("estimate") == "corrected"
    what = "differential % (corrected)" if corrected else "differential %"
    head = (
        f"<tr><th>class</th><th>cells counted</th><th>{what}</th><th>95 % interval</th>"
        "<th>raw %</th><th>uncertain</th>"
    )
    if reviewed:
        head += "<th>reviewed cells</th><th>reviewed %</th><th>95 % interval</th>"
    rows = [f"<table>{head}</tr>"]
    for r in count["rows"]:
        raw = r.get("raw_percent", r["percent"])  # reports written before the correction
        line = (
            f"<tr><td>{escape(r['class'])}</td><td>{r['cells']}</td><td>{r['percent']:.1f}</td>"
            f"<td>{r['ci95_low']:.1f}&ndash;{r['ci95_high']:.1f}</td><td>{raw:.1f}</td>"
            f"<td>{r['uncertain']}</td>"
        )
        if reviewed:
            v = reviewed[r["class"]]
            line += (
                f"<td>{v['cells']}</td><td>{v['percent']:.1f}</td>"
                f"<td>{v['ci95_low']:.1f}&ndash;{v['ci95_high']:.1f}</td>"
            )
        rows.append(line + "</tr>")
    total = f"<tr class=total><td>total</td><td>{count['cells']}</td><td>100.0</td><td></td>"
    total += f"<td>100.0</td><td>{count['uncertain']}</td>"
    if reviewed:
        rc = review["count"]
        total += f"<td>{rc['cells']}</td><td>100.0</td><td></td>"
    rows.append(total + "</tr></table>")
    note = count.get("estimate_note")
    if note:
        rows.append(
            f"<p class=note>Differential: {escape(note)}. Raw %: each cell's label counted "
            f"({escape(count.get('raw_interval', count['interval']))}).</p>"
        )
    if review:
        n, rejected = len(review.get("corrections", {})), review["count"].get("rejected", 0)
        rows.append(
            f"<p>Reviewed {escape(review.get('date', ''))}: {n} "
            f"{'correction' if n == 1 else 'corrections'} ({rejected} not a white cell); "
            f"{review['count']['uncertain']} uncertain cells not reviewed.</p>"
        )
    return "\n".join(rows)


def chart_svg(rows: list[dict[str, Any]]) -> str:
    """Horizontal bars (percent) with the 95 % interval as a whisker; 0-100 % axis."""
    left, width, row, top = 110, 420, 30, 10
    height = top + row * len(rows) + 26
    x = lambda pct: left + width * pct / 100  # noqa: E731
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + width + 130}' "
        f"height='{height}' role=img aria-label='differential count chart' "
        "font-family='sans-serif' font-size='12'>"
    ]
    for k, r in enumerate(rows):
        y = top + k * row
        mid = y + row / 2 - 2
        lo, hi = x(r["ci95_low"]), x(r["ci95_high"])
        out += [
            f"<text x='{left - 6}' y='{mid + 4}' text-anchor='end'>{escape(r['class'])}</text>",
            f"<rect x='{left}' y='{y + 4}' width='{x(r['percent']) - left:.1f}' height='{row - 12}'"
            " fill='#5a8fd0'/>",
            f"<path d='M{lo:.1f} {mid}H{hi:.1f}M{lo:.1f} {mid - 5}v10M{hi:.1f} {mid - 5}v10' "
            "stroke='#222' stroke-width='1.5' fill='none'/>",
            f"<text x='{hi + 6:.1f}' y='{mid + 4}'>{r['cells']} ({r['percent']:.1f} %)</text>",
        ]
    base = top + row * len(rows)
    out.append(f"<path d='M{left} {base}H{left + width}' stroke='#888'/>")
    for pct in (0, 25, 50, 75, 100):
        out.append(f"<path d='M{x(pct)} {base}v4' stroke='#888'/>")
        out.append(f"<text x='{x(pct)}' y='{base + 16}' text-anchor='middle'>{pct} %</text>")
    out.append("</svg>")
    return "".join(out)


def meta_html(meta: dict[str, Any], count: dict[str, Any]) -> str:
    items = [
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
    body = "".join(f"<dt>{escape(k)}</dt><dd>{_text(v)}</dd>" for k, v in items)
    return f"<dl>{body}</dl>"


def _scales(meta: dict[str, Any]) -> str:
    """The scale the frames were analysed at: `2.1`, or `1.4 (1 frame), 2.1 (5 frames)`."""
    scales = meta.get("scales")
    if not isinstance(scales, dict) or len(scales) < 2:
        return f"{meta['scale']:g}"
    return ", ".join(f"{s} ({n} {'frame' if n == 1 else 'frames'})" for s, n in scales.items())


def flagged_html(flagged: list[dict[str, Any]]) -> str:
    if not flagged:
        return "<p>No frame carries a quality flag.</p>"
    rows = "".join(
        f"<tr><td>{_text(f['source'])}</td><td>{_text(f['frame'])}</td>"
        f"<td>{escape(', '.join(f['flags']))}</td></tr>"
        for f in flagged
    )
    return f"<table><tr><th>source</th><th>frame</th><th>flags</th></tr>{rows}</table>"


def gallery_order(cells: list[dict[str, Any]], classes: list[str]) -> list[list[dict[str, Any]]]:
    """Cells grouped by the model's class; uncertain first (least confident first)."""
    groups = []
    for cls in classes:
        mine = [c for c in cells if c["label"] == cls]
        unsure = sorted((c for c in mine if c["uncertain"]), key=lambda c: c["confidence"])
        groups.append(unsure + [c for c in mine if not c["uncertain"]])
    return groups


def gallery_html(
    cells: list[dict[str, Any]],
    classes: list[str],
    folder: Path,
    corrections: dict[str, str],
    form: bool,
) -> str:
    out = []
    groups = gallery_order(cells, classes)
    if form:  # the review page: every uncertain cell first, least confident first
        unsure = sorted((c for c in cells if c["uncertain"]), key=lambda c: c["confidence"])
        out.append(f"<h3>To review: {len(unsure)} uncertain (model's class shown)</h3>")
        out.append("<div class=grid>")
        out += [_figure(c, classes, folder, corrections.get(str(c["id"])), form) for c in unsure]
        out.append("</div>")
        groups = [[c for c in g if not c["uncertain"]] for g in groups]
    for cls, group in zip(classes, groups, strict=True):
        unsure = sum(c["uncertain"] for c in group)
        cells_word = "cell" if len(group) == 1 else "cells"
        out.append(f"<h3>{escape(cls)}: {len(group)} {cells_word} ({unsure} uncertain)</h3>")
        out.append("<div class=grid>")
        out += [_figure(c, classes, folder, corrections.get(str(c["id"])), form) for c in group]
        out.append("</div>")
    return "\n".join(out)


def _figure(
    c: dict[str, Any], classes: list[str], folder: Path, fixed: str | None, form: bool
) -> str:
    kind = "uncertain" if c["uncertain"] else "certain"
    where = Path(c["source"]).name + (f" f{c['frame']}" if c["frame"] not in (0, "0") else "")
    tag = "<span class=tag>REVIEW</span> " if c["uncertain"] else ""
    lines = [
        f"<figure class={kind} id=cell-{c['id']} data-label='{escape(c['label'])}'>",
        f"<img alt='cell {c['id']}' src='{_data_uri(folder, c['crop'])}'>",
        f"<figcaption>{tag}#{c['id']} &middot; {c['confidence']:.2f}<br>"
        f"<small>{_text(where)}</small>",
    ]
    if c.get("morphology"):
        lines.append(f"<br><small>{escape(morphology_line(c['morphology']))}</small>")
    if fixed:
        lines.append(f"<br><span class=fixed>&rarr; {escape(fixed)}</span>")
    lines.append("</figcaption>")
    if form:
        options = [*classes, NOT_A_CELL]
        chosen = fixed or c["label"]
        opts = "".join(
            f"<option{' selected' if o == chosen else ''}>{escape(o)}</option>" for o in options
        )
        lines.append(f"<select name=c{c['id']}>{opts}</select>")
    lines.append("</figure>")
    return "".join(lines)


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


def _text(value: Any) -> str:
    """A value from the report as HTML text: control characters and odd bytes escaped."""
    from wbc_edge.core.safe_io import printable

    return escape(printable(str(value)))


def _data_uri(folder: Path, rel: str) -> str:
    """The image `rel` under `folder` as a JPEG data URI (a fifth of the PNG's size: the page
    stays small); empty when it is not a readable image inside the folder."""
    import cv2

    from wbc_edge.core.safe_io import read_image_bgr
    from wbc_edge.edge_app.report_check import confined

    path = confined(folder, rel)
    bgr = read_image_bgr(path) if path is not None else None
    if bgr is None:
        return ""
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return (
        "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else ""
    )
