"""Parity reports in the bundle: parity.json (everything), parity.md, parity.html, parity.png.

The pages answer the reviewer's question first: one line per artifact (PASS/FAIL, agreement,
the accuracy change said in words, the class whose recall moved most), which images calibrated
and which checked, then per class (recall float vs artifact, flips by class pair), confidence
(top probabilities float vs artifact, the images whose probabilities moved most) and the
details (confusion matrices, open only for a failing artifact). parity.html is self-contained
(pictures inlined as base64 PNG) and prints on A4; its markup is templates/parity.html, filled
by the one page builder (`core.page`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.convert import machine
from wbc_edge.convert.parity import ArtifactParity, Thresholds
from wbc_edge.convert.report_charts import (
    confidence_plot,
    confusion_plot,
    parity_plot,
    recall_changes,
)
from wbc_edge.convert.source import Calibration, HeldOut
from wbc_edge.core import page
from wbc_edge.core.label_shift import MIXES, expected_shares
from wbc_edge.core.safe_io import atomic_write

log = logging.getLogger(__name__)

MAX_THUMBNAILS = 48
THUMB_SIZE = 96
LOW_CONFIDENCE = 0.6  # "unsure" images counted in the confidence lines


def report_dict(
    results: list[ArtifactParity],
    classes: list[str],
    held_out: HeldOut,
    float_probs: np.ndarray,
    calibration: Calibration | None,
    thresholds: Thresholds,
    failures: dict[str, str],
    model: str,
    quality: dict[str, Any] | None = None,
    note: str | None = None,
    count_confusion: list[list[float]] | None = None,
) -> dict[str, Any]:
    """Everything measured, self-consistent: agreement is recomputable from the predictions.
    `note`: what the reader must know about the parity set (a small self-test sample);
    `count_confusion`: the bundle's count model's, which the smear lines correct with."""
    return {
        "classes": classes,
        "count_confusion": count_confusion,
        "float_model": model,
        "thresholds": {
            "min_agreement": thresholds.min_agreement,
            "max_drop": thresholds.max_drop,
            "max_class_drop": thresholds.max_class_drop,
        },
        "parity_set": {
            "source": held_out.source,
            "root": str(held_out.root),
            "n": len(held_out.files),
            "files": held_out.files,
            "labels": held_out.labels.tolist(),
            "skipped": held_out.skipped,
            "chosen": held_out.selection.describe() if held_out.selection else None,
            "selection": held_out.selection.to_dict() if held_out.selection else None,
            "note": note,
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
        "quality": quality,
        "machine": machine.machine_info([r.runtime.get("backend", "?") for r in results]),
        "passed": bool(results) and all(r.passed for r in results) and not failures,
    }


def summary_dict(report: dict[str, Any], created: str) -> dict[str, Any]:
    """The short form kept in bundle.json's `parity` (`thresholds` holds the two numbers the
    device reads; the per-class gate is `max_class_drop` beside it)."""
    t = report["thresholds"]
    return {
        "created": created,
        "thresholds": {"min_agreement": t["min_agreement"], "max_drop": t["max_drop"]},
        "max_class_drop": t.get("max_class_drop"),
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
                "recall_change": a.get("recall_change"),
                "max_abs_prob_diff": round(a["max_abs_prob_diff"], 6),
                "runtime": a["runtime"],
            }
            for a in report["artifacts"]
        },
        "conversion_failures": report["conversion_failures"],
        "passed": report["passed"],
        "reports": ["parity.json", "parity.md", "parity.html", "parity.png"],
    }


# --------------------------------------------------------------------------- sentences


def verdict_line(a: dict[str, Any], classes: list[str], n: int) -> str:
    """`tflite-int8: PASS. Agrees with the float model on 99.74 % (8 of 3066 images differ);
    accuracy 0.20 points lower (0.8792 → 0.8772); worst class NEUTROPHIL, recall 0.85 points
    lower (0.700 → 0.691).`"""
    differ = len(a["flipped"])
    lo, hi = wilson_interval(n - differ, n)
    return (
        f"{a['key']}: {'PASS' if a['status'] == 'ok' else 'FAIL'}. Agrees with the float model "
        f"on {100 * a['agreement']:.2f} % ({differ} of {n} images differ; 95 % interval "
        f"{100 * lo:.2f}–{100 * hi:.2f} %); accuracy "
        f"{_points(a['accuracy_artifact'] - a['accuracy_float'])} ({a['accuracy_float']:.4f} → "
        f"{a['accuracy_artifact']:.4f}); {worst_class(a, classes)}."
    )


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n: how far a small set's agreement can be from
    the artifact's agreement on every cell."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def worst_class(a: dict[str, Any], classes: list[str]) -> str:
    """The class whose recall fell most, in words (or that none fell)."""
    change = recall_changes(a)
    if not change or min(change) >= 0:
        return "no class's recall fell"
    i = int(np.argmin(change))
    fs, as_ = a["float_scores"]["recall"][i], a["artifact_scores"]["recall"][i]
    return f"worst class {classes[i]}, recall {_points(change[i])} ({fs:.3f} → {as_:.3f})"


def _points(delta: float) -> str:
    """A change of a fraction in points with its direction in words: `0.20 points lower`."""
    p = 100 * delta
    if abs(p) < 0.005:
        return "unchanged"
    return f"{abs(p):.2f} points {'higher' if p > 0 else 'lower'}"


def gate_line(report: dict[str, Any]) -> str:
    t = report["thresholds"]
    gate = (
        f"agreement ≥ {t['min_agreement']}, accuracy at most {100 * t['max_drop']:.2f} points lower"
    )
    if t.get("max_class_drop") is not None:
        gate += f", no class's recall more than {100 * t['max_class_drop']:.2f} points lower"
    return f"Overall: {'PASS' if report['passed'] else 'FAIL'}. Gate: {gate}."


def quality_line(report: dict[str, Any]) -> str | None:
    q = report.get("quality")
    if not q:
        return None
    if q["passed"]:
        return (
            f"Quality floor (the float model itself): met; accuracy {q['accuracy']:.3f} ≥ "
            f"{q['min_accuracy']:.3f}, every class's recall ≥ {q['min_recall']:g} (lowest: "
            f"{q['worst_class']} {q['worst_recall']:.3f})."
        )
    return f"Quality floor (the float model itself): NOT MET: {q['reason']}."


def data_lines(report: dict[str, Any]) -> list[str]:
    """Which images calibrated, which checked, and what to know about the checked set."""
    ps, cal = report["parity_set"], report["calibration"]
    lines = [
        "Calibrated on: "
        + (
            "nothing (no INT8 artifact)."
            if cal is None
            else f"{cal['n']} images, {cal['source']} (listed in parity.json)."
        ),
        f"Checked on: {ps['n']} images, {ps['source']}, against the float model "
        f"{report['float_model']}."
        + (f" Chosen as: {ps['chosen']}." if ps.get("chosen") not in (None, ps["source"]) else ""),
    ]
    if ps.get("note"):
        lines.append(ps["note"])
    return lines


def timing_line(report: dict[str, Any]) -> str:
    threads = [a["runtime"].get("threads", "default") for a in report["artifacts"]]
    return (
        "ms/image: batch 1, median of 30 parity images after two warm-up runs, on "
        f"{machine.describe(report.get('machine'), threads)}. A relative figure: "
        "benchmarks/convert_bench.py measures the device."
    )


def smear_line(report: dict[str, Any], a: dict[str, Any]) -> str:
    """What a normal smear would read, raw count, with the float model and with the artifact
    (each model's parity-set confusions applied to the mix), and the largest change over the
    five mixes of `core.label_shift.MIXES`, raw and, when the bundle has a count model,
    corrected with it."""
    classes, correct = report["classes"], report.get("count_confusion")
    ways = {"raw": None, "corrected": correct} if correct is not None else {"raw": None}
    largest = dict.fromkeys(ways, (0.0, "", ""))
    normal = None
    for name, mix in MIXES.items():
        for way, with_ in ways.items():
            f = expected_shares(mix, classes, a["float_scores"]["confusion"], with_)
            t = expected_shares(mix, classes, a["artifact_scores"]["confusion"], with_)
            if f is None or t is None:
                return "no smear: the parity set lacks a class of the mixes"
            if name == "normal" and way == "raw":
                normal = (f, t)
            i = int(np.argmax(np.abs(t - f)))
            if 100.0 * abs(t[i] - f[i]) > abs(largest[way][0]):
                largest[way] = (100.0 * float(t[i] - f[i]), classes[i], name)
    f, t = normal  # type: ignore[misc]
    shares = " / ".join(
        f"{c[:4]} {100 * x:.1f} → {100 * y:.1f}" for c, x, y in zip(classes, f, t, strict=True)
    )
    changes = [
        f"{way} {d:+.1f} points ({c}, {mix})" if c else f"{way} none"
        for way, (d, c, mix) in largest.items()
    ]
    return (
        f"normal smear, raw count (float → artifact): {shares} %; largest change over the five "
        f"mixes: {', '.join(changes)}"
    )


def flips_line(a: dict[str, Any]) -> str:
    """`3 NEUTROPHIL → EOSINOPHIL, 1 EOSINOPHIL → NEUTROPHIL` (float's answer → artifact's)."""
    flips = a.get("class_flips") or []
    return ", ".join(f"{f['n']} {f['from']} → {f['to']}" for f in flips) or "no image flipped"


def confidence_line(report: dict[str, Any], a: dict[str, Any]) -> str:
    f = np.asarray(report["float_confidences"], float)
    x = np.asarray(a["confidences"], float)
    if not len(f):
        return "no images"
    return (
        f"median top probability {np.median(f):.3f} float vs {np.median(x):.3f} {a['key']}; "
        f"below {LOW_CONFIDENCE:g}: {int(np.sum(f < LOW_CONFIDENCE))} vs "
        f"{int(np.sum(x < LOW_CONFIDENCE))} images; probability change per class and image: "
        f"mean {a['mean_abs_prob_diff']:.4f}, largest {a['max_abs_prob_diff']:.4f}"
    )


# --------------------------------------------------------------------------- tables


def table_rows(report: dict[str, Any], reference: tuple[str, int] | None) -> list[list[str]]:
    """Rows of the summary table the CLI prints and parity.md holds.

    `reference` (file, size) is what the "x smaller" column compares with. `acc. change` is
    artifact minus float in points (negative: the artifact is worse).
    """
    rows = [
        [
            "artifact",
            "file",
            "size",
            f"x smaller than {reference[0] if reference else '-'}",
            "agreement",
            "disagree /1000",
            "acc float",
            "acc art.",
            "acc. change pts",
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
                f"{1000 * (1 - a['agreement']):.1f}",
                f"{a['accuracy_float']:.4f}",
                f"{a['accuracy_artifact']:.4f}",
                f"{-a['drop_points'] + 0.0:+.2f}".replace("-0.00", "+0.00"),
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


def class_rows(report: dict[str, Any]) -> list[list[str]]:
    """Recall per class: float, then each artifact with its change in points."""
    classes, arts = report["classes"], report["artifacts"]
    support = np.bincount(report["parity_set"]["labels"], minlength=len(classes))
    rows = [["class", "images", "recall float", *[f"recall {a['key']} (change)" for a in arts]]]
    for i, c in enumerate(classes):
        f = arts[0]["float_scores"]["recall"][i] if arts else float("nan")
        rows.append(
            [c, str(support[i]), f"{f:.3f}"]
            + [
                f"{a['artifact_scores']['recall'][i]:.3f} ({100 * recall_changes(a)[i]:+.2f})"
                for a in arts
            ]
        )
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


# --------------------------------------------------------------------------- writing


def write_reports(
    out_dir: Path,
    report: dict[str, Any],
    reference: tuple[str, int] | None,
    spec: Any = None,
    crops: dict[str, np.ndarray] | None = None,
) -> list[Path]:
    """parity.json, parity.md, parity.html and parity.png in `out_dir`, each written atomically
    (`spec`: the bundle's preprocessing, for thumbnails of the crops the model saw; `crops`:
    RGB uint8 crops by file name, for a parity set that has no image files)."""
    paths = [out_dir / n for n in ("parity.json", "parity.md", "parity.html", "parity.png")]
    rows = table_rows(report, reference)
    atomic_write(paths[0], json.dumps(report, indent=1) + "\n")
    atomic_write(paths[1], markdown_report(report, rows))
    atomic_write(paths[2], html_report(report, rows, spec, crops))
    atomic_write(paths[3], parity_plot(report))
    return paths


def markdown_report(report: dict[str, Any], rows: list[list[str]]) -> str:
    classes, n = report["classes"], report["parity_set"]["n"]
    bold = gate_line(report).replace("PASS", "**PASS**").replace("FAIL", "**FAIL**")
    lines = ["# Parity report", "", bold, ""]
    lines += [f"- {verdict_line(a, classes, n)}" for a in report["artifacts"]]
    lines += [f"- {k}: FAIL. {why}" for k, why in report["conversion_failures"].items()]
    lines += [""] + [f"- {line}" for line in [*data_lines(report), quality_line(report)] if line]
    lines += ["", markdown_table(rows), "", timing_line(report)]
    lines += ["", "## Per class", "", markdown_table(class_rows(report)), ""]
    lines += [f"- flips {a['key']}: {flips_line(a)}" for a in report["artifacts"]]
    lines += ["", "## The differential a smear would get", ""]
    lines += [f"- {a['key']}: {smear_line(report, a)}" for a in report["artifacts"]]
    lines += ["", "## Confidence", ""]
    lines += [f"- {a['key']}: {confidence_line(report, a)}" for a in report["artifacts"]]
    for a in report["artifacts"]:
        lines += ["", f"## {a['key']} ({a['status']})", ""]
        lines += [f"- {r}" for r in a["reasons"]] + ([""] if a["reasons"] else [])
        lines += [f"Largest probability shifts ({len(a.get('largest_shifts', []))}):"]
        lines += [
            f"- `{s['file']}`: {s['shift']:.3f}; {flip_caption(s, a['key'])}"
            for s in a.get("largest_shifts", [])
        ]
        lines += ["", f"Flipped between the float model and {a['key']}: {len(a['flipped'])}."]
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


# --------------------------------------------------------------------------- the page


def html_report(
    report: dict[str, Any],
    rows: list[list[str]],
    spec: Any = None,
    crops: dict[str, np.ndarray] | None = None,
) -> str:
    """The page (templates/parity.html); with the bundle's preprocessing `spec` the thumbnails
    are the crops the model saw (else the images as stored); `crops` gives them by file name."""
    classes, n = report["classes"], report["parity_set"]["n"]
    thumb = _thumbnailer(Path(report["parity_set"]["root"]), spec, crops)
    verdicts = [(a["status"] == "ok", verdict_line(a, classes, n)) for a in report["artifacts"]] + [
        (False, f"{k}: FAIL. {why}") for k, why in report["conversion_failures"].items()
    ]
    return page.render(
        "wbc_edge.convert",
        "parity.html",
        report=report,
        gate=gate_line(report),
        verdicts=verdicts,
        data_lines=data_lines(report),
        quality=quality_line(report),
        parity_png=page.data_uri(parity_plot(report), "image/png"),
        rows=rows,
        timing=timing_line(report),
        class_rows=class_rows(report),
        confidence_png=page.data_uri(confidence_plot(report), "image/png"),
        artifacts=[
            _artifact_values(report, a, classes, thumb, spec is not None or crops is not None)
            for a in report["artifacts"]
        ],
    )


def _artifact_values(
    report: dict[str, Any],
    a: dict[str, Any],
    classes: list[str],
    thumb: Callable[[str], str],
    model_crops: bool,
) -> dict[str, Any]:
    """One artifact's lines, figures and matrices for the page."""

    def figure(f: dict[str, Any]) -> dict[str, Any]:  # confidences: None in older reports
        blank = {"float_confidence": None, "artifact_confidence": None}
        return {**blank, **f, "src": thumb(f["file"]), "name": Path(f["file"]).name}

    return {
        "key": a["key"],
        "status": a["status"],
        "reasons": a["reasons"],
        "flips": flips_line(a),
        "smear": smear_line(report, a),
        "confidence": confidence_line(report, a),
        "seen": " (the crops the model saw)" if model_crops else "",
        "shifts": [figure(f) for f in a.get("largest_shifts", [])],
        "flipped": [figure(f) for f in a["flipped"][:MAX_THUMBNAILS]],
        "n_flipped": len(a["flipped"]),
        "confusion_png": page.data_uri(confusion_plot(a, classes), "image/png"),
        "f1_rows": [["class", "F1 float", "F1 art."]]
        + [
            [c, f"{a['float_scores']['f1'][i]:.3f}", f"{a['artifact_scores']['f1'][i]:.3f}"]
            for i, c in enumerate(classes)
        ],
    }


def _thumbnailer(
    root: Path, spec: Any, crops: dict[str, np.ndarray] | None
) -> Callable[[str], str]:
    """file -> PNG data URI: the given crop, else the model's crop of the file (with `spec`),
    else the stored image; empty when there is none."""
    from wbc_edge.core.decode import decode_image

    def thumb(file: str) -> str:
        try:
            if crops is not None and file in crops:
                rgb = crops[file]
            elif spec is not None:
                rgb = _model_crop(root / file, spec)
            else:
                rgb = decode_image(root / file)
            return page.image_uri(page.thumbnail(rgb, THUMB_SIZE), ".png")
        except Exception:  # a thumbnail never stops the report
            return ""

    return thumb


def _model_crop(path: Path, spec: Any) -> np.ndarray:
    from wbc_edge.core.decode import decode_image
    from wbc_edge.core.gallery import to_rgb
    from wbc_edge.core.preprocess import prepare

    return to_rgb(prepare(decode_image(path), spec), spec)
