"""The parity report's pictures, drawn so that differences show at their real size.

Agreement is drawn as disagreements per 1,000 images on an axis from 0 (0.9974 is 2.6 per
1,000, not a bar that fell off a zoomed axis); recall changes in points around 0 with the
per-class gate marked; confidence as the share of images below each top probability, float
and artifact on the same axes. Legends sit below the axes, never on the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wbc_edge.core.dataset.plots import draw_confusion, figure_png, pyplot

PASS_COLOUR, FAIL_COLOUR = "tab:green", "tab:red"
WIDTH_IN = 7.2  # fits an A4 page's text width at 90 dpi


def recall_changes(art: dict[str, Any]) -> list[float]:
    """Artifact recall minus float recall per class (recomputed for a report from before
    `recall_change` was recorded)."""
    if art.get("recall_change") is not None:
        return list(art["recall_change"])
    f, a = art["float_scores"]["recall"], art["artifact_scores"]["recall"]
    return [y - x for x, y in zip(f, a, strict=True)]


def parity_plot(report: dict[str, Any]) -> bytes:
    """Left: disagreements per 1,000 with the gate. Right: recall change per class (points)."""
    plt = pyplot()
    arts, classes = report["artifacts"], report["classes"]
    t = report["thresholds"]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(WIDTH_IN, 0.9 + 0.45 * max(len(arts), len(classes))), layout="constrained"
    )
    _disagreements(left, arts, 1000 * (1 - t["min_agreement"]))
    _recall_changes(right, arts, classes, 100 * t.get("max_class_drop", 0.0))
    fig.suptitle(f"parity on {report['parity_set']['n']} held-out images", fontsize=10)
    return figure_png(fig)


def _disagreements(ax: Any, arts: list[dict[str, Any]], gate: float) -> None:
    y = np.arange(len(arts))
    per_1000 = [1000 * (1 - a["agreement"]) for a in arts]
    colours = [PASS_COLOUR if a["status"] == "ok" else FAIL_COLOUR for a in arts]
    ax.barh(y, per_1000, 0.6, color=colours)
    for yi, v in zip(y, per_1000, strict=True):
        ax.text(v, yi, f" {v:.1f}", va="center", fontsize=8)
    ax.axvline(gate, color="k", ls=":", lw=1, label=f"gate: at most {gate:g} per 1,000")
    ax.set_xlim(0, 1.25 * max([gate, *per_1000, 1.0]))
    ax.set_yticks(y, [a["key"] for a in arts], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("disagreements with the float model per 1,000 images", fontsize=8)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)


def _recall_changes(ax: Any, arts: list[dict[str, Any]], classes: list[str], gate: float) -> None:
    y = np.arange(len(classes))
    height = 0.8 / max(len(arts), 1)
    values = []
    for k, a in enumerate(arts):
        change = 100 * np.asarray(recall_changes(a))
        values += change.tolist()
        ax.barh(y - 0.4 + height * (k + 0.5), change, height, label=a["key"])
    ax.axvline(0, color="k", lw=0.8)
    if gate:
        ax.axvline(-gate, color="k", ls=":", lw=1, label=f"gate: fall at most {gate:g} points")
    span = 1.3 * max([gate, *np.abs(values), 0.5])
    ax.set_xlim(-span, span)
    ax.set_yticks(y, classes, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("recall change per class, artifact − float (points)", fontsize=8)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)


def confidence_plot(report: dict[str, Any]) -> bytes:
    """Share of images whose top probability is at most p: float model and every artifact."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 2.8), layout="constrained")
    n_classes = len(report["classes"])
    curves = [("float model", report["float_confidences"], "k", 2.0)]
    curves += [(a["key"], a["confidences"], None, 1.0) for a in report["artifacts"]]
    for name, conf, colour, lw in curves:
        x = np.sort(np.asarray(conf, float))
        if len(x):
            y = np.arange(1, len(x) + 1) / len(x)
            ax.step(x, y, where="post", label=name, color=colour, lw=lw)
    ax.set_xlim(1 / n_classes, 1.0)
    ax.set_ylim(0, 1)
    ax.set_xlabel("top probability of an image", fontsize=8)
    ax.set_ylabel("share of images at or below", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure_png(fig)


def confusion_plot(art: dict[str, Any], classes: list[str]) -> bytes:
    """Float and artifact confusion matrices side by side."""
    fig, axes = pyplot().subplots(1, 2, figsize=(WIDTH_IN, 3.4))
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
