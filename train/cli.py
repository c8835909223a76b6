"""`wbc-train`: recover source cells, write splits, and (training issue) train models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_app.cli_support import not_yet_available, run_cli
from edge_app.errors import DataError
from train import splits
from train.cell_groups import resolve_groups
from train.data import list_images

PROG = "wbc-train"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"groups": groups_command, "split": split_command}
    if argv and argv[0] in commands:
        return run_cli(f"{PROG} {argv[0]}", lambda: commands[argv[0]](argv[1:]))
    return run_cli(PROG, lambda: not_yet_available(PROG, "training"))


def groups_command(argv: list[str]) -> int:
    """Recover source cells from the pixels and write path,class,group."""
    p = argparse.ArgumentParser(prog=f"{PROG} groups", description=groups_command.__doc__)
    p.add_argument("data_root", type=Path, help="folder of class folders (e.g. Kaggle TRAIN)")
    p.add_argument("--out", type=Path, default=Path("groups.csv"))
    p.add_argument("--montage", type=Path, default=None, help="PNG of a few recovered groups")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    from train import grouping

    images = list_images(args.data_root)
    paths = [images.root / r.path for r in images.records]
    labels = [r.label for r in images.records]
    expected = grouping.expected_k_from_names(paths, labels)
    result = grouping.recover_groups(paths, labels, expected_k=expected, workers=args.workers)
    grouping.write_groups_csv(args.out, images.root, paths, labels, result.groups)
    if args.montage:
        grouping.write_montage(args.montage, images.root, paths, result.groups)
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


def split_command(argv: list[str]) -> int:
    """Write a split manifest (path,class,group,side) and print counts per class and side."""
    p = argparse.ArgumentParser(prog=f"{PROG} split", description=split_command.__doc__)
    p.add_argument("data_root", type=Path)
    p.add_argument("--kind", choices=["random", "grouped", "folders", "kfold"], default="grouped")
    p.add_argument("--fractions", default="80/10/10", help="e.g. 80/10/10 or 70/30")
    p.add_argument("--k", type=int, default=5, help="folds for --kind kfold")
    p.add_argument("--grouped", action="store_true", help="K-fold by source cell")
    p.add_argument("--groups", type=Path, default=None, help="groups CSV from `wbc-train groups`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("split.csv"))
    args = p.parse_args(argv)

    images = list_images(args.data_root)
    labels = [r.label for r in images.records]
    groups, origin = resolve_groups(images, args.groups)
    if args.kind == "random":
        sides = splits.stratified_random(labels, splits.parse_fractions(args.fractions), args.seed)
    elif args.kind == "grouped":
        fr = splits.parse_fractions(args.fractions)
        sides = splits.stratified_grouped(labels, groups, fr, args.seed)
    elif args.kind == "folders":
        sides = splits.from_folders(images.records)
    else:
        sides = splits.kfold(labels, args.k, args.seed, groups if args.grouped else None)
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


if __name__ == "__main__":
    raise SystemExit(main())
