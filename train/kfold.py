"""K-fold training: one bundle per fold, an inner validation split, the mean and sd over folds."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from wbc_edge.core.bundle import save_bundle
from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.metrics import kfold_summary
from wbc_edge.train.bundle_writer import write_bundle
from wbc_edge.train.config import MANIFEST_FILE, MODEL_FILE, TrainConfig
from wbc_edge.train.fitting import RunResult, TrainData, train_run
from wbc_edge.train.report import REPORT_JSON
from wbc_edge.train.run_files import read_kfold, read_run_report

log = logging.getLogger(__name__)


def train_kfold(
    data: TrainData, cfg: TrainConfig, out_dir: Path, max_steps: int | None, context: dict
) -> Path:
    """K runs, fold i held out; checkpoints selected on an inner validation split of the
    training folds (grouped like the folds). Summary: mean ± sd of every metric."""
    plan = data.plan
    k = int(cfg.kfold)  # type: ignore[arg-type]
    folds, fold_metrics = [], []
    # folds finished earlier: by the run resumed, or by this run's fold jobs (train.fold_jobs)
    reuse = cfg.resume or cfg.fold_jobs > 1
    for i in cfg.folds or range(k):
        fold = f"fold{i}"
        fold_dir = out_dir / "folds" / fold
        sides = _fold_sides(data, cfg, fold)
        log.info("%s: %s held out (%d images)", plan.name, fold, len(sides[fold]))
        done = fold_dir / REPORT_JSON
        if reuse and done.is_file() and (fold_dir / MODEL_FILE).is_file():
            saved, data_saved = read_run_report(done)  # metrics and history passed on whole
            result = RunResult(data_saved["metrics"], data_saved["history"], saved.best_epoch,
                               saved.epochs_run, saved.timing, saved.notes)  # fmt: skip
        else:
            run_sides = {"train": sides["train"], "val": sides["val"], "test": sides[fold]}
            fold_data = dataclasses.replace(data, plan=dataclasses.replace(
                plan, name=f"{plan.name}:{fold}"))  # fmt: skip
            result = train_run(fold_data, cfg, fold_dir, run_sides, max_steps)
            fold_sides = ["train"] * len(plan.sides)
            for side, idx in run_sides.items():
                for j in idx:
                    fold_sides[j] = side
            _write_fold_bundle(fold_data, cfg, fold_dir, result, context, fold_sides)
        held_out = next(v for key, v in result.metrics.items() if key.endswith(":test"))
        fold_metrics.append(held_out)
        folds.append({"fold": fold, "metrics": held_out, "best_epoch": result.best_epoch})
    if cfg.folds is not None:  # a share of the run: the run over all K folds summarises
        log.info("%s: trained %s of %d folds", plan.name, ", ".join(f["fold"] for f in folds), k)
        return out_dir
    summary = kfold_summary(fold_metrics)
    kfold = {"name": plan.name, "k": k, "folds": folds, "summary": summary}
    shutil.copyfile(out_dir / "folds" / "fold0" / MODEL_FILE, out_dir / MODEL_FILE)
    top = RunResult(
        {f"{plan.name}:{f['fold']}": f["metrics"] for f in folds}, {}, None, 0, {},
        ["K-fold: model.keras is fold 0's model; per-fold bundles in folds/",
         "sd is the sample standard deviation over folds (ddof=1)"],
    )  # fmt: skip
    log.info(
        "%s: accuracy %.4f ± %.4f over %d folds",
        plan.name, summary["mean"]["accuracy"], summary["sd"]["accuracy"], k,
    )  # fmt: skip
    write_bundle(data, cfg, out_dir, top, context, kfold)
    attach_cv_summary(out_dir)
    return out_dir


def attach_cv_summary(kfold_dir: Path) -> list[Path]:
    """Record a K-fold run's mean ± sd (from its report.json) in every fold bundle, so a fold
    model shipped on its own still says how the recipe does on unseen cells. Returns the fold
    bundles updated."""
    from wbc_edge.core.bundle import load_bundle

    kfold = read_kfold(kfold_dir)
    updated = []
    for fold in kfold.folds:
        bundle = load_bundle(Path(kfold_dir) / "folds" / fold.fold, verify=False)
        bundle.add_metrics(f"{kfold.name}:mean", kfold.summary.mean, folds=kfold.k)
        bundle.add_metrics(f"{kfold.name}:sd", kfold.summary.sd, folds=kfold.k, ddof=1)
        updated.append(save_bundle(bundle))
    return updated


def _fold_sides(data: TrainData, cfg: TrainConfig, fold: str) -> dict[str, list[int]]:
    """Held-out fold; the rest split ~90/10 into train and an inner validation side."""
    plan = data.plan
    rest = [i for i, s in enumerate(plan.sides) if s != fold]
    records = [data.images_set.records[i] for i in rest]
    groups = [plan.groups[i] for i in rest]
    kind = "grouped" if plan.kind == "grouped" else "random"
    inner = splits.make_sides(kind, records, groups, [0.9, 0.1], cfg.data_seed)
    return {
        "train": [i for i, s in zip(rest, inner, strict=True) if s == "train"],
        "val": [i for i, s in zip(rest, inner, strict=True) if s == "val"],
        fold: [i for i, s in enumerate(plan.sides) if s == fold],
    }


def _write_fold_bundle(data, cfg, fold_dir, result, context, fold_sides) -> None:
    splits.write_manifest(fold_dir / MANIFEST_FILE, data.images_set.records, data.plan.groups,
                          fold_sides)  # fmt: skip
    fold_data = dataclasses.replace(data, plan=dataclasses.replace(data.plan, sides=fold_sides))
    name = f"{cfg.name or fold_dir.parent.parent.resolve().name}-{fold_dir.name}"
    write_bundle(fold_data, dataclasses.replace(cfg, name=name), fold_dir, result, context)
