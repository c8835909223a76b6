"""`wbc-train card`: write a bundle's MODEL_CARD.md from what the bundle and its runs recorded.

Every number in the card is read from files (bundle.json with its metrics and parity, the
K-fold run's report.json, an optional speed table), so regenerating the card after a new
training or conversion run cannot leave stale figures behind:

    wbc-train card models/default --cv /runs/lite0-transfer-k5 --speed bench.txt
"""

from __future__ import annotations

from pathlib import Path

from wbc_edge.core.bundle import Bundle, load_bundle
from wbc_edge.train.report import summed_confusion
from wbc_edge.train.run_files import KFold, read_kfold

CARD_FILE = "MODEL_CARD.md"

INTENDED_USE = """\
**A research and teaching aid, not a diagnostic device.** It sorts single white blood cells
in stained peripheral-blood smear images into four classes (eosinophil, lymphocyte,
monocyte, neutrophil) and keeps a running differential count, on a microscope-attached
Raspberry Pi, Jetson or PC. It has not been validated clinically; no result may be used
for a patient without review by a qualified person.

Out of scope: any other cell type (basophils, blasts, atypical or reactive lymphocytes,
nucleated red cells, smudge cells are forced into one of the four classes), other stains
than the training images' (a camera's white balance, exposure and magnification are
measured and undone from the frames: `docs/robustness.md`; a stain is not), and
diagnosis."""

FAILURE_MODES = """\
- **Unseen cells are harder than the papers' figures suggest.** A random split of the
  Kaggle images scores 96–98 % (`docs/results.md`), because copies of one cell land in
  training and test; the figures above are on cells the model never saw (grouped folds).
- **Few source cells, wide spread.** 277 source cells in all, 16 monocytes: one or two
  misread cells move a fold's accuracy by several points (see the per-fold table).
- **Other labs' images.** Trained on one data source (BCCD-derived Kaggle crops, 320x240
  JPEG, one camera and stain). The colour step and the measured scale undo another camera's
  white balance, exposure and magnification (`docs/robustness.md`), and frames out of focus,
  badly exposed or without red cells are flagged and not counted; another stain or smear
  technique is not undone. Check with your own labelled cells first
  (`wbc-edge classify --mode cell --source YOUR_CLASS_FOLDERS` prints the accuracy).
- **Field mode** depends on finding the cell first (`benchmarks/detect_bccd.py --model`
  gives the finder's recall and false detections on BCCD, `docs/edge.md`); a false
  detection is classified like a cell. Cells whose nucleus is not found are reported,
  never guessed.
- Low-confidence results are flagged `uncertain` (below 0.6 by default): check them by eye."""

DATA = """\
Kaggle "Blood Cell Images" (Paul Mooney, `dataset2-master`, TRAIN split: 9,957 JPEGs,
320x240, one white cell near the centre), derived from the BCCD data set (Shenggan, 2017).
Both are MIT-licensed (see `samples/LICENSE`); this bundle is a derived work and keeps
that notice. The TRAIN images are augmented copies of 277 source cells; `wbc-train
groups` recovered them from the pixels (`docs/grouping.md`) and every split here keeps
all copies of one cell on one side."""


def write_card(bundle_dir: Path, cv_dir: Path | None = None, speed: Path | None = None) -> Path:
    """Write `bundle_dir/MODEL_CARD.md`; returns its path."""
    bundle = load_bundle(bundle_dir)
    kfold = read_kfold(cv_dir) if cv_dir is not None else None
    lines = [f"# Model card: {bundle.name}", "", "## Intended use", "", INTENDED_USE, ""]
    lines += _model_section(bundle)
    lines += ["## Data and licence", "", DATA, ""]
    lines += _split_section(bundle, kfold)
    if kfold:
        lines += _cv_section(kfold, bundle.classes)
    lines += _held_out_section(bundle)
    lines += _count_model_section(bundle)
    lines += _parity_section(bundle)
    if speed is not None:
        text = Path(speed).read_text().rstrip()
        lines += ["## Speed on the CPU it was measured on", "", "```", text, "```", ""]
    lines += ["## Known failure modes", "", FAILURE_MODES, ""]
    if kfold:
        lines += _confusions(kfold, bundle.classes)
    path = Path(bundle_dir) / CARD_FILE
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _model_section(bundle: Bundle) -> list[str]:
    p = bundle.provenance
    t = p.get("training", {})
    spec = bundle.preprocessing
    weights = p.get("weights", {})
    origin = weights.get("package") or weights.get("weights", "none")
    preset = f"preset `{t['preset']}`" if t.get("preset") else "no preset"
    steps = p.get("timing", {}).get("steps_per_epoch")
    extras = f", mixup α {t['mixup']}" if t.get("mixup") else ""
    extras += f", weights averaged (EMA, momentum {t['ema']})" if t.get("ema") else ""
    return [
        "## Model",
        "",
        f"- architecture: `{t.get('model')}`; recipe: {preset}, {t.get('epochs')} epochs"
        f"{f' of {steps} batches' if steps else ''} (head-only first: "
        f"{t.get('head_epochs', 0)}), "
        f"{t.get('optimizer')} lr {t.get('lr')} ({t.get('lr_schedule')}), batch "
        f"{t.get('batch_size')}, augmentation `{t.get('augment')}`, label smoothing "
        f"{t.get('label_smoothing', 0)}, class weights {t.get('class_weights') or 'none'}"
        f"{extras}",
        f"- initial weights: {origin}",
        f"- input: {spec.height}x{spec.width} {spec.color_order}, crop: {spec.crop.method} "
        f"window of {spec.crop.size} source px around the stained nucleus, normalisation "
        f"{_norm_text(spec.norm)}",
        f"- colour step: {_colour_text(spec.colour)}",
        *(f"- note: {note}" for note in t.get("notes", [])),
        f"- trained with Keras {t.get('keras')} ({t.get('backend')} backend), commit "
        f"`{p.get('git_commit', '?')}`, {p.get('created', '?')}; wall time "
        f"{p.get('timing', {}).get('wall_s', '?')} s",
        "",
    ]


def _colour_text(colour) -> str:
    if colour.method == "none":
        return "none (frames are used as the camera gave them)"
    return (
        f"glass and red cells of each image mapped onto RGB {list(colour.background)} and "
        f"{list(colour.red_cell)} (`core/colour.py`)"
    )


def _norm_text(norm) -> str:
    if norm.kind == "scale":
        return f"x = rgb × {norm.scale:.6g} + {norm.offset:.6g}"
    return f"x = (rgb / 255 − {norm.mean}) / {norm.std}"


def _split_section(bundle: Bundle, kfold: KFold | None) -> list[str]:
    split = bundle.provenance.get("split", {})
    lines = ["## Splits", ""]
    if kfold:
        lines.append(
            f"- cross-validation: `{kfold.name}`, {kfold.k} folds of whole source cells "
            "(each fold model also keeps an inner validation side of its training folds, "
            "grouped too, for checkpoint selection)"
        )
    lines += [
        f"- this bundle's model: `{split.get('name')}` ({split.get('description')}); the "
        f"manifest `{split.get('manifest')}` lists every image's side and source cell",
        "",
    ]
    return lines


def _cv_section(kfold: KFold, classes: list[str]) -> list[str]:
    mean, sd = kfold.summary.mean, kfold.summary.sd

    def ms(key: str) -> str:
        return f"{mean[key]:.3f} ± {sd[key]:.3f}"

    lines = [
        f"## Accuracy on unseen cells: grouped {kfold.k}-fold (mean ± sd over folds)",
        "",
        f"accuracy **{ms('accuracy')}**, macro F1 {ms('macro_avg.f1')}",
        "",
        "| class | precision | recall | F1 |",
        "| --- | --- | --- | --- |",
    ]
    for c in classes:
        k = f"per_class.{c}."
        lines.append(f"| {c} | {ms(k + 'precision')} | {ms(k + 'recall')} | {ms(k + 'f1')} |")
    lines += ["", "| fold | held-out images | accuracy |", "| --- | --- | --- |"]
    for f in kfold.folds:
        lines.append(f"| {f.fold} | {f.metrics.n} | {f.metrics.accuracy:.4f} |")
    lines.append("")
    return lines


def _held_out_section(bundle: Bundle) -> list[str]:
    rows = [
        m for m in bundle.metrics
        if not m["split"].endswith((":mean", ":sd")) and "accuracy" in m["values"]
    ]  # fmt: skip
    if not rows:
        return []
    lines = ["## This bundle's model on its own held-out images", ""]
    lines += ["| split | images | accuracy | macro recall |", "| --- | --- | --- | --- |"]
    for m in rows:
        v = m["values"]
        lines.append(f"| `{m['split']}` | {v['n']} | {v['accuracy']:.4f} | "
                     f"{v['macro_avg']['recall']:.4f} |")  # fmt: skip
    lines.append("")
    return lines


def _count_model_section(bundle: Bundle) -> list[str]:
    """Calibration and the differential's correction (`wbc-train count-model`)."""
    cm = bundle.count_model
    if cm is None:
        return []
    stats = next((m["values"] for m in bundle.metrics if m["split"].endswith(":calibration")), {})
    lines = ["## Calibration and the corrected differential", ""]
    lines.append(
        f"Every runtime divides the model's logits by the temperature **{cm.temperature:g}**, "
        f"fitted on {cm.source}."
    )
    if stats:
        lines.append(
            f"Negative log-likelihood {stats['nll_before']} -> {stats['nll_after']}, expected "
            f"calibration error {stats['ece_before']} -> {stats['ece_after']} "
            "(15 equal-width bins; `calibration.png`)."
        )
    lines += ["", "Out-of-fold confusion the differential is corrected with (rows true):", ""]
    lines += ["| true \\ predicted | " + " | ".join(bundle.classes) + " |"]
    lines += ["| --- " * (len(bundle.classes) + 1) + "|"]
    for name, row in zip(bundle.classes, cm.confusion, strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![reliability diagram](calibration.png)", ""]
    return lines


def _parity_section(bundle: Bundle) -> list[str]:
    parity = bundle.parity or {}
    arts = parity.get("artifacts", {})
    if not arts:
        return ["## Converted artifacts", "", "none yet (`wbc-convert`)", ""]
    n = parity.get("parity_set", {}).get("n")
    lines = [
        "## Converted artifacts and their parity with the float model",
        "",
        f"On {n} held-out images (`parity.md`, `parity.html`); agreement is top-1 agreement "
        "with the Keras float model. `wbc-edge` never picks an artifact marked `failed`.",
        "",
        "| artifact | file | size | ran as | agreement | accuracy drop (points) | status |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    sizes = {a.file: a.disk_bytes for a in bundle.artifacts}
    for key, a in arts.items():
        size = sizes.get(a["file"])
        size_text = f"{size / 2**20:.2f} MiB" if size else "?"
        ran = a["runtime"]
        ran_text = f"{ran.get('backend')} {ran.get('inference_precision')}" if ran else "?"
        lines.append(
            f"| {key} | `{a['file']}` | {size_text} | {ran_text} | {a['agreement']:.4f} | "
            f"{a['drop_points']:+.2f} | {a['status']} |"
        )
    lines.append("")
    return lines


def _confusions(kfold: KFold, classes: list[str]) -> list[str]:
    total = summed_confusion([f.metrics.confusion_matrix for f in kfold.folds])
    lines = ["Where the errors go, all folds summed (rows: true class):", ""]
    lines += ["| true \\ predicted | " + " | ".join(classes) + " |"]
    lines += ["| --- |" + " --- |" * len(classes)]
    for i, c in enumerate(classes):
        row = total[i] / max(1, total[i].sum())
        lines.append(f"| {c} | " + " | ".join(f"{100 * x:.1f} %" for x in row) + " |")
    off = [(total[i, j] / max(1, total[i].sum()), i, j)
           for i in range(len(classes)) for j in range(len(classes)) if i != j]  # fmt: skip
    worst = sorted(off, reverse=True)[:3]
    lines += ["", "Largest confusions: " + "; ".join(
        f"{classes[i]} taken for {classes[j]} ({100 * s:.1f} %)" for s, i, j in worst
    ) + "."]  # fmt: skip
    return lines
