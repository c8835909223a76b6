"""`wbc-convert`: add quantized artifacts and a parity report to a bundle.

Exit status: 0 every artifact passed parity; 1 one failed parity or conversion (marked failed
in bundle.json); 2 a user error (one line naming the file).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wbc_edge.convert.calibration import DEFAULT_CALIB_IMAGES
from wbc_edge.convert.calibration_pack import DEFAULT_PACK_IMAGES, MAX_PACK_IMAGES
from wbc_edge.convert.formats import (
    FORMAT_NAMES,
    FORMATS,
    INT8_FORMATS,
    ConvertError,
    parse_option,
)
from wbc_edge.convert.parity import Thresholds
from wbc_edge.convert.selftest import DEFAULT_SELFTEST_IMAGES, MAX_SELFTEST_IMAGES
from wbc_edge.core.cli_support import Command, build_parser, main_of
from wbc_edge.core.limits import float_in
from wbc_edge.core.vocab import PRECISIONS, artifact_key

PROG = "wbc-convert"


def parser() -> argparse.ArgumentParser:
    rows = "; ".join(
        f"{f.name}: {','.join(f.precisions)}"
        + (f" [{', '.join(o.name for o in f.options)}]" if f.options else "")
        for f in FORMATS
    )
    description = (
        "Convert a bundle's Keras model to TFLite / ONNX / OpenVINO and check each "
        f"artifact's parity with the float model. Formats: {rows}."
    )
    return build_parser(PROG, description, Command(PROG, description, add_arguments, run))


# The folders and files the images come from: (flag, help), each a Path.
IMAGE_PATHS = (
    (
        "--data-root",
        "the folder the bundle's split manifest's paths are relative to, where it is on "
        "this machine (default: the data root the bundle records)",
    ),
    (
        "--groups",
        "a recovered-groups CSV (path,class,group; `wbc-train groups` over the training and "
        "parity images together): parity drops images of the training side's source cells by it",
    ),
    ("--calib-data", "class-folder tree to calibrate on"),
    (
        "--parity-data",
        "class-folder tree to check parity on; images whose source cell the model trained "
        "or calibrated on are dropped, with a count",
    ),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="bundle folder (holds bundle.json)")
    what = p.add_argument_group("what to convert (default: --int8)")
    what.add_argument("--int8", action="store_true", help="INT8 TFLite + INT8 OpenVINO")
    what.add_argument("--all", action="store_true", help="every format at every precision")
    what.add_argument("--formats", help=f"comma-separated: {','.join(FORMAT_NAMES)}")
    what.add_argument("--precisions", help=f"comma-separated: {','.join(PRECISIONS)}")
    what.add_argument(
        "--artifacts",
        help="exactly these FORMAT-PRECISION artifacts, comma-separated, e.g. "
        "tflite-fp32,tflite-int8,onnx-fp32,openvino-fp16,openvino-int8",
    )
    what.add_argument("--io-dtype", help="= --option tflite.io_dtype=… (int8 or uint8)")
    what.add_argument("--opset", help="= --option onnx.opset=…")
    what.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="FORMAT.NAME=VALUE",
        help="a format option from the table, e.g. tflite.io_dtype=uint8 or onnx.opset=13",
    )
    data = p.add_argument_group("images")
    data.add_argument(
        "--calib-images",
        type=int,
        default=DEFAULT_CALIB_IMAGES,
        help=f"representative images for INT8 (default {DEFAULT_CALIB_IMAGES}), stratified over "
        "classes and source cells of the bundle's train side",
    )
    for flag, text in IMAGE_PATHS:
        data.add_argument(flag, type=Path, help=text)
    data.add_argument("--parity-images", type=int, help="at most this many parity images")
    data.add_argument(
        "--selftest-images",
        type=int,
        default=DEFAULT_SELFTEST_IMAGES,
        help="held-out crops stored as selftest.npz for `wbc-edge verify` (default "
        f"{DEFAULT_SELFTEST_IMAGES}; 0: none)",
    )
    data.add_argument(
        "--selftest-only",
        action="store_true",
        help="convert nothing: only (re)write the self-test sample of a converted bundle",
    )
    data.add_argument(
        "--calibration-pack-images",
        type=int,
        default=DEFAULT_PACK_IMAGES,
        help="training-side crops stored as calibration.npz, so the bundle converts without its "
        f"training data (default {DEFAULT_PACK_IMAGES}; 0: none)",
    )
    data.add_argument(
        "--calibration-pack-only",
        action="store_true",
        help="convert nothing: (re)write the calibration pack (and the self-test sample if the "
        "bundle has none), from the training data",
    )
    gate = p.add_argument_group("parity gate")
    gate.add_argument(
        "--min-agreement",
        type=float_in(0.0, 1.0),
        default=Thresholds.min_agreement,
        help=f"top-1 agreement with the float model needed (default {Thresholds.min_agreement})",
    )
    gate.add_argument(
        "--max-drop",
        type=float_in(0.0, 1.0),
        default=None,
        help=f"largest accuracy drop, a fraction (default {Thresholds.max_drop}); given "
        "explicitly, OpenVINO INT8 uses NNCF accuracy control with it",
    )
    gate.add_argument(
        "--max-class-drop",
        type=float_in(0.0, 1.0),
        default=Thresholds.max_class_drop,
        help="largest fall of any one class's recall, a fraction (default "
        f"{Thresholds.max_class_drop})",
    )
    p.add_argument("--out", type=Path, help="write a converted copy here (default: in place)")


def config_from_args(args: argparse.Namespace) -> Any:
    from wbc_edge.convert.pipeline import ConvertConfig

    where = args.bundle
    if args.int8 and (args.all or args.precisions):
        raise ConvertError("--int8 means INT8 only: drop --all/--precisions", where)
    if args.all and (args.formats or args.precisions):
        raise ConvertError(
            "--all means every format and precision: drop --formats/--precisions", where
        )
    formats = _split(args.formats) or list(FORMAT_NAMES if args.all else INT8_FORMATS)
    precisions = _split(args.precisions) or (list(PRECISIONS) if args.all else ["int8"])
    only = None
    if args.artifacts:
        if args.int8 or args.all or args.formats or args.precisions:
            raise ConvertError(
                "--artifacts names the artifacts itself: drop --int8/--all/--formats/--precisions",
                where,
            )
        formats, precisions, only = _artifact_keys(_split(args.artifacts), where)
    options: dict[str, dict[str, Any]] = {}
    pairs = [parse_option(t, where) for t in args.option]
    if args.io_dtype:
        pairs.append(("tflite", "io_dtype", args.io_dtype))
    if args.opset:
        pairs.append(("onnx", "opset", args.opset))
    for fmt, name, value in pairs:
        options.setdefault(fmt, {})[name] = value
    for flag, path, exists, kind in (
        ("--data-root", args.data_root, Path.is_dir, "folder"),
        ("--groups", args.groups, Path.is_file, "file"),
    ):
        if path is not None and not exists(path):
            raise ConvertError(f"{flag}: no such {kind}", path)
    for flag, value in (
        ("--calib-images", args.calib_images),
        ("--parity-images", args.parity_images),
    ):
        if value is not None and value < 1:
            raise ConvertError(f"{flag} must be at least 1, got {value}", where)
    if not 0 <= args.calibration_pack_images <= MAX_PACK_IMAGES:
        raise ConvertError(
            f"--calibration-pack-images must lie in 0..{MAX_PACK_IMAGES}, got "
            f"{args.calibration_pack_images}",
            where,
        )
    if args.calibration_pack_only and (args.calib_data or args.selftest_only):
        raise ConvertError(
            "--calibration-pack-only writes the bundle's own training-side crops: drop "
            "--calib-data/--selftest-only",
            where,
        )
    if not 0 <= args.selftest_images <= MAX_SELFTEST_IMAGES:
        raise ConvertError(
            f"--selftest-images must lie in 0..{MAX_SELFTEST_IMAGES}, got {args.selftest_images}",
            where,
        )
    max_drop = Thresholds.max_drop if args.max_drop is None else args.max_drop
    return ConvertConfig(
        formats=formats,
        precisions=precisions,
        only=only,
        options=options,
        calib_images=args.calib_images,
        calib_data=args.calib_data,
        parity_data=args.parity_data,
        data_root=args.data_root,
        groups=args.groups,
        parity_images=args.parity_images,
        thresholds=Thresholds(args.min_agreement, max_drop, args.max_class_drop),
        accuracy_control=args.max_drop is not None,
        out=args.out,
        selftest_images=args.selftest_images,
        pack_images=args.calibration_pack_images,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from wbc_edge.convert.pipeline import add_calibration_pack, add_selftest, convert_bundle

    if args.selftest_only:
        print(f"wrote {add_selftest(args.bundle, config)}")
        return 0
    if args.calibration_pack_only:
        print("wrote " + ", ".join(str(p) for p in add_calibration_pack(args.bundle, config)))
        return 0
    result = convert_bundle(args.bundle, config)
    print(result.table())
    for note in result.notes:
        print(f"note: {note}")
    ps = result.report["parity_set"]
    checked = ps["selection"]["training_checked"]
    held_out = "held-out" if checked else "parity (NOT checked against training)"
    if ps.get("note"):
        held_out = "held-out self-test"
    cal = result.report["calibration"]
    print(f"calibrated on: {cal['n']} images, {cal['source']}" if cal else "calibrated on: -")
    print(f"parity set: {ps['chosen']}")
    if ps.get("note"):
        print(f"note: {ps['note']}")
    print(
        f"{'PASS' if result.passed else 'FAIL'}: {len(result.results)} artifact(s) checked on "
        f"{ps['n']} {held_out} images in {result.seconds:.0f} s; "
        f"reports: {', '.join(str(p) for p in result.reports)}"
    )
    if not result.bundle.quality["passed"]:
        print(f"WARNING: quality floor not met: {result.bundle.quality['reason']}")
    return 0 if result.passed else 1


def _artifact_keys(keys: list[str], where: Path) -> tuple[list[str], list[str], list[str]]:
    """FORMAT-PRECISION keys → (formats, precisions, keys), each checked against the table."""
    formats: list[str] = []
    precisions: list[str] = []
    for key in keys:
        fmt, _, precision = key.rpartition("-")
        row = next((f for f in FORMATS if f.name == fmt), None)
        if row is None or precision not in row.precisions:
            offered = ", ".join(artifact_key(f.name, p) for f in FORMATS for p in f.precisions)
            raise ConvertError(f"unknown artifact {key!r} (artifacts: {offered})", where)
        formats += [fmt] if fmt not in formats else []
        precisions += [precision] if precision not in precisions else []
    return formats, precisions, keys


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    return main_of(PROG, parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
