"""The HTML of the run report: self-contained (inline CSS, SVG chart, data-URI images), printable.

`render_html(data, folder, form=True)` is the same page with a class choice under each cell and
a save button, as `wbc-edge review` serves it.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wbc_edge.edge_app.review_page import (
    NOT_A_CELL,
    amend_form_html,
    instructions_html,
    keyboard_script,
    sign_form_html,
)
from wbc_edge.edge_app.signing import result_status

MIN_DIFFERENTIAL = 100  # white cells a differential needs (CLSI H20 counts 200 by hand)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;padding:16px 20px;color:#111;
max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:14px 0 6px}.sub{color:#555}
.warn{background:#fff4e0;border:1px solid #e0a040;padding:6px 10px;margin:8px 0}
.status{display:inline-block;padding:1px 8px;border-radius:3px;font-weight:bold;color:#fff}
.status.final{background:#2a7a2a}.status.preliminary{background:#b06000}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
th{vertical-align:bottom}th:first-child,td:first-child{text-align:left}
tr.total td{font-weight:bold;border-top:2px solid #999}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dt{color:#555}
dd{margin:0;overflow-wrap:anywhere}
svg.chart{width:100%;max-width:560px;height:auto;display:block}
.nw{white-space:nowrap}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:112px;border:2px solid #9c9;padding:3px;font-size:11px;break-inside:avoid}
figure.uncertain{border-color:#e89a00;background:#fff4e0}
figure[data-state=ok]{border-color:#2a7a2a;background:#eef8ee}
figure[data-state=changed]{border-color:#06c;background:#eaf2fc}
figure:focus{outline:3px solid #06c;outline-offset:1px}
figure img{width:104px;height:104px;display:block;image-rendering:auto}
figcaption{overflow-wrap:anywhere}.tag{color:#b06000;font-weight:bold}
.fixed{color:#06c;font-weight:bold}.ok{color:#2a7a2a;font-weight:bold}
select{width:104px;font-size:11px}
.howto{background:#eef4fb;border:1px solid #9bbbe0;padding:8px 12px;margin:10px 0}
kbd{border:1px solid #999;border-radius:3px;padding:0 3px;font-size:12px;background:#fff}
.buttons{position:sticky;bottom:0;background:#fff;padding:8px 0;border-top:1px solid #ccc}
.legend dt{font-weight:bold;color:#111}.sigline{display:none}
td.ci{white-space:nowrap}
@media (max-width:600px){body{padding:10px}td,th{padding:3px 5px;font-size:13px}h1{font-size:19px}
dl{grid-template-columns:1fr}dt{margin-top:6px}.grid{gap:5px}
th:first-child,td:first-child{position:sticky;left:0;background:#fff}
figure{width:100px}figure img{width:92px;height:92px}select{width:92px}}
@media print{@page{margin:12mm}body{padding:0;max-width:none;font-size:10pt}
.noprint,select,.buttons,a.ctx{display:none}.sigline{display:block;margin-top:18px}
h2{break-after:avoid}table,figure,dl{break-inside:avoid}.scroll{overflow:visible}
.status{color:#000;border:1px solid #000}figure{width:96px}figure img{width:88px;height:88px}}
"""


def render_html(data: dict[str, Any], folder: Path, form: bool = False, token: str = "") -> str:
    """The page for a report folder's data (report.json, plus `review` once reviewed); with
    `form`, the review page, whose buttons send the server's `token`. Once the review is
    signed, the headline and chart show the reviewed count (and say so) and the page is
    read-only."""
    meta, count = data["meta"], data["count"]
    review = data.get("review")
    signed = result_status(review) == "final"
    editable = form and not signed
    shown = review["count"] if signed else count
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        "<title>White-cell differential count</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>White-cell differential count</h1>",
        headline_html(meta, count, review),
        specimen_html(meta, review),
        *(f"<p class=warn>{escape(n)}</p>" for n in data.get("notes", [])),
        few_cells_html(shown["cells"]),
    ]
    if editable:
        parts.append(instructions_html(meta["classes"]))
    parts += [
        "<h2>Differential count</h2>",
        count_html(count, review),
        chart_caption(signed, shown),
        chart_svg(shown["rows"]),
        f"<p class=sub>95 % interval: {escape(count['interval'])} ({count['cells']} cells). "
        f"Uncertain: confidence below {count['threshold']:.2f}, "
        "counted in the class the model gave, shown first in the gallery.</p>",
        "<h2>Run</h2>",
        meta_html(meta, count),
        "<h2>Frames with quality flags</h2>",
        flagged_html(data.get("flagged_frames", [])),
        "<h2>Every counted cell, as the model saw it</h2>",
    ]
    if editable:
        parts.append(f"<form method=post action='save?token={escape(token)}'>")
    decisions = _decisions(review)
    parts.append(
        gallery_html(data["cells"], meta["classes"], folder, decisions, editable, form, token)
    )
    if editable:
        parts.append(sign_form_html(token, review.get("version", 1) if review else 1))
        parts.append(keyboard_script(meta["classes"]))
    elif form and signed:
        parts.append(amend_form_html(token, review))
    parts += [legend_html(), signature_line_html(review), "</body></html>"]
    return "\n".join(parts)


def headline_html(meta: dict[str, Any], count: dict[str, Any], review: dict | None) -> str:
    """The line under the title: cells, frames, model, date, and whether the result is final."""
    status = result_status(review)
    if status == "final":
        sig = review["signature"]
        what = (
            f"{review['count']['cells']} white cells in {count['frames']} frames &middot; "
            f"reviewed count, signed by {_text(sig['reviewer'])} ({escape(sig['time'])})"
        )
    else:
        what = (
            f"{count['cells']} white cells in {count['frames']} frames &middot; the model's "
            "count, not yet signed"
        )
    return (
        f"<p class=sub><span class='status {status}'>{status.upper()}</span> {what} &middot; "
        f"{escape(meta['model'])} &middot; {escape(meta['date'])} &middot; research and "
        "teaching aid only, not a diagnostic device</p>"
    )


def specimen_html(meta: dict[str, Any], review: dict[str, Any] | None) -> str:
    """Specimen, operator, reviewer and signature: the fields a lab files."""
    sig = (review or {}).get("signature")
    version = (review or {}).get("version", 1)
    items = [
        ("Specimen (sample id)", meta.get("sample") or "not given"),
        ("Operator", meta.get("operator") or "not given"),
        ("Result", "final (signed)" if sig else "preliminary (not signed)"),
        ("Reviewed by", sig["reviewer"] if sig else "not yet"),
    ]
    if review:
        items.append(("Review version", str(version)))
    if sig:
        items += [
            ("Signed (UTC)", sig["time"]),
            ("Signature sha256", sig["sha256"]),
        ]
    for old in (review or {}).get("history", []):
        old_sig = old.get("signature") or {}
        items.append(
            (
                f"Version {old.get('version', 1)}",
                f"signed by {old_sig.get('reviewer', '?')} at {old_sig.get('time', '?')}, "
                f"amended {old.get('amended', '?')} (signed/report-v{old.get('version', 1)}.html)",
            )
        )
    body = "".join(f"<dt>{escape(k)}</dt><dd>{_text(v)}</dd>" for k, v in items)
    return f"<h2>Specimen and signature</h2><dl>{body}</dl>"


def few_cells_html(n: int) -> str:
    """A warning when the count is below a differential's minimum."""
    if n >= MIN_DIFFERENTIAL:
        return ""
    return (
        f"<p class=warn><b>Only {n} white cells.</b> A differential needs at least "
        f"{MIN_DIFFERENTIAL} (200 is the manual reference): these percentages are too "
        "uncertain to report; see the 95 % intervals.</p>"
    )


def chart_caption(signed: bool, shown: dict[str, Any]) -> str:
    if signed:
        return (
            f"<p class=sub>Chart: the reviewed count ({shown['cells']} cells, signed), each "
            "cell's verified class counted.</p>"
        )
    return "<p class=sub>Chart: the model's differential (not signed).</p>"


def legend_html() -> str:
    """Every abbreviation and mark on the page, explained."""
    items = [
        ("differential %", "share of the white cells counted, per class; (corrected): adjusted "
         "for the model's known confusions between classes"),
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
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f"<h2>Legend</h2><dl class=legend>{body}</dl>"


def signature_line_html(review: dict[str, Any] | None) -> str:
    """Printed only: the signature, or a line to sign by hand."""
    sig = (review or {}).get("signature")
    if sig:
        text = (
            f"Electronically signed by {_text(sig['reviewer'])} at {escape(sig['time'])} UTC "
            f"(sha256 {escape(sig['sha256'][:16])}…)"
        )
    else:
        text = "Reviewed by: ______________________ Signature: ______________ Date: __________"
    return f"<p class=sigline>{text}</p>"


def _decisions(review: dict[str, Any] | None) -> dict[str, str]:
    """{cell id: the class a person gave it} (confirmed cells keep the model's: marked '=')."""
    review = review or {}
    out = dict.fromkeys(review.get("confirmed", []), "=")
    out.update(review.get("corrections", {}))
    return out


def count_html(count: dict[str, Any], review: dict[str, Any] | None) -> str:
    """The count table: the differential a lab reads (corrected when the bundle can) with its
    interval, the raw count beside it, and the reviewed count after review; once signed, the
    reviewed columns come first (they are the result)."""
    reviewed = {r["class"]: r for r in (review or {}).get("count", {}).get("rows", [])}
    first = result_status(review) == "final"
    corrected = count.get("estimate") == "corrected"
    what = "differential % (corrected)" if corrected else "differential %"
    model_head = (
        f"<th>cells counted</th><th>{what}</th><th>95 % interval</th><th>raw %</th>"
        "<th>uncertain</th>"
    )
    review_head = "<th>reviewed cells</th><th>reviewed %</th><th>95 % interval</th>" * bool(
        reviewed
    )
    heads = [review_head, model_head] if first else [model_head, review_head]
    rows = [f"<div class=scroll><table><tr><th>class</th>{''.join(heads)}</tr>"]
    for r in count["rows"]:
        raw = r.get("raw_percent", r["percent"])  # reports written before the correction
        model = (
            f"<td>{r['cells']}</td><td>{r['percent']:.1f}</td>"
            f"<td class=ci>{r['ci95_low']:.1f}&ndash;{r['ci95_high']:.1f}</td><td>{raw:.1f}</td>"
            f"<td>{r['uncertain']}</td>"
        )
        after = ""
        if reviewed:
            v = reviewed[r["class"]]
            after = (
                f"<td>{v['cells']}</td><td>{v['percent']:.1f}</td>"
                f"<td class=ci>{v['ci95_low']:.1f}&ndash;{v['ci95_high']:.1f}</td>"
            )
        cols = [after, model] if first else [model, after]
        rows.append(f"<tr><td>{escape(r['class'])}</td>{''.join(cols)}</tr>")
    model = f"<td>{count['cells']}</td><td>100.0</td><td></td><td>100.0</td>"
    model += f"<td>{count['uncertain']}</td>"
    after = f"<td>{review['count']['cells']}</td><td>100.0</td><td></td>" if reviewed else ""
    cols = [after, model] if first else [model, after]
    rows.append(f"<tr class=total><td>total</td>{''.join(cols)}</tr></table></div>")
    note = count.get("estimate_note")
    if note:
        rows.append(
            f"<p class=note>Differential: {escape(note)}. Raw %: each cell's label counted "
            f"({escape(count.get('raw_interval', count['interval']))}).</p>"
        )
    if review:
        n, rejected = len(review.get("corrections", {})), review["count"].get("rejected", 0)
        confirmed = len(review.get("confirmed", []))
        left = review["count"]["uncertain"]
        rows.append(
            f"<p>Reviewed {escape(review.get('date', ''))}: {confirmed} confirmed, {n} "
            f"changed ({rejected} not a white cell); "
            + (
                f"{left} uncertain {'cell' if left == 1 else 'cells'} not reviewed yet.</p>"
                if left
                else "every uncertain cell reviewed.</p>"
            )
        )
    return "\n".join(rows)


def chart_svg(rows: list[dict[str, Any]]) -> str:
    """Horizontal bars (percent) with the 95 % interval as a whisker; 0-100 % axis."""
    left, width, row, top = 104, 320, 30, 10
    height = top + row * len(rows) + 26
    x = lambda pct: left + width * pct / 100  # noqa: E731
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class=chart viewBox='0 0 {left + width + 124} "
        f"{height}' role=img aria-label='differential count chart' font-family='sans-serif' "
        "font-size='14'>"
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
    decisions: dict[str, str],
    editable: bool,
    served: bool = False,
    token: str = "",
) -> str:
    """Every shown cell, grouped by the model's class, uncertain first; on the review page
    (`editable`) every uncertain cell comes first, and each class has a Confirm-the-rest
    button. `served`: links go to the review server's `/context/ID` (with `token`)."""
    out = []
    groups = gallery_order(cells, classes)
    figure = lambda c: _figure(c, classes, folder, decisions.get(str(c["id"])), editable,  # noqa: E731
                               served, token)  # fmt: skip
    if editable:  # the review page: every uncertain cell first, least confident first
        unsure = sorted((c for c in cells if c["uncertain"]), key=lambda c: c["confidence"])
        out.append(f"<h3>To review first: {len(unsure)} uncertain (model's class shown)</h3>")
        out.append("<div class=grid id=g-uncertain>")
        out += [figure(c) for c in unsure]
        out.append("</div>")
        groups = [[c for c in g if not c["uncertain"]] for g in groups]
    for k, (cls, group) in enumerate(zip(classes, groups, strict=True)):
        unsure = sum(c["uncertain"] for c in group)
        cells_word = "cell" if len(group) == 1 else "cells"
        button = ""
        if editable and group:
            button = (
                f" <button type=button class=noprint data-confirm=g{k}>Confirm the rest of "
                f"{escape(cls)}</button>"
            )
        out.append(
            f"<h3>{escape(cls)}: {len(group)} {cells_word} ({unsure} uncertain){button}</h3>"
        )
        out.append(f"<div class=grid id=g{k}>")
        out += [figure(c) for c in group]
        out.append("</div>")
    return "\n".join(out)


def _figure(
    c: dict[str, Any],
    classes: list[str],
    folder: Path,
    decided: str | None,
    editable: bool,
    served: bool,
    token: str,
) -> str:
    kind = "uncertain" if c["uncertain"] else "certain"
    where = Path(c["source"]).name + (f" f{c['frame']}" if c["frame"] not in (0, "0") else "")
    tag = "<span class=tag>REVIEW</span> " if c["uncertain"] else ""
    lines = [
        f"<figure class={kind} id=cell-{c['id']} data-label='{escape(c['label'])}'>",
        f"<img alt='cell {c['id']}' src='{_data_uri(folder, c['crop'])}'>",
        f"<figcaption>{tag}#{c['id']} &middot; {c['confidence']:.2f}",
        runner_up_html(c),
        f"<br><small>{_text(where)}</small>{context_link(c, served, token)}",
    ]
    if c.get("morphology"):
        lines.append(f"<br><small>{morphology_html(c['morphology'])}</small>")
    if decided == "=":
        lines.append("<br><span class=ok>&check; confirmed</span>")
    elif decided:
        lines.append(f"<br><span class=fixed>&rarr; {escape(decided)}</span>")
    lines.append("</figcaption>")
    if editable:
        chosen = c["label"] if decided == "=" else (decided or "")
        options = [("", "(not reviewed)")] + [(o, o) for o in (*classes, NOT_A_CELL)]
        opts = "".join(
            f"<option value='{escape(v)}'{' selected' if v == chosen else ''}>{escape(t)}</option>"
            for v, t in options
        )
        lines.append(
            f"<select name=c{c['id']} aria-label='class of cell {c['id']}'>{opts}</select>"
        )
    lines.append("</figure>")
    return "".join(lines)


def runner_up_html(c: dict[str, Any]) -> str:
    """`2nd CLASS 0.31`: the class the model would have given next."""
    others = sorted(
        ((p, k) for k, p in c.get("probs", {}).items() if k != c["label"]), reverse=True
    )
    if not others:
        return ""
    p, k = others[0]
    return f"<br><small class=nw>2nd {escape(k)} {p:.2f}</small>"


def context_link(c: dict[str, Any], served: bool, token: str) -> str:
    """A link to the cell's picture at training-image scale (its surroundings)."""
    if not c.get("context"):
        return ""
    # served: the server's route; a file: relative, never a scheme such as javascript:
    href = f"context/{c['id']}?token={quote(token)}" if served else "./" + quote(c["context"])
    return f" <a class=ctx href='{escape(href)}' target=_blank rel=noopener>context</a>"


def morphology_html(m: dict[str, Any]) -> str:
    """The caption line as HTML: each measurement kept on one line (no "3 / lobes")."""
    return " · ".join(
        f"<span class=nw>{escape(part)}</span>" for part in morphology_line(m).split(" · ")
    )


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
    from wbc_edge.core.errors import WbcError
    from wbc_edge.core.safe_io import encode_image, read_image_bgr
    from wbc_edge.edge_app.report_check import confined

    path = confined(folder, rel)
    bgr = read_image_bgr(path) if path is not None else None
    if bgr is None:
        return ""
    try:
        jpeg = encode_image(bgr[:, :, ::-1], ".jpg", quality=90)
    except WbcError:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
