"""`convert_bundle`: table-driven conversion of a bundle plus the parity gate, as one function.

bundle → plan (checked against `convert.formats.FORMATS`) → calibration and parity images →
one backend module per format writes each artifact → parity through the runtime interface →
artifacts registered with status ok/failed, reports written, `bundle.parity` filled in.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert import calibration, parity, report
from convert.formats import ConvertError, Job, plan
from convert.source import ConvertContext, SourceModel
from edge_app.bundle import Bundle, load_bundle, save_bundle
from edge_app.errors import first_line

log = logging.getLogger(__name__)


@dataclass
class ConvertConfig:
    """What to convert and how strictly to check it (the CLI's flags, as a dataclass)."""

    formats: list[str] = field(default_factory=lambda: ["tflite", "openvino"])
    precisions: list[str] = field(default_factory=lambda: ["int8"])
    only: list[str] | None = None  # keep just these FORMAT-PRECISION jobs of the plan
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    calib_images: int = calibration.DEFAULT_CALIB_IMAGES
    calib_data: Path | None = None
    parity_data: Path | None = None
    parity_images: int | None = None  # None: the whole held-out set
    thresholds: parity.Thresholds = field(default_factory=parity.Thresholds)
    accuracy_control: bool = False  # --max-drop given → NNCF accuracy-controlled INT8
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
        return report.format_table(report.table_rows(self.report, reference_size(self.bundle)))


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
    try:
        source.keras_model  # noqa: B018  (load and check classes/input before any work)
        calib = None
        if config.calib_data is not None or any(j.precision == "int8" for j in jobs):
            calib = calibration.calibration_set(bundle, config.calib_images, config.calib_data)
        held_out = calibration.parity_set(bundle, config.parity_data, config.parity_images)
        float_probs = source.predict(held_out.images)
        ctx = ConvertContext(
            source,
            calib,
            bundle.root,
            held_out,
            config.thresholds.max_drop if config.accuracy_control else None,
        )
        results, failures = _run_jobs(bundle, jobs, ctx, held_out, float_probs, config.thresholds)
    finally:
        source.cleanup()
    rep = report.report_dict(
        results,
        bundle.classes,
        held_out,
        float_probs,
        calib,
        config.thresholds,
        failures,
        source.keras_path.name,
    )
    paths = report.write_reports(bundle.root, rep, reference_size(bundle), bundle.preprocessing)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    bundle.parity = report.summary_dict(rep, created)
    save_bundle(bundle)
    seconds = time.perf_counter() - start
    return ConvertResult(bundle, rep, results, failures, notes, paths, seconds)


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
            art = bundle.add_artifact(job.format.name, job.precision, job.file, **options)
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
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".wbc-convert-")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise ConvertError(f"output folder is not writable ({exc.strerror})", folder) from None


def reference_size(bundle: Bundle) -> tuple[str, int] | None:
    """What sizes are compared with: the fp32 TFLite file if there is one, else the Keras file."""
    for fmt, precision in (("tflite", "fp32"), ("keras", None)):
        art = bundle.find(fmt, precision)
        if art is not None:
            return art.file, art.disk_bytes
    return None
