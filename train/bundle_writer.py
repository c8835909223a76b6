"""Writing a run's bundle: model.keras, bundle.json with provenance and metrics, the report."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras

from wbc_edge.core.bundle import new_bundle, save_bundle
from wbc_edge.core.dataset import splits
from wbc_edge.train.config import MANIFEST_FILE, MODEL_FILE, TrainConfig
from wbc_edge.train.fitting import RunResult, TrainData
from wbc_edge.train.models import parse_weights
from wbc_edge.train.models.registry import weights_provenance
from wbc_edge.train.report import write_run_report
from wbc_edge.train.split_plan import SplitPlan

log = logging.getLogger(__name__)


def write_bundle(
    data: TrainData, cfg: TrainConfig, out_dir: Path, result: RunResult, context: dict,
    kfold: dict | None = None,
) -> Path:  # fmt: skip
    """bundle.json with provenance and metrics, plus the report files."""
    name = cfg.name or out_dir.resolve().name
    plan = data.plan
    bundle = new_bundle(
        out_dir, name, data.classes, data.spec,
        data={
            "root": str(context["data_root"]),
            "images": len(data.labels),
            "skipped": len(data.skipped),
            "per_class": data.images_set.counts(),
        },
        split={"kind": plan.kind, "name": plan.name, "manifest": MANIFEST_FILE,
               "description": plan.description},
        seed=cfg.seed,
        training={**cfg.settings(), "backend": keras.backend.backend(),
                  "keras": keras.__version__},
        groups={"origin": plan.groups_origin,
                "csv": str(context["groups_csv"]) if context["groups_csv"] else None},
        weights=weights_provenance(cfg.model, cfg.input_size, parse_weights(cfg.weights)),
        notes=result.notes,
    )  # fmt: skip
    bundle.add_artifact("keras", "fp32", MODEL_FILE)
    for split_name, values in result.metrics.items():
        bundle.add_metrics(split_name, values)
    if kfold:
        bundle.add_metrics(f"{plan.name}:mean", kfold["summary"]["mean"], folds=kfold["k"])
        bundle.add_metrics(f"{plan.name}:sd", kfold["summary"]["sd"], folds=kfold["k"], ddof=1)
    wall = time.perf_counter() - context["t0"]
    bundle.provenance["timing"] = {"wall_s": round(wall, 1), **result.timing}
    report = {
        "title": f"{name}: {cfg.model} on {plan.name}",
        "model": cfg.model,
        "preset": cfg.preset,
        "split": {
            "name": plan.name, "kind": plan.kind, "description": plan.description,
            "manifest": MANIFEST_FILE, "groups_origin": plan.groups_origin,
            "groups_on_two_sides": _cells_on_two_sides(plan),
            "counts": splits.summarise([r.label for r in data.images_set.records], plan.sides),
        },
        "settings": cfg.settings(),
        "notes": result.notes,
        "metrics": result.metrics,
        "history": result.history,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "timing": {"wall_s": round(wall, 1), "load_s": round(data.load_s, 1), **result.timing},
        "skipped": data.skipped,
    }  # fmt: skip
    if kfold:
        report["kfold"] = kfold
    write_run_report(out_dir, report, data.classes)
    save_bundle(bundle)
    log.info("wrote %s in %.0f s", bundle.path, wall)
    return out_dir


def _cells_on_two_sides(plan: SplitPlan) -> int | None:
    if plan.groups_origin in ("unavailable", "one-per-file"):
        return None
    return len(splits.group_overlap(plan.groups, plan.sides))
