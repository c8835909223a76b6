"""`wbc-train`: train a zoo model into a bundle; also recover source cells and write splits.

wbc-train [train] DATA_ROOT --model custom-cnn --preset thesis-s1 --split grouped --out models/NAME
wbc-train --list-models
wbc-train groups DATA_ROOT --out groups.csv
wbc-train split DATA_ROOT --kind grouped --out split.csv
wbc-train card BUNDLE [--cv KFOLD_RUN] [--speed TABLE.txt]
wbc-train adapt BUNDLE REPORT_DIR [REPORT_DIR ...] --out CHILD [--data-root DATA_ROOT]
wbc-train ship CHILD [--store DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wbc_edge.core import limits
from wbc_edge.core.cli_support import Command, build_parser, main_of
from wbc_edge.core.dataset import splits
from wbc_edge.core.dataset.cell_groups import resolve_groups, write_groups_csv
from wbc_edge.core.dataset.data import list_images
from wbc_edge.core.errors import DataError, WbcError
from wbc_edge.core.quiet import native_stderr
from wbc_edge.train.presets import PRESETS

PROG = "wbc-train"


def main(argv: list[str] | None = None) -> int:
    return main_of(PROG, parser(), argv, default="train")


def parser() -> argparse.ArgumentParser:
    return build_parser(
        PROG,
        "Train a model into a bundle (model.keras, report, split manifest) and the tools around "
        "it. Without a command: train (`wbc-train DATA_ROOT ...` is `wbc-train train DATA_ROOT "
        "...`).",
        COMMANDS,
        epilog="See docs/training.md.",
    )


def train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_root", type=Path, nargs="?", help="folder of class folders")
    p.add_argument("--list-models", action="store_true", help="print the model zoo and exit")
    p.add_argument(  # the flag's old name, before every command had --verbose
        "--tf-logs", dest="verbose", action="store_true", default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="bundle folder, e.g. models/custom-cnn-grouped")
    p.add_argument("--name", help="bundle name (default: the --out folder's name)")
    p.add_argument("--model", default="custom-cnn", help="see --list-models")
    p.add_argument("--preset", choices=sorted(PRESETS), help=", ".join(PRESETS))
    p.add_argument(
        "--weights", help="imagenet | none | PATH (default none; imagenet with --preset transfer)"
    )
    g = p.add_argument_group("split")
    g.add_argument(
        "--split", default="grouped", help="grouped (default) | random | folders | manifest:PATH"
    )
    g.add_argument("--grouped", action="store_true", help="same as --split grouped")
    g.add_argument("--fractions", help="e.g. 80/10/10 or 70/30")
    g.add_argument("--kfold", type=int, metavar="K", help="K-fold cross-validation")
    g.add_argument(
        "--fold-jobs", type=int, default=1, metavar="N",
        help="train N folds at once, each a child process on its own GPU (CPU without GPUs); "
        "record in OUT/fold_jobs.json",
    )  # fmt: skip
    g.add_argument(
        "--folds", type=_fold_list, metavar="I,J",
        help="train only these folds of --kfold K, no summary (a share of a run, e.g. per "
        "machine; a later run with --resume summarises)",
    )  # fmt: skip
    g.add_argument("--groups", type=Path, help="groups CSV from `wbc-train groups`")
    g.add_argument("--images-per-class", type=int, help="subsample first (0: all)")
    g.add_argument("--seed", type=int, default=0, help="weights, augmentation, and the split")
    g.add_argument(
        "--split-seed",
        type=int,
        help="seed of the split alone (default: --seed); keeps the "
        "folds of another run while --seed changes the weights",
    )
    h = p.add_argument_group("training")
    h.add_argument("--epochs", type=int)
    h.add_argument("--batch-size", type=int)
    h.add_argument("--lr", type=float, help="learning rate")
    h.add_argument("--lr-schedule", choices=["constant", "cosine"])
    h.add_argument("--optimizer", choices=["adam", "sgdm", "sgd", "rmsprop"])
    h.add_argument("--input-size", type=int, help="model input side in pixels")
    h.add_argument("--crop-size", type=int, default=150, help="nucleus window, source pixels")
    h.add_argument("--crop-method", default="nucleus", choices=["nucleus", "center", "none"])
    h.add_argument(
        "--colour",
        default="reference",
        choices=["reference", "none"],
        help="colour normalisation: map each image's glass and red cells onto the training "
        "data's (default reference; measured on the data and stored in the bundle)",
    )
    h.add_argument(
        "--augment",
        help="e.g. flips,rot90,shift=0.1 or none; also scale=, hue=, sat=, bright=, gain=, "
        "gamma=, blur= (train/augment.py)",
    )
    h.add_argument("--class-weights", choices=["balanced"])
    h.add_argument("--early-stopping", type=int, metavar="N", help="patience in epochs")
    h.add_argument("--head-lr-factor", type=float, help="journal models: new layer's lr factor")
    h.add_argument("--freeze-base", action=argparse.BooleanOptionalAction, default=None)
    h.add_argument("--head-epochs", type=int, help="first train the head alone on frozen features")
    h.add_argument("--head-lr", type=float, help="learning rate of that head-only phase")
    h.add_argument(
        "--frozen-bn", action=argparse.BooleanOptionalAction, default=None,
        help="keep a fine-tuned base's batch norm in inference mode",
    )  # fmt: skip
    h.add_argument("--label-smoothing", type=float, help="e.g. 0.1")
    h.add_argument("--mixup", type=float, metavar="ALPHA", help="mixup, e.g. 0.2 (0: off)")
    h.add_argument(
        "--ema", type=float, metavar="MOMENTUM",
        help="validate and keep a moving average of the weights, e.g. 0.99 (0: off)",
    )  # fmt: skip
    h.add_argument("--mixed-precision", default="auto", choices=["auto", "on", "off"])
    h.add_argument("--steps-per-epoch", type=int, help="cap batches per epoch (smoke tests)")
    h.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    h.add_argument("--keep-checkpoints", action="store_true")
    h.add_argument("--cache-dir", type=Path, help="prepared-image cache (default ~/.cache)")
    h.add_argument("--no-cache", action="store_true")
    h.add_argument("--workers", type=int, default=1, help="batch-preparing threads")
    h.add_argument(
        "--progress", type=int, choices=[0, 1, 2],
        help="Keras progress output: 0 none, 1 a bar, 2 a line per epoch (default: 1 on a "
        "terminal, else 2)",
    )  # fmt: skip
    h.add_argument("--eager", action="store_true", help="run eagerly (debugging)")
    add_job_flags(p)  # fmt: skip


def train_command(args: argparse.Namespace) -> int:
    """Train a model into a bundle (model.keras, report, split manifest); print where the
    bundle and its report are."""
    if args.list_models:
        return list_models()
    if args.data_root is None or args.out is None:
        raise WbcError("DATA_ROOT and --out are required (or --list-models)")
    from wbc_edge.train.checks import check_classes
    from wbc_edge.train.distributed import cluster_from, run_in_job

    cluster = cluster_from(args.coordinator, args.num_processes, args.process_id)
    check_classes(list_images(args.data_root), args.data_root)  # before TensorFlow loads
    with native_stderr():  # its start-up notices hidden unless --verbose
        import tensorflow  # noqa: F401
    from wbc_edge.train.trainer import train_bundle

    config = config_from_args(args)
    if config.fold_jobs > 1:
        _run_fold_jobs(args.argv, config, args.out, cluster is not None)

    def train(out: Path) -> Path:
        return train_bundle(args.data_root, out, config, args.groups, args.steps_per_epoch)

    if cluster is None:
        out = train(args.out)
    elif (out := run_in_job(cluster, args.join_timeout, args.out, train)) is None:
        print(f"this process trained its share of every batch; process 0 wrote {args.out}")
        return 0
    if config.folds is not None:
        print(f"trained folds {', '.join(map(str, config.folds))} into {out}/folds")
        return 0
    _print_summary(out)
    return 0


def _fold_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not fold numbers like 0,2: {text!r}") from None


def _run_fold_jobs(argv: list[str], config, out: Path, in_job: bool) -> None:
    """The folds as child jobs (train.fold_jobs), before this run summarises them."""
    from wbc_edge.train.devices import gpu_count
    from wbc_edge.train.fold_jobs import run_fold_jobs

    if in_job:
        raise WbcError("--fold-jobs and --coordinator: a fold is either one job or one share")
    cfg = config.resolved()
    for job in run_fold_jobs(argv, int(cfg.kfold), cfg.fold_jobs, out, gpu_count()):
        print(f"fold{job.fold}: {job.device} on {job.host} (pid {job.pid}), {job.seconds:.0f} s")


def add_job_flags(p: argparse.ArgumentParser) -> None:
    """Flags of a multi-host job (KERAS_BACKEND=jax; see docs/training.md)."""
    g = p.add_argument_group(
        "several machines (JAX)",
        "every process runs the same command with its own --process-id; only process 0 "
        "writes --out. Unset flags are read from KERAS_DISTRIBUTION_JOB_ADDRESSES, "
        "KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID (or JAX_COORDINATOR_"
        "ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)",
    )
    g.add_argument(
        "--coordinator", metavar="HOST:PORT", help="process 0's address, or auto (Slurm, Open MPI)"
    )
    g.add_argument("--num-processes", type=int, metavar="N", help="processes in the job")
    g.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1")
    g.add_argument(
        "--join-timeout",
        type=int,
        default=300,
        metavar="S",
        help="seconds to wait for the other processes, at the start and the end",
    )


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the flags ask for (unset flags stay None: preset or default)."""
    from wbc_edge.train.config import TrainConfig

    return TrainConfig(
        model=args.model, preset=args.preset, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, lr_schedule=args.lr_schedule, optimizer=args.optimizer,
        split="grouped" if args.grouped else args.split,
        fractions=tuple(splits.parse_fractions(args.fractions)) if args.fractions else None,
        kfold=args.kfold, seed=args.seed, split_seed=args.split_seed, input_size=args.input_size,
        folds=args.folds, fold_jobs=args.fold_jobs,
        crop_size=args.crop_size, crop_method=args.crop_method, colour=args.colour,
        weights=args.weights,
        images_per_class=args.images_per_class, augment=args.augment,
        class_weights=args.class_weights, early_stopping=args.early_stopping,
        head_lr_factor=args.head_lr_factor, freeze_base=args.freeze_base,
        head_epochs=args.head_epochs, head_lr=args.head_lr, frozen_bn=args.frozen_bn,
        label_smoothing=args.label_smoothing, mixup=args.mixup, ema=args.ema,
        mixed_precision=args.mixed_precision, name=args.name, cache_dir=args.cache_dir,
        cache=not args.no_cache, resume=args.resume, keep_checkpoints=args.keep_checkpoints,
        verbose="auto" if args.progress is None else args.progress, workers=args.workers,
        run_eagerly=args.eager,
    )  # fmt: skip


def list_models() -> int:
    """The zoo: name, family, default input, parameters, weights available."""
    from wbc_edge.train.models import MODELS

    print(f"{'model':<20} {'family':<8} {'input':>5} {'params':>8}  weights")
    for info in MODELS.values():
        size = f"{info.params / 1e6:.1f}M"
        weights = info.weights_text()
        print(f"{info.name:<20} {info.family:<8} {info.default_size:>5} {size:>8}  {weights}")
    print("params: 4 classes at the default input size; --model NAME --weights imagenet|none|PATH")
    return 0


def _print_summary(out: Path) -> None:
    from wbc_edge.train.report import REPORT_JSON
    from wbc_edge.train.run_files import read_run_report

    report, _ = read_run_report(out / REPORT_JSON)
    for split_name, m in report.metrics.items():
        print(f"{split_name}: accuracy {m.accuracy:.4f}, macro F1 {m.macro_avg.f1:.4f}")
    if report.kfold is not None:
        name, mean, sd = report.kfold.name, report.kfold.summary.mean, report.kfold.summary.sd
        print(f"{name}: accuracy {mean['accuracy']:.4f} ± {sd['accuracy']:.4f}")
    print(f"wrote {out}/bundle.json (report: {out}/report.md)")


def groups_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_root", type=Path, help="folder of class folders (e.g. Kaggle TRAIN)")
    p.add_argument("--out", type=Path, default=Path("groups.csv"))
    p.add_argument("--montage", type=Path, default=None, help="PNG of a few recovered groups")
    p.add_argument("--workers", type=int, default=2)


def groups_command(args: argparse.Namespace) -> int:
    """Recover source cells from the pixels and write path,class,group."""
    from wbc_edge.core.dataset import grouping
    from wbc_edge.core.dataset.group_montage import write_montage

    images = list_images(args.data_root)
    paths = [images.root / r.path for r in images.records]
    labels = [r.label for r in images.records]
    expected = grouping.expected_k_from_names(paths, labels)
    result = grouping.recover_groups(paths, labels, expected_k=expected, workers=args.workers)
    write_groups_csv(args.out, images.root, paths, labels, result.groups)
    if args.montage:
        write_montage(args.montage, images.root, paths, result.groups)
    print(f"{'class':<12} {'groups':>6} {'K(names)':>8} {'copies min/median/max':>22}")
    for cls, row in result.per_class.items():
        copies = "/".join(
            str(row.get(k, "?")) for k in ("copies_min", "copies_median", "copies_max")
        )
        print(f"{cls:<12} {row['groups']:>6} {expected.get(cls, '?')!s:>8} {copies:>22}")
    nc = result.negative_control
    print(f"threshold: {result.params.min_inliers} inliers; negative control: {nc}")
    print(f"wrote {args.out} ({len(paths)} images) in {result.seconds:.0f} s")
    return 0


def split_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_root", type=Path)
    p.add_argument("--kind", choices=["random", "grouped", "folders", "kfold"], default="grouped")
    p.add_argument("--fractions", default="80/10/10", help="e.g. 80/10/10 or 70/30")
    p.add_argument("--k", type=int, default=5, help="folds for --kind kfold")
    p.add_argument("--grouped", action="store_true", help="K-fold by source cell")
    p.add_argument("--groups", type=Path, default=None, help="groups CSV from `wbc-train groups`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("split.csv"))


def split_command(args: argparse.Namespace) -> int:
    """Write a split manifest (path,class,group,side) and print counts per class and side."""
    images = list_images(args.data_root)
    labels = [r.label for r in images.records]
    groups, origin = resolve_groups(images, args.groups)
    folds = args.k if args.kind == "kfold" else 0
    kind = ("grouped" if args.grouped else "random") if folds else args.kind
    fractions = splits.parse_fractions(args.fractions) if kind != "folders" else []
    sides = splits.make_sides(kind, images.records, groups, fractions, args.seed, folds)
    splits.write_manifest(args.out, images.records, groups, sides)
    _print_split(labels, groups, sides, images.classes)
    overlap = splits.group_overlap(groups, sides)
    print(f"groups from: {origin}; groups on two sides: {len(overlap)}")
    if overlap and (args.kind == "grouped" or args.grouped):
        raise DataError(f"{len(overlap)} source cells fall on two sides", args.out)
    print(f"wrote {args.out}")
    return 0


def _print_split(labels, groups, sides, classes) -> None:
    images = splits.summarise(labels, sides)
    cells: dict[tuple[str, str], set[str]] = {}
    for c, g, s in zip(labels, groups, sides, strict=True):
        cells.setdefault((s, c), set()).add(g)
    print(f"{'side':<8}" + "".join(f"{c[:12]:>14}" for c in classes) + f"{'total':>8}")
    for side, counts in images.items():
        row = "".join(
            f"{counts.get(c, 0):>8} ({len(cells.get((side, c), ())):>3})" for c in classes
        )
        print(f"{side:<8}{row}{sum(counts.values()):>8}")
    print("(images per class, source cells in brackets)")


def card_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path)
    p.add_argument("--cv", type=Path, help="the `wbc-train --kfold` folder the model came from")
    p.add_argument("--speed", type=Path, help="a speed table to include (convert_bench --out)")


def card_command(args: argparse.Namespace) -> int:
    """Write BUNDLE/MODEL_CARD.md from the bundle's metrics and parity (and a K-fold run's)."""
    from wbc_edge.train.model_card import write_card

    print(write_card(args.bundle, args.cv, args.speed))
    return 0


def colour_step_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path)
    p.add_argument("data_root", type=Path)


def colour_step_command(args: argparse.Namespace) -> int:
    """Add the colour step to BUNDLE, its references measured on DATA_ROOT (its training data)."""
    from wbc_edge.train.colour_step import add_colour_step

    print(f"wrote {add_colour_step(args.bundle, args.data_root)}; run wbc-convert for parity")
    return 0


def count_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="a wbc-train --kfold output folder")
    p.add_argument("data_root", type=Path)
    p.add_argument("--bundle", type=Path, help="bundle to write into (default RUN/folds/fold0)")


def count_model_command(args: argparse.Namespace) -> int:
    """Fit the temperature and the confusion matrix of a K-fold RUN on its out-of-fold
    predictions (DATA_ROOT: its training data) and store them in BUNDLE (default: the run's
    fold 0). Run wbc-convert afterwards: parity covers the calibrated output."""
    from wbc_edge.train.count_model import fit_count_model, out_of_fold, write_count_model

    held = out_of_fold(args.run, args.data_root)
    k = len(list((args.run / "folds").glob("fold*")))
    source = (
        f"out-of-fold predictions of {k} grouped folds of {args.data_root.name} "
        f"({len(held.labels)} images of {len(set(held.groups))} source cells), "
        "light pooled per fold"
    )
    model, stats = fit_count_model(held, source)
    target = args.bundle or args.run / "folds" / "fold0"
    path = write_count_model(target, model, stats)
    print(
        f"wrote {path}: temperature {model.temperature:g} (NLL {stats['nll_before']} -> "
        f"{stats['nll_after']}, ECE {stats['ece_before']} -> {stats['ece_after']}), confusion "
        f"of {stats['images']} out-of-fold images; run wbc-convert for parity"
    )
    return 0


COUNT = limits.int_in(1, 10**9)
# adapt's numbers: (AdaptConfig field, type, help); the default is the field's.
ADAPT_NUMBERS = (
    ("epochs", COUNT, "(default %(default)s)"),
    ("steps_per_epoch", COUNT, "(default %(default)s)"),
    ("batch_size", COUNT, "(default %(default)s)"),
    ("lr", float, "(default %(default)g)"),
    ("lab_share", limits.float_in(0.0, 1.0), "of each batch, lab cells (default %(default)g)"),
    ("replay", COUNT, "original training images mixed in (default %(default)s)"),
    ("original_images", COUNT, "original held-out images the forgetting check uses (at most)"),
    ("min_learn", COUNT, "reviewed cells every class needs to learn from (default %(default)s)"),
    ("min_test", COUNT, "held-out cells every class needs (default %(default)s)"),
    ("accuracy_tolerance", float, "largest loss of original accuracy (default %(default)g)"),
    ("recall_tolerance", float, "largest loss of any original recall (default %(default)g)"),
    ("seed", int, "(default %(default)s)"),
)


def adapt_arguments(p: argparse.ArgumentParser) -> None:
    from wbc_edge.train.adapt import AdaptConfig

    p.add_argument("bundle", type=Path, help="the parent bundle (holds model.keras)")
    p.add_argument("reports", type=Path, nargs="+", help="reviewed `wbc-edge --report` folders")
    p.add_argument("--out", type=Path, required=True, help="the child bundle folder")
    p.add_argument("--name", help="child bundle name (default: the --out folder's name)")
    p.add_argument(
        "--data-root", type=Path, help="the parent's training data (default: the root it records)"
    )
    for name, kind, text in ADAPT_NUMBERS:
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=kind, default=getattr(AdaptConfig, name), help=text)
    p.add_argument("--augment", help="default: the parent's training augmentation")
    p.add_argument("--cache-dir", type=Path, help="prepared-image cache (default ~/.cache)")


def adapt_command(args: argparse.Namespace) -> int:
    """Fine-tune BUNDLE's model on a lab's reviewed report folders (mixed with its original
    training data), prove it on whole held-out runs and the original held-out cells, and write
    the child bundle. Exit 0: the child wins; 1: it does not (written, never to be installed)."""
    from wbc_edge.train.adapt import AdaptConfig

    if not 0 < args.lab_share < 1:
        raise WbcError("--lab-share must lie between 0 and 1")
    with native_stderr():
        import tensorflow  # noqa: F401
    from wbc_edge.train.adapt import adapt_bundle
    from wbc_edge.train.dataset import default_cache_dir

    cfg = AdaptConfig(
        **{name: getattr(args, name) for name, _, _ in ADAPT_NUMBERS},
        augment=args.augment,
        cache_dir=args.cache_dir or default_cache_dir(),
    )
    result = adapt_bundle(args.bundle, args.reports, args.out, cfg, args.data_root, args.name)
    print(format_adaptation(result.record))
    print(f"wrote {args.out}/bundle.json")
    return 0 if result.verdict.wins else 1


def format_adaptation(record: dict) -> str:
    """The parent against the child, per class, as the terminal shows it."""
    ev, cells = record["evaluation"], record["cells"]
    classes = list(cells["learn"])
    lines = [
        f"lab cells: learned from {sum(cells['learn'].values())}, held out "
        f"{sum(cells['held_out'].values())} (whole {cells['held_out_by']}s: "
        f"{', '.join(cells['held_out_units'])})",
        f"{'':<26}{'accuracy':>9}" + "".join(f"{c[:10]:>11}" for c in classes) + f"{'diff.err':>9}",
    ]
    for where in ("lab", "original"):
        for who in ("parent", "child"):
            s = ev[who][where]
            err = s.get("differential_error_corrected_mean", s["differential_error_raw_mean"])
            rec = "".join(
                f"{'-' if s['recall'][c] is None else format(s['recall'][c], '.3f'):>11}"
                for c in classes
            )
            label = f"{who} on {where} held-out"
            lines.append(f"{label:<26}{s['accuracy']:>9.3f}{rec}{err:>8.2f}pp")
    v = record["verdict"]
    lines.append(("WINS: " if v["wins"] else "DOES NOT WIN: ") + "; ".join(v["reasons"]))
    t = record["timing"]
    lines.append(
        f"fine-tuning: {t['fine_tune_cpu_s']:.0f} CPU s ({t['fine_tune_wall_s']:.0f} s wall); "
        f"count model: {record['count_model']}"
    )
    return "\n".join(lines)


def ship_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("child", type=Path, help="a bundle written by wbc-train adapt")
    p.add_argument("--store", type=Path, help="the device's model store (as wbc-edge models)")
    p.add_argument("--data-root", type=Path, help="the training data, as wbc-convert takes it")
    p.add_argument("--artifacts", help="as wbc-convert --artifacts (default: --int8)")


def ship_command(args: argparse.Namespace) -> int:
    """Convert an adapted CHILD with parity (INT8 calibrated on the lab's cells too), verify it
    on this device and install it as the model in use (the previous one kept for rollback).
    Refuses a child that did not beat its parent."""
    from wbc_edge.train.ship import ship

    return ship(args.child, args.store, args.data_root, args.artifacts)


def _command(name: str, text: str, add_arguments, run, epilog: str | None = None) -> Command:
    """A subcommand described by its run function's docstring."""
    return Command(name, text, add_arguments, run, " ".join((run.__doc__ or "").split()), epilog)


COMMANDS = (
    _command(
        "train", "train a zoo model into a bundle (the command without a name)",
        train_arguments, train_command,
        "Every preset value can be overridden by its flag. See docs/training.md.",
    ),
    _command(
        "groups", "recover the source cells behind augmented copies (a groups CSV)",
        groups_arguments, groups_command,
    ),
    _command("split", "write a split manifest, print its counts", split_arguments, split_command),
    _command("card", "write a bundle's MODEL_CARD.md", card_arguments, card_command),
    _command(
        "colour-step", "add the colour step to a bundle trained without it",
        colour_step_arguments, colour_step_command,
    ),
    _command(
        "count-model", "fit a K-fold run's calibration and confusion matrix into a bundle",
        count_model_arguments, count_model_command,
    ),
    _command(
        "adapt", "fine-tune a bundle on a lab's reviewed cells into a child bundle",
        adapt_arguments, adapt_command,
    ),
    _command(
        "ship", "convert, verify and install an adapted child that beat its parent",
        ship_arguments, ship_command,
    ),
)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
