"""`wbc-edge bench`: what each stage of the device pipeline costs on this machine, per artifact.

    wbc-edge bench --model BUNDLE_DIR --source SRC [--mode field|cell] [--threads N]
                   [--passes K] [--runtime R] [--precision P]

Every artifact the bundle lists (and this machine can run) goes through the same `Classifier`
the edge app uses, on the same decoded frames, K passes. For each frame the whole pipeline
(find, crop, inference, records: everything but reading and decoding the frame) is timed, and
right after it the bare interpreter (`Runtime.run_model`) on the very same model inputs: that
is the reference, and `pipeline / bare` is measured side by side in this run. The header names
the CPU and its SIMD level, since speed claims only hold for the CPU they came from.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wbc_edge.core.bundle import Artifact, Bundle
from wbc_edge.core.cpu import usable_cores
from wbc_edge.core.errors import WbcError
from wbc_edge.core.runtime import Runtime, open_runtime, runtime_available
from wbc_edge.core.text_table import aligned_table
from wbc_edge.core.vocab import FORMAT_RUNTIMES, PRECISION_ORDER
from wbc_edge.edge_app.classify import Classifier, JsonlWriter, write_frame
from wbc_edge.edge_app.macs import artifact_macs
from wbc_edge.edge_app.scale import CALIBRATION_FRAMES, RECHECK_EVERY

STAGES = ("colour", "scale", "quality", "find", "preprocess", "infer", "measure", "records")
WARMUP_FRAMES = 2
CALIBRATION_CAP = 4 * CALIBRATION_FRAMES  # frames without red cells never calibrate


@dataclass
class Frame:
    name: str
    rgb: np.ndarray
    decode_s: float  # reading and decoding it


@dataclass
class ArtifactBench:
    """Per-frame seconds for one artifact on one runtime."""

    artifact: Artifact
    runtime: str
    ran_as: str
    threads: int | None
    macs: int | None
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    pipeline: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)
    calibration: list[float] = field(default_factory=list)  # the run-scale frames, per frame

    @property
    def label(self) -> str:
        return f"{self.artifact.format} {self.artifact.precision}"

    def ratio(self) -> float:
        """Pipeline p50 over bare interpreter p50 (the same cells; p50s resist a busy CPU)."""
        bare = float(np.median(self.bare)) if self.bare else 0.0
        return float(np.median(self.pipeline)) / bare if bare > 0 else float("nan")

    def fps(self) -> float:
        """Frames per second of read + decode + pipeline, one after the other."""
        total = sum(self.latency)
        return len(self.latency) / total if total > 0 else 0.0


def load_frames(source: str, limit: int | None = None) -> list[Frame]:
    """Decode every readable frame of a source once (image, folder, glob or video)."""
    from wbc_edge.edge_app.sources.files import iter_media

    frames: list[Frame] = []
    it = iter(iter_media(source))
    while limit is None or len(frames) < limit:
        t0 = time.perf_counter()
        item = next(it, None)
        seconds = time.perf_counter() - t0
        if item is None:
            break
        if item.error is None:
            frames.append(Frame(f"{item.source}#{item.frame}", item.rgb, seconds))
    if not frames:
        raise WbcError(f"no readable frame in {source}")
    return frames


def runnable(
    bundle: Bundle, runtime: str = "auto", precision: str | None = None
) -> list[tuple[Artifact, str]]:
    """(artifact, runtime) pairs to benchmark: every installed runtime for every artifact."""
    pairs = []
    for fmt, names in FORMAT_RUNTIMES.items():
        arts = [a for a in bundle.artifacts if a.format == fmt and a.status != "failed"]
        arts.sort(key=lambda a: PRECISION_ORDER.index(a.precision))
        for art in arts:
            if precision is not None and art.precision != precision:
                continue
            for name in names:
                if (runtime in ("auto", name)) and runtime_available(name):
                    pairs.append((art, name))
    return pairs


def bench_artifact(
    rt: Runtime, frames: list[Frame], mode: str, scale: float | None, passes: int
) -> ArtifactBench:
    """Time the pipeline and the bare interpreter, frame by frame, side by side."""
    classifier = Classifier(rt, mode, scale)
    macs = artifact_macs(rt.path, rt.artifact.format)
    result = ArtifactBench(rt.artifact, rt.name, rt.inference_precision, rt.threads, macs)
    inputs = [rt.model_inputs(_batch(classifier, f.rgb)) for f in frames]
    count = classifier.new_count()
    clock = time.perf_counter
    with JsonlWriter(os.devnull) as writer:
        for f, x in zip(frames[:WARMUP_FRAMES], inputs, strict=False):
            classifier.model_inputs(f.rgb)
            for chunk in x:
                rt.run_model(chunk)
        result.calibration = _calibrate(classifier, frames)
        for _ in range(passes):
            for i, (f, x) in enumerate(zip(frames, inputs, strict=True)):
                t0 = clock()
                frame = classifier.classify(f.rgb)
                t1 = clock()
                write_frame(writer, count, f.name, i, frame)
                t2 = clock()
                for chunk in x:
                    rt.run_model(chunk)
                t3 = clock()
                for stage in STAGES[:-1]:
                    result.stages[stage].append(frame.timings[stage])
                result.stages["records"].append(frame.timings["records"] + t2 - t1)
                result.pipeline.append(t2 - t0)
                result.bare.append(t3 - t2)
                result.latency.append(f.decode_s + t2 - t0)
                result.cells.append(len(frame.cells))
    return result


def _calibrate(classifier: Classifier, frames: list[Frame]) -> list[float]:
    """Run frames (cycling) until the run's scale is measured, as the first frames of a run
    are; the seconds each took. The timed passes then show the steady state."""
    seconds = []
    while classifier.run_scale.due() and len(seconds) < CALIBRATION_CAP:
        f = frames[len(seconds) % len(frames)]
        t0 = time.perf_counter()
        classifier.classify(f.rgb)
        seconds.append(time.perf_counter() - t0)
    return seconds


def per_image_ms(predict, images: np.ndarray, repeat: int = 3, warmup: int = 3) -> float:
    """p50 milliseconds of `predict` on one image at a time (each image `repeat` times)."""
    for x in images[:warmup]:
        predict(x[None])
    times = []
    for x in np.repeat(images, repeat, axis=0):
        t0 = time.perf_counter()
        predict(x[None])
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


def _batch(classifier: Classifier, rgb: np.ndarray) -> np.ndarray:
    """The model inputs the classifier makes for one frame (its cells' crops)."""
    return classifier.model_inputs(rgb)


def run_bench(
    bundle: Bundle,
    frames: list[Frame],
    mode: str = "field",
    scale: float | None = None,
    threads: int | None = None,
    passes: int = 5,
    runtime: str = "auto",
    precision: str | None = None,
) -> list[ArtifactBench]:
    """Every runnable artifact, one after the other, on the same frames."""
    pairs = runnable(bundle, runtime, precision)
    if not pairs:
        raise WbcError(
            f"no artifact of {bundle.path} can run here (runtime {runtime}"
            + (f", precision {precision}" if precision else "")
            + "); see wbc-edge classify's --runtime"
        )
    results = []
    for art, name in pairs:
        with open_runtime(bundle, art, name, threads=threads) as rt:
            results.append(bench_artifact(rt, frames, mode, scale, passes))
    return results


# ---------------------------------------------------------------------------- the table


def format_report(
    bundle: Bundle, source: str, frames: list[Frame], results: list[ArtifactBench], mode: str
) -> str:
    """Header (CPU, SIMD, threads, load), the decode line and one row per artifact."""
    passes = len(results[0].pipeline) // max(1, len(frames)) if results else 0
    threads = results[0].threads if results else None
    _, why = usable_cores()
    decode = _ms([f.decode_s for f in frames])
    lines = [
        f"wbc-edge bench: {bundle.name} ({bundle.path}) on {source}: {len(frames)} frames x "
        f"{passes} passes, {mode} mode, inference threads: {threads or 'default'}",
        f"CPU: {cpu_description()}; {why}; load average {_load()}",
        f"read + decode a frame: {decode} ms p50/p95 (not part of the pipeline)",
        _calibration_line(results),
        "",
    ]
    header = ["artifact", "runtime", "MMAC/cell", "cells/frame"]
    header += [f"{s} ms" for s in STAGES]
    header += ["pipeline ms", "bare interp. ms", "pipeline/bare", "frames/s", "latency ms"]
    rows = [header]
    for r in results:
        rows.append(
            [
                r.label,
                f"{r.runtime} ({r.ran_as})",
                f"{r.macs / 1e6:.1f}" if r.macs else "-",
                f"{np.mean(r.cells):.2f}",
                *(_ms(r.stages[s]) for s in STAGES),
                _ms(r.pipeline),
                _ms(r.bare),
                f"{r.ratio():.2f}x",
                f"{r.fps():.1f}",
                _ms(r.latency),
            ]
        )
    lines.append(aligned_table(rows, right_from=2))
    lines += [
        "",
        "ms columns: p50/p95 per frame. pipeline = find + crop (preprocess) + inference + records "
        "(everything but read/decode); bare interp. = the backend call alone on the same model "
        "inputs, timed right after it (the reference); pipeline/bare = ratio of their p50s. "
        "latency = read + decode + pipeline (capture to result); frames/s = 1 / that, in one "
        "thread.",
    ]
    lines += _vs_fp32(results)
    return "\n".join(lines)


def _calibration_line(results: list[ArtifactBench]) -> str:
    """The once-per-run cost of measuring the scale, outside the timed passes."""
    cal = results[0].calibration if results else []
    if not cal:
        return "run scale: given (not measured from the frames)"
    return (
        f"run scale: measured on the run's first {len(cal)} frames, {_ms(cal)} ms p50/p95 "
        f"each (once per run, before the timed passes; re-checked every {RECHECK_EVERY}th frame)"
    )


def _vs_fp32(results: list[ArtifactBench]) -> list[str]:
    """Bare-interpreter speed of each artifact against its format's fp32, same runtime."""
    out = []
    for r in results:
        base = next(
            (
                b
                for b in results
                if b.artifact.format == r.artifact.format
                and b.runtime == r.runtime
                and b.artifact.precision == "fp32"
            ),
            None,
        )
        if base is None or base is r or not r.bare or not base.bare:
            continue
        speed = np.median(base.bare) / max(np.median(r.bare), 1e-12)
        out.append(f"{r.label} on {r.runtime}: {speed:.2f}x the speed of {base.label} (bare, p50)")
    return ["", *out] if out else []


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p95 = np.percentile(np.asarray(values) * 1000.0, [50, 95])
    return f"{p50:.2f}/{p95:.2f}"


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------- the CPU


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`Intel(R) Xeon(R) ... (x86_64), SIMD AVX-512 (VNNI, BF16)`: the name and SIMD level."""
    info: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    name = info.get("model name") or _ARM_PARTS.get(info.get("cpu part", ""), "")
    name = name or platform.processor() or "unknown CPU"
    if info.get("model") and not info.get("model name"):  # ARM: Raspberry Pi 4 Model B Rev 1.4
        name += f", {info['model']}"
    flags = set((info.get("flags") or info.get("features") or "").split())
    return f"{name} ({platform.machine()}), SIMD {simd_level(flags)}"


_ARM_PARTS = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76"}  # Pi 3, 4, 5


def simd_level(flags: set[str]) -> str:
    """The widest vector extension in /proc/cpuinfo flags (x86) or features (ARM)."""
    if "avx512f" in flags:
        extras = [
            label
            for flag, label in (
                ("avx512_vnni", "VNNI"),
                ("avx512_bf16", "BF16"),
                ("avx512_fp16", "FP16"),
                ("amx_int8", "AMX-INT8"),
            )
            if flag in flags
        ]
        return "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
    if "avx2" in flags:
        return "AVX2" + (" (AVX-VNNI)" if "avx_vnni" in flags else "")
    if "asimd" in flags:
        extras = [
            label
            for flag, label in (("asimddp", "dot product"), ("asimdhp", "fp16"), ("i8mm", "i8mm"))
            if flag in flags
        ]
        return "NEON" + (f" ({', '.join(extras)})" if extras else "")
    for flag, label in (("avx", "AVX"), ("sse4_2", "SSE4.2"), ("neon", "NEON")):
        if flag in flags:
            return label
    return "unknown"
