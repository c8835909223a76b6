"""The training report written into the bundle folder: JSON for machines, Markdown and PNGs for
people (matplotlib, Agg backend: no display needed).

Files: report.json, report.md, curves.png (loss and accuracy, train vs val),
confusion_<side>.json and confusion_<side>.png per evaluated side (K-fold runs: per held-out
fold, plus confusion_all_folds summed over them); the split manifest (split.csv) is written by
the trainer next to them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.dataset.plots import draw_confusion, pyplot

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CURVES_PNG = "curves.png"


def plot_confusion(cm: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str):
    """Counts with row-normalised shading; rows are true classes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.4 * len(classes) + 2, 1.2 * len(classes) + 1.6))
    draw_confusion(ax, cm, classes, title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(history: dict[str, list[float]], path: Path, title: str = "") -> None:
    """Loss and accuracy per epoch, train vs validation; a head-only first phase (keys
    `head_*`) is drawn before the main phase, dashed, with a line where it ends."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    n_head = len(history.get("head_loss", []))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, label, colour in (("", "train", "C0"), ("val_", "val", "C1")):
            head = history.get("head_" + prefix + key)
            if head:
                x = range(1, len(head) + 1)
                ax.plot(x, head, ls="--", color=colour, alpha=0.6, label=f"{label} (head only)")
            values = history.get(prefix + key)
            if values:
                x = range(n_head + 1, n_head + len(values) + 1)
                ax.plot(x, values, marker="o", ms=3, color=colour, label=label)
        if n_head:
            ax.axvline(n_head + 0.5, color="grey", lw=0.8)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_run_report(run_dir: Path, report: dict[str, Any], classes: Sequence[str]) -> list[str]:
    """report.json, report.md, curves.png and the confusion files; returns the file names."""
    run_dir = Path(run_dir)
    files = [REPORT_JSON, REPORT_MD]
    if report.get("history"):
        plot_curves(report["history"], run_dir / CURVES_PNG, report.get("title", ""))
        files.append(CURVES_PNG)
    for split_name, values in report.get("metrics", {}).items():
        side = split_name.rsplit(":", 1)[-1]
        stem = f"confusion_{side}"
        cm = values["confusion_matrix"]
        (run_dir / f"{stem}.json").write_text(
            json.dumps({"split": split_name, "classes": list(classes), "matrix": cm}, indent=1)
            + "\n"
        )
        plot_confusion(cm, classes, run_dir / f"{stem}.png", f"{split_name} (rows: true)")
        files += [f"{stem}.json", f"{stem}.png"]
    if "kfold" in report:
        files += write_summed_confusion(run_dir, report["kfold"], classes)
    report["files"] = sorted(set([*files, report.get("split", {}).get("manifest", "")]) - {""})
    (run_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / REPORT_MD).write_text(markdown(report, classes))
    return report["files"]


def summed_confusion(matrices: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
    """The K-fold run's held-out confusion matrices added up (rows: true class)."""
    return np.sum(matrices, axis=0)


def write_summed_confusion(
    run_dir: Path, kfold: dict[str, Any], classes: Sequence[str]
) -> list[str]:
    """confusion_all_folds.json/.png: every fold's held-out confusion matrix, summed."""
    cm = summed_confusion([f["metrics"]["confusion_matrix"] for f in kfold["folds"]]).tolist()
    name = f"{kfold['name']}, all {kfold['k']} held-out folds summed"
    stem = "confusion_all_folds"
    (run_dir / f"{stem}.json").write_text(
        json.dumps({"split": name, "classes": list(classes), "matrix": cm}, indent=1) + "\n"
    )
    plot_confusion(cm, classes, run_dir / f"{stem}.png", f"{name} (rows: true)")
    return [f"{stem}.json", f"{stem}.png"]


def markdown(report: dict[str, Any], classes: Sequence[str]) -> str:
    """A short human-readable summary of a run or a K-fold run."""
    lines = [f"# {report.get('title', 'training report')}", ""]
    split = report.get("split", {})
    lines += [
        f"- model: `{report.get('model')}`, preset: `{report.get('preset')}`",
        f"- split: **{split.get('name')}** ({split.get('description', '')}); "
        f"groups from {split.get('groups_origin')}; "
        f"source cells on two sides: {split.get('groups_on_two_sides')}",
        f"- manifest: `{split.get('manifest')}`",
    ]
    for note in report.get("notes", []):
        lines.append(f"- note: {note}")
    timing = report.get("timing", {})
    if timing:
        lines.append(
            f"- wall time {timing.get('wall_s', 0):.0f} s; training "
            f"{timing.get('train_images_per_s', 0):.0f} images/s; evaluation "
            f"{timing.get('eval_images_per_s', 0):.0f} images/s"
        )
    lines.append("")
    for split_name, m in report.get("metrics", {}).items():
        lines += _metrics_table(split_name, m, classes)
    if "kfold" in report:
        lines += _kfold_table(report["kfold"])
    return "\n".join(lines) + "\n"


def _metrics_table(split_name: str, m: dict[str, Any], classes: Sequence[str]) -> list[str]:
    out = [
        f"## {split_name}: accuracy {m['accuracy']:.4f} (n = {m['n']})",
        "",
        "| class | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in classes:
        pc = m["per_class"][c]
        out.append(
            f"| {c} | {pc['precision']:.4f} | {pc['recall']:.4f} | {pc['f1']:.4f} "
            f"| {pc['support']} |"
        )
    for avg in ("macro_avg", "weighted_avg"):
        a = m[avg]
        out.append(f"| {avg} | {a['precision']:.4f} | {a['recall']:.4f} | {a['f1']:.4f} | |")
    out += ["", "confusion matrix (rows true, columns predicted):", "", "```"]
    out += [" ".join(f"{v:6d}" for v in row) for row in m["confusion_matrix"]]
    return [*out, "```", ""]


def _kfold_table(kfold: dict[str, Any]) -> list[str]:
    mean, sd = kfold["summary"]["mean"], kfold["summary"]["sd"]
    out = [f"## {kfold['name']}: mean ± sd over {kfold['k']} folds", ""]
    out += ["| metric | mean | sd |", "| --- | --- | --- |"]
    out += [f"| {k} | {mean[k]:.4f} | {sd[k]:.4f} |" for k in mean]
    out += ["", "| fold | accuracy | macro F1 |", "| --- | --- | --- |"]
    for fold in kfold["folds"]:
        m = fold["metrics"]
        out.append(f"| {fold['fold']} | {m['accuracy']:.4f} | {m['macro_avg']['f1']:.4f} |")
    return [*out, ""]
