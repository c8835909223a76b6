"""`convert_bundle`: table-driven conversion of a bundle plus the parity gate, as one function.

bundle → plan (checked against `convert.formats.FORMATS`) → calibration and parity images
(from the training data; without it, from the bundle's calibration pack and self-test sample,
`convert.bundle_alone`) → one backend module per format writes each artifact → parity through
the runtime interface → artifacts registered with status ok/failed (every file hashed, the
float model's output kind declared), reports written, `bundle.parity` filled in, the self-test
sample and the calibration pack written (from the data only).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_edge.convert import (
    bundle_alone,
    calibration,
    calibration_pack,
    lab_calibration,
    parity,
    report,
    selftest,
)
from wbc_edge.convert.formats import INT8_FORMATS, ConvertError, Job, plan
from wbc_edge.convert.held_out import split_by_cell
from wbc_edge.convert.quality_floor import quality_record
from wbc_edge.convert.source import ConvertContext, HeldOut, SourceModel
from wbc_edge.core import safe_io
from wbc_edge.core.bundle import Bundle, load_bundle, save_bundle
from wbc_edge.core.errors import DataError, first_line
from wbc_edge.core.text_table import aligned_table

log = logging.getLogger(__name__)


@dataclass
class ConvertConfig:
    """What to convert and how strictly to check it (the CLI's flags, as a dataclass)."""

    formats: list[str] = field(default_factory=lambda: list(INT8_FORMATS))
    precisions: list[str] = field(default_factory=lambda: ["int8"])
    only: list[str] | None = None  # keep just these FORMAT-PRECISION jobs of the plan
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    calib_images: int = calibration.DEFAULT_CALIB_IMAGES
    calib_data: Path | None = None
    parity_data: Path | None = None
    data_root: Path | None = None  # where the split manifest's paths are (None: as recorded)
    groups: Path | None = None  # a recovered-groups CSV covering the parity images
    parity_images: int | None = None  # None: the whole held-out set
    thresholds: parity.Thresholds = field(default_factory=parity.Thresholds)
    accuracy_control: bool = False  # --max-drop given → NNCF accuracy-controlled INT8
    selftest_images: int = selftest.DEFAULT_SELFTEST_IMAGES  # 0: write no self-test sample
    pack_images: int = calibration_pack.DEFAULT_PACK_IMAGES  # 0: write no calibration pack
    out: Path | None = None  # None: the bundle itself


@dataclass
class ConvertResult:
    bundle: Bundle
    report: dict[str, Any]
    results: list[parity.ArtifactParity]
    failures: dict[str, str]
    notes: list[str]
    reports: list[Path]
    seconds: float

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])

    def table(self) -> str:
        return aligned_table(report.table_rows(self.report, reference_size(self.bundle)))


def convert_bundle(bundle_dir: Path | str, config: ConvertConfig) -> ConvertResult:
    """Convert, check parity, register artifacts and write reports. User errors raise WbcError."""
    start = time.perf_counter()
    bundle = load_bundle(bundle_dir)
    jobs, notes = plan(config.formats, config.precisions, config.options, bundle.root)
    if config.only is not None:
        jobs, notes = [j for j in jobs if j.key in config.only], []
    for note in notes:
        log.info("%s", note)
    if config.out is not None and Path(config.out).resolve() != bundle.root.resolve():
        bundle = copy_bundle(bundle, Path(config.out))
    check_writable(bundle.root)
    source = SourceModel(bundle)
    last_full = _last_full_check(bundle)
    try:
        source.keras_model  # noqa: B018  (load and check classes/input before any work)
        images = _images(bundle, config, jobs)
        calib, held_out = images.calibration, images.held_out
        tuning = None
        if config.accuracy_control and any(j.key == "openvino-int8" for j in jobs):
            tuning, held_out = tuning_split(held_out)
        float_probs = source.predict(held_out.images)
        _declare_float_output(bundle, source)
        ctx = ConvertContext(
            source,
            calib,
            bundle.root,
            tuning,
            config.thresholds.max_drop if config.accuracy_control else None,
        )
        results, failures = _run_jobs(bundle, jobs, ctx, held_out, float_probs, config.thresholds)
        if not images.alone and config.selftest_images:
            selftest.write_selftest(bundle, source, held_out, config.selftest_images)
        from_train_side = calib is not None and config.calib_data is None
        if not images.alone and from_train_side and config.pack_images:
            calibration_pack.write_pack(bundle, calib, config.pack_images)
    finally:
        source.cleanup()
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    quality = quality_record(
        held_out.labels,
        float_probs.argmax(1),
        bundle.classes,
        f"float model ({source.keras_path.name}) on the parity set: {held_out.source}",
        created,
        held_out.selection.training_checked,
    )
    note = None
    if images.alone:
        note = bundle_alone.small_sample_note(held_out, len(bundle.classes), last_full)
    rep = report.report_dict(
        results,
        bundle.classes,
        held_out,
        float_probs,
        calib,
        config.thresholds,
        failures,
        source.keras_path.name,
        quality,
        note,
        None if bundle.count_model is None else bundle.count_model.confusion,
    )
    paths = report.write_reports(
        bundle.root, rep, reference_size(bundle), bundle.preprocessing, images.crops
    )
    bundle.parity = report.summary_dict(rep, created)
    if not images.alone or not bundle.quality:  # a self-test run keeps the full set's record
        bundle.quality = quality
    if not quality["passed"]:
        log.warning(
            "QUALITY FLOOR NOT MET: the float model is barely better than chance on the parity "
            "set (%s); parity only compares artifacts with it, so a PASS below says nothing "
            "about classifying cells",
            quality["reason"],
        )
    save_bundle(bundle)
    seconds = time.perf_counter() - start
    return ConvertResult(bundle, rep, results, failures, notes, paths, seconds)


@dataclass
class Images:
    """The images a conversion calibrates on and checks with; `alone`: from the bundle's
    calibration pack and self-test sample (`crops`: their RGB crops, for thumbnails)."""

    calibration: calibration.Calibration | None
    held_out: HeldOut
    alone: bool = False
    crops: dict[str, Any] | None = None


def _images(bundle: Bundle, config: ConvertConfig, jobs: list[Job]) -> Images:
    """Calibration and parity images: from the training data (or the folders given), else from
    what the bundle carries."""
    needs_calib = config.calib_data is not None or any(j.precision == "int8" for j in jobs)
    given = any(p is not None for p in (config.data_root, config.calib_data, config.parity_data))
    if bundle_alone.bundle_alone(bundle, given, needs_calib):
        if config.accuracy_control and any(j.key == "openvino-int8" for j in jobs):
            raise ConvertError(
                "--max-drop tunes NNCF's accuracy control on held-out images split by source "
                "cell, which the self-test sample does not record; pass --data-root",
                bundle.path,
            )
        calib = calibration_pack.load_pack(bundle, config.calib_images) if needs_calib else None
        held_out, crops = bundle_alone.selftest_parity_set(bundle, config.parity_images)
        return Images(calib, held_out, alone=True, crops=crops)
    calib = None
    if needs_calib:
        calib = calibration.calibration_set(
            bundle, config.calib_images, config.calib_data, data_root=config.data_root
        )
    held_out = calibration.parity_set(
        bundle, config.parity_data, config.parity_images, calib, config.data_root, config.groups
    )
    if calib is not None and config.calib_data is None:
        calib = lab_calibration.with_lab_cells(bundle, calib)  # an adapted bundle's lab cells
    return Images(calib, held_out)


def _last_full_check(bundle: Bundle) -> int | None:
    """How many images the bundle's last parity check ran on, unless that was a self-test run."""
    ps = bundle.parity.get("parity_set") or {}
    n, source = ps.get("n"), str(ps.get("source") or "")
    return n if isinstance(n, int) and "self-test sample" not in source else None


def tuning_split(held_out: HeldOut) -> tuple[HeldOut, HeldOut]:
    """(NNCF's validation set, the parity gate's set): disjoint by source cell."""
    tune, gate = split_by_cell(held_out.labels, held_out.groups)
    if not len(tune) or not len(gate):
        raise DataError(
            f"--max-drop tunes NNCF's accuracy control on part of the held-out set and gates "
            f"on the rest, but its {len(held_out.files)} images come from one source cell",
            held_out.root,
        )
    tuning, gated = held_out.subset(tune), held_out.subset(gate)
    cells = len(set(tuning.groups))
    held_out.selection.tuning = {
        "n": len(tune),
        "cells": cells,
        "purpose": "NNCF accuracy control validation (openvino-int8), disjoint by source cell "
        "from the parity set",
        "files": tuning.files,
    }
    log.info(
        "accuracy control validates on %d images (%d source cells); parity gates on the other %d",
        len(tune),
        cells,
        len(gate),
    )
    return tuning, gated


def _run_jobs(
    bundle: Bundle,
    jobs: list[Job],
    ctx: ConvertContext,
    held_out: calibration.HeldOut,
    float_probs: Any,
    thresholds: parity.Thresholds,
) -> tuple[list[parity.ArtifactParity], dict[str, str]]:
    results, failures = [], {}
    for job in jobs:
        t0 = time.perf_counter()
        try:
            options = job.format.converter()(job, ctx)
            art = bundle.add_artifact(
                job.format.name,
                job.precision,
                job.file,
                job.extra_files,
                ctx.source.output_kind,
                **options,
            )
        except Exception as exc:  # one backend failing must not lose the others' results
            failures[job.key] = f"conversion failed: {first_line(exc, 300)}"
            log.error("%s: %s", job.key, failures[job.key])
            continue
        try:
            result = parity.check_artifact(bundle, art, held_out, float_probs, thresholds)
        except Exception as exc:
            art.status = "failed"
            failures[job.key] = f"parity run failed: {first_line(exc, 300)}"
            log.error("%s: %s", job.key, failures[job.key])
            continue
        art.status = result.status
        results.append(result)
        log.info(
            "%s: %s in %.1f s, agreement %.4f, drop %+.2f points",
            job.key,
            result.status,
            time.perf_counter() - t0,
            result.agreement,
            100 * result.drop,
        )
    return results, failures


def add_selftest(bundle_dir: Path | str, config: ConvertConfig) -> Path:
    """`--selftest-only`: write the self-test sample into a bundle already converted, from
    `selftest_images` held-out images (classes and source cells interleaved)."""
    bundle = load_bundle(bundle_dir)
    check_writable(bundle.root)
    n = config.selftest_images or selftest.DEFAULT_SELFTEST_IMAGES
    source = SourceModel(bundle)
    try:
        held_out = calibration.parity_set(
            bundle, config.parity_data, n, None, config.data_root, config.groups
        )
        _declare_float_output(bundle, source)
        selftest.write_selftest(bundle, source, held_out, n)
    finally:
        source.cleanup()
    save_bundle(bundle)
    return bundle.root / bundle.selftest.file


def add_calibration_pack(bundle_dir: Path | str, config: ConvertConfig) -> list[Path]:
    """`--calibration-pack-only`: write the calibration pack (`pack_images` training-side
    crops) into a bundle without converting anything, and the self-test sample too when the
    bundle has none: afterwards `wbc-convert BUNDLE --int8` runs without the training data."""
    bundle = load_bundle(bundle_dir)
    check_writable(bundle.root)
    n = config.pack_images or calibration_pack.DEFAULT_PACK_IMAGES
    calib = calibration.calibration_set(bundle, n, None, data_root=config.data_root)
    written = [bundle.root / calibration_pack.write_pack(bundle, calib, n).file]
    if bundle.selftest is None:
        source = SourceModel(bundle)
        m = config.selftest_images or selftest.DEFAULT_SELFTEST_IMAGES
        try:
            held_out = calibration.parity_set(
                bundle, config.parity_data, m, calib, config.data_root, config.groups
            )
            _declare_float_output(bundle, source)
            written.append(bundle.root / selftest.write_selftest(bundle, source, held_out, m).file)
        finally:
            source.cleanup()
    save_bundle(bundle)
    return written


def _declare_float_output(bundle: Bundle, source: SourceModel) -> None:
    """The Keras artifact declares its output kind too (an old bundle's is decided here)."""
    art = bundle.find("keras")
    if art is not None and art.output_kind is None:
        art.output_kind = source.output_kind


def copy_bundle(bundle: Bundle, out: Path) -> Bundle:
    """A copy of the bundle's files in `out` (for --out), re-read from there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        for item in bundle.root.iterdir():
            if item.name.startswith("."):
                continue
            target = out / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copy2(item, target)
    except OSError as exc:
        raise ConvertError(f"cannot write the output bundle here ({exc.strerror})", out) from None
    return load_bundle(out)


def check_writable(folder: Path) -> None:
    """One line, before any work, if the output folder cannot be written."""
    safe_io.check_writable(folder, "output folder is not writable", ConvertError)


def reference_size(bundle: Bundle) -> tuple[str, int] | None:
    """What sizes are compared with: the fp32 TFLite file if there is one, else the Keras file."""
    for fmt, precision in (("tflite", "fp32"), ("keras", None)):
        art = bundle.find(fmt, precision)
        if art is not None:
            return art.file, art.disk_bytes
    return None
