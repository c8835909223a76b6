"""Parity reports in the bundle: parity.json (everything), parity.md, parity.html, parity.png.

parity.html is self-contained: the flipped images' thumbnails and the confusion matrices are
inlined as base64 PNG, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.convert.parity import ArtifactParity, Thresholds
from wbc_edge.convert.source import Calibration, HeldOut
from wbc_edge.core.plots import draw_confusion, figure_png, pyplot

log = logging.getLogger(__name__)

MAX_THUMBNAILS = 48
THUMB_SIZE = 96


def report_dict(
    results: list[ArtifactParity],
    classes: list[str],
    held_out: HeldOut,
    float_probs: np.ndarray,
    calibration: Calibration | None,
    thresholds: Thresholds,
    failures: dict[str, str],
    model: str,
) -> dict[str, Any]:
    """Everything measured, self-consistent: agreement is recomputable from the predictions."""
    return {
        "classes": classes,
        "float_model": model,
        "thresholds": {"min_agreement": thresholds.min_agreement, "max_drop": thresholds.max_drop},
        "parity_set": {
            "source": held_out.source,
            "root": str(held_out.root),
            "n": len(held_out.files),
            "files": held_out.files,
            "labels": held_out.labels.tolist(),
            "skipped": held_out.skipped,
            "chosen": held_out.selection.describe() if held_out.selection else None,
            "selection": held_out.selection.to_dict() if held_out.selection else None,
        },
        "float_predictions": float_probs.argmax(1).tolist(),
        "float_confidences": float_probs.max(1).round(5).tolist(),
        "calibration": None
        if calibration is None
        else {
            "source": calibration.source,
            "n": len(calibration.files),
            "files": calibration.files,
            "labels": calibration.labels,
            "skipped": calibration.skipped,
        },
        "artifacts": [r.to_dict() for r in results],
        "conversion_failures": failures,
        "passed": bool(results) and all(r.passed for r in results) and not failures,
    }


def summary_dict(report: dict[str, Any], created: str) -> dict[str, Any]:
    """The short form kept in bundle.json's `parity`."""
    return {
        "created": created,
        "thresholds": report["thresholds"],
        "parity_set": {k: report["parity_set"].get(k) for k in ("source", "n", "chosen")},
        "calibration": None
        if report["calibration"] is None
        else {k: report["calibration"][k] for k in ("source", "n")},
        "artifacts": {
            a["key"]: {
                "file": a["file"],
                "status": a["status"],
                "agreement": round(a["agreement"], 6),
                "accuracy_float": round(a["accuracy_float"], 6),
                "accuracy_artifact": round(a["accuracy_artifact"], 6),
                "drop_points": round(a["drop_points"], 4),
                "max_abs_prob_diff": round(a["max_abs_prob_diff"], 6),
                "runtime": a["runtime"],
            }
            for a in report["artifacts"]
        },
        "conversion_failures": report["conversion_failures"],
        "passed": report["passed"],
        "reports": ["parity.json", "parity.md", "parity.html", "parity.png"],
    }


# --------------------------------------------------------------------------- tables


def table_rows(report: dict[str, Any], reference: tuple[str, int] | None) -> list[list[str]]:
    """Rows of the summary table the CLI prints and parity.md holds.

    `reference` (file, size) is what the "x smaller" column compares with.
    """
    rows = [
        [
            "artifact",
            "file",
            "size",
            f"x smaller than {reference[0] if reference else '-'}",
            "agreement",
            "acc float",
            "acc art.",
            "drop pts",
            "max dprob",
            "ran as",
            "status",
        ]
    ]
    timed = any(a.get("latency_ms") is not None for a in report["artifacts"])
    if timed:
        rows[0].insert(3, "ms/image")
    for a in report["artifacts"]:
        size = a["size_bytes"]
        ratio = f"{reference[1] / size:.1f}" if reference and size else "-"
        ran = a["runtime"].get("inference_precision") or a["runtime"].get("backend", "")
        rows.append(
            [
                a["key"],
                a["file"],
                _kib(size),
                ratio,
                f"{a['agreement']:.4f}",
                f"{a['accuracy_float']:.4f}",
                f"{a['accuracy_artifact']:.4f}",
                f"{a['drop_points']:+.2f}",
                f"{a['max_abs_prob_diff']:.4f}",
                ran,
                a["status"],
            ]
        )
        if timed:
            ms = a.get("latency_ms")
            rows[-1].insert(3, f"{ms:.2f}" if ms is not None else "-")
    for key, why in report["conversion_failures"].items():
        rows.append([key, *["-"] * (len(rows[0]) - 2), why])
    return rows


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


# --------------------------------------------------------------------------- writing


def write_reports(
    out_dir: Path, report: dict[str, Any], reference: tuple[str, int] | None, spec: Any = None
) -> list[Path]:
    """parity.json, parity.md, parity.html and parity.png in `out_dir` (`spec`: the bundle's
    preprocessing, for thumbnails of the crops the model saw)."""
    paths = [out_dir / n for n in ("parity.json", "parity.md", "parity.html", "parity.png")]
    paths[0].write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    rows = table_rows(report, reference)
    paths[1].write_text(markdown_report(report, rows), encoding="utf-8")
    paths[2].write_text(html_report(report, rows, spec), encoding="utf-8")
    paths[3].write_bytes(parity_plot(report))
    return paths


def markdown_report(report: dict[str, Any], rows: list[list[str]]) -> str:
    classes = report["classes"]
    lines = [
        "# Parity report",
        "",
        f"- {_set_line(report)}",
        f"- {_calib_line(report)}",
        "- " + _gate_line(report).replace("PASS", "**PASS**").replace("FAIL", "**FAIL**"),
        "",
        markdown_table(rows),
    ]
    for a in report["artifacts"]:
        lines += ["", f"## {a['key']} ({a['status']})", ""]
        lines += [f"- {r}" for r in a["reasons"]] + ([""] if a["reasons"] else [])
        lines += [
            "| class | recall float | recall art. | F1 float | F1 art. |",
            "|---|---|---|---|---|",
        ]
        fs, as_ = a["float_scores"], a["artifact_scores"]
        for i, c in enumerate(classes):
            lines.append(
                f"| {c} | {fs['recall'][i]:.3f} | {as_['recall'][i]:.3f} | "
                f"{fs['f1'][i]:.3f} | {as_['f1'][i]:.3f} |"
            )
        lines += [
            "",
            f"Flipped between the float model and {a['key']}: {len(a['flipped'])} image(s).",
        ]
        lines += [f"- `{f['file']}`: {flip_caption(f, a['key'])}" for f in a["flipped"][:20]]
    return "\n".join(lines) + "\n"


def flip_caption(f: dict[str, Any], key: str) -> str:
    """`true NEUTROPHIL: float NEUTROPHIL 0.62 → tflite-int8 EOSINOPHIL 0.55`."""

    def side(label: str, confidence: float | None) -> str:
        return label if confidence is None else f"{label} {confidence:.2f}"

    return (
        f"true {f['label']}: float {side(f['float'], f.get('float_confidence'))} → "
        f"{key} {side(f['artifact'], f.get('artifact_confidence'))}"
    )


def _gate_line(report: dict[str, Any]) -> str:
    t = report["thresholds"]
    return (
        f"Thresholds: agreement >= {t['min_agreement']}, accuracy drop <= "
        f"{100 * t['max_drop']:.2f} points. Overall: {'PASS' if report['passed'] else 'FAIL'}."
    )


def _set_line(report: dict[str, Any]) -> str:
    ps = report["parity_set"]
    chosen = f" Chosen as: {ps['chosen']}." if ps.get("chosen") else ""
    return (
        f"Float reference: {report['float_model']}. Parity set: {ps['n']} images, "
        f"{ps['source']}.{chosen}"
    )


def _calib_line(report: dict[str, Any]) -> str:
    cal = report["calibration"]
    if cal is None:
        return "No calibration (no INT8 artifact)."
    return f"Calibration: {cal['n']} images, {cal['source']} (listed in parity.json)."


def html_report(report: dict[str, Any], rows: list[list[str]], spec: Any = None) -> str:
    """The page; with the bundle's preprocessing `spec` the thumbnails are the crops the model
    saw (else the images as stored)."""
    classes = report["classes"]
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Parity report</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        ".ok{color:#070}.failed{color:#b00}.flips{display:flex;flex-wrap:wrap;gap:8px}"
        "figure{margin:0;font-size:11px;width:120px}figure img{width:96px;height:96px}"
        "figcaption{overflow-wrap:anywhere}figcaption b{font-weight:600}</style></head><body>",
        "<h1>Parity report</h1>",
        f"<p>{esc(_set_line(report))}</p>",
        f"<p>{esc(_calib_line(report))}</p>",
        f"<p><b>{esc(_gate_line(report))}</b></p>",
        f"<img alt='parity' src='data:image/png;base64,{_b64(parity_plot(report))}'>",
        _html_table(rows),
    ]
    root = Path(report["parity_set"]["root"])
    for a in report["artifacts"]:
        parts.append(f"<h2 class='{a['status']}'>{esc(a['key'])}: {a['status']}</h2>")
        parts += [f"<p>{esc(r)}</p>" for r in a["reasons"]]
        parts.append(
            f"<img alt='confusion matrices' src='data:image/png;base64,"
            f"{_b64(confusion_plot(a, classes))}'>"
        )
        per_class = [["class", "recall float", "recall art.", "F1 float", "F1 art."]]
        fs, as_ = a["float_scores"], a["artifact_scores"]
        per_class += [
            [
                c,
                f"{fs['recall'][i]:.3f}",
                f"{as_['recall'][i]:.3f}",
                f"{fs['f1'][i]:.3f}",
                f"{as_['f1'][i]:.3f}",
            ]
            for i, c in enumerate(classes)
        ]
        parts.append(_html_table(per_class))
        seen = " (the crops the model saw)" if spec is not None else ""
        parts.append(
            f"<p>{len(a['flipped'])} image(s) flipped class between the float model and "
            f"{esc(a['key'])}{seen if a['flipped'] else ''}{':' if a['flipped'] else '.'}</p>"
        )
        parts.append("<div class=flips>")
        for f in a["flipped"][:MAX_THUMBNAILS]:
            parts.append(
                f"<figure><img alt='' src='data:image/png;base64,"
                f"{_thumbnail(root / f['file'], spec)}'><figcaption>{_html_caption(f, a['key'])}"
                "</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _html_caption(f: dict[str, Any], key: str) -> str:
    esc = html.escape

    def conf(name: str) -> str:
        value = f.get(f"{name}_confidence")
        return f" {value:.2f}" if value is not None else ""

    return (
        f"{esc(Path(f['file']).name)}<br>true: {esc(f['label'])}<br>"
        f"<b>float</b>: {esc(f['float'])}{conf('float')}<br>"
        f"<b>{esc(key)}</b>: {esc(f['artifact'])}{conf('artifact')}"
    )


def _thumbnail(path: Path, spec: Any = None) -> str:
    """PNG base64 of the image: the model's crop with `spec`, else the stored image."""
    from PIL import Image

    try:
        if spec is not None:
            im = Image.fromarray(_model_crop(path, spec))
        else:
            im = Image.open(path).convert("RGB")
        im.thumbnail((THUMB_SIZE, THUMB_SIZE))
        buf = io.BytesIO()
        im.save(buf, "PNG")
    except Exception:  # a thumbnail never stops the report
        return ""
    return _b64(buf.getvalue())


def _model_crop(path: Path, spec: Any) -> np.ndarray:
    from wbc_edge.core.decode import decode_image
    from wbc_edge.core.gallery import to_rgb
    from wbc_edge.core.preprocess import prepare

    return to_rgb(prepare(decode_image(path), spec), spec)


# --------------------------------------------------------------------------- pictures


def confusion_plot(art: dict[str, Any], classes: list[str]) -> bytes:
    """Float and artifact confusion matrices side by side."""
    fig, axes = pyplot().subplots(1, 2, figsize=(8, 3.6))
    for ax, name, sc in zip(
        axes,
        ("float (Keras)", art["key"]),
        (art["float_scores"], art["artifact_scores"]),
        strict=True,
    ):
        title = f"{name}: acc {sc['accuracy']:.3f}"
        draw_confusion(ax, sc["confusion"], classes, title, abbrev=4)
    axes[1].set_ylabel("")
    return figure_png(fig)


def parity_plot(report: dict[str, Any]) -> bytes:
    """Left: agreement per artifact against the threshold (zoomed in). Right: accuracy of
    the float model and of each artifact."""
    plt = pyplot()
    arts = report["artifacts"]
    keys = [a["key"] for a in arts]
    x = np.arange(len(arts))
    threshold = report["thresholds"]["min_agreement"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(6.0, 1.2 * len(arts) + 3), 3.4))
    agreement = [a["agreement"] for a in arts]
    colours = ["tab:green" if a["status"] == "ok" else "tab:red" for a in arts]
    left.bar(x, agreement, 0.6, color=colours)
    left.axhline(min(threshold, 1.0), color="k", ls=":", lw=1, label=f"min agreement {threshold}")
    low = min([*agreement, min(threshold, 1.0)], default=1.0)
    left.set_ylim(max(0.0, low - 0.02), 1.002)
    left.set_title("top-1 agreement with the float model", fontsize=9)
    left.legend(fontsize=7, loc="lower left")
    right.bar(x - 0.2, [a["accuracy_float"] for a in arts], 0.4, label="float", color="0.6")
    right.bar(x + 0.2, [a["accuracy_artifact"] for a in arts], 0.4, label="artifact")
    right.set_ylim(0, 1.05)
    right.set_title("accuracy on the parity set", fontsize=9)
    right.legend(fontsize=7, loc="lower left")
    for ax in (left, right):
        ax.set_xticks(x, keys, rotation=30, ha="right", fontsize=8)
    fig.suptitle(f"parity on {report['parity_set']['n']} held-out images", fontsize=10)
    return figure_png(fig)
