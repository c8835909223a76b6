"""Benchmark a converted bundle's artifacts on this CPU: size, ms/image, agreement.

    python benchmarks/convert_bench.py models/custom-cnn-grouped [--images 64] [--threads 2]

Every artifact the bundle lists (in the order of `convert.formats.FORMATS`) runs through the
device's runtime interface (`core.runtime.open_runtime`) on the same real preprocessed
images (the bundle's held-out side, or --data DIR), one image per call as the device does.
Printed as one table: size, MACs per image (from each artifact's graph), p50 ms/image, top-1
agreement with the float Keras model measured here, and the ratios against the same format's
fp32 artifact measured in this same run. The timing, the MACs and the CPU line come from
`edge_app.bench` (`wbc-edge bench`), so the two benchmarks measure the same way; this one adds
what needs TensorFlow (the Keras reference and agreement), `wbc-edge bench` the whole pipeline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wbc_edge.convert.calibration import parity_set
from wbc_edge.convert.formats import FORMATS
from wbc_edge.convert.parity import open_runtime, predict_all
from wbc_edge.convert.source import SourceModel
from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.cpu import usable_cores
from wbc_edge.core.text_table import aligned_table
from wbc_edge.edge_app.bench import cpu_description, per_image_ms
from wbc_edge.edge_app.macs import artifact_macs


def bench(
    bundle_dir: Path, n_images: int, data: Path | None, threads: int | None
) -> list[list[str]]:
    bundle = load_bundle(bundle_dir)
    held_out = parity_set(bundle, data, limit=n_images)
    images = held_out.images
    source = SourceModel(bundle)
    try:
        float_pred = source.predict(images).argmax(1)
        keras_ms = per_image_ms(lambda x: source.keras_model(x, training=False), images)
    finally:
        source.cleanup()
    keras_art = bundle.find("keras")
    rows = [
        [
            "artifact",
            "size",
            "MMAC/image",
            "ms/image p50",
            "agreement",
            "size vs fp32",
            "speed vs fp32",
            "ran as",
        ]
    ]
    rows.append(
        [
            "keras-fp32 (float ref.)",
            _kib(keras_art.size_bytes) if keras_art else "-",
            "-",
            f"{keras_ms:.2f}",
            "1.0000",
            "-",
            "-",
            "keras",
        ]
    )
    for row in FORMATS:
        base: tuple[int, float] | None = None
        for precision in row.precisions:
            art = bundle.find(row.name, precision)
            if art is None:
                continue
            runtime = open_runtime(bundle, art, threads)
            ms = per_image_ms(runtime.predict, images)
            macs = artifact_macs(runtime.path, art.format)
            agreement = float(np.mean(predict_all(runtime, images).argmax(1) == float_pred))
            size = art.disk_bytes
            is_base = precision == "fp32"
            if is_base:
                base = (size, ms)
            ran = getattr(runtime, "inference_precision", "")
            rows.append(
                [
                    art.key,
                    _kib(size),
                    f"{macs / 1e6:.1f}" if macs else "-",
                    f"{ms:.2f}",
                    f"{agreement:.4f}",
                    _ratio(base and base[0], size, is_base, "smaller"),
                    _ratio(base and base[1], ms, is_base, "faster"),
                    f"{getattr(runtime, 'name', '')} {ran}".strip(),
                ]
            )
    return rows


def _ratio(base: float | None, value: float, is_base: bool, word: str) -> str:
    """'3.85x smaller' against the format's fp32 row; '(ref.)' on that row; '-' without one."""
    if is_base:
        return "(ref.)"
    return f"{base / value:.2f}x {word}" if base else "-"


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--images", type=int, default=64, help="held-out images to time and compare")
    p.add_argument("--data", type=Path, help="class-folder tree instead of the held-out side")
    p.add_argument(
        "--threads", type=int, help="runtime threads (default: the cores this process may use)"
    )
    p.add_argument("--out", type=Path, help="also write the table to this text file")
    args = p.parse_args()
    rows = bench(args.bundle, args.images, args.data, args.threads)
    text = "\n".join([
        aligned_table(rows),
        f"({args.images} images, batch 1, {_cpu()}, {args.threads or 'default'} threads; ratios "
        "against the same format's fp32 artifact measured in this run)",
    ])  # fmt: skip
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def _cpu() -> str:
    """The CPU, its SIMD level and the cores this process may use, for the record."""
    return f"{cpu_description()}, {usable_cores()[1]}"


if __name__ == "__main__":
    raise SystemExit(main())
