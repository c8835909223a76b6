"""Upgrade a schema-1 bundle to schema 2 in place, without retraining or data.

    python tools/upgrade_bundle.py models/default [models/other ...]

Loading already moves an OpenVINO artifact's `weights_*` options into its `extra_files` (and
checks every hash). This records what schema 1 could not: each artifact's `output_kind`,
decided as the runtime decides it for an undeclared artifact (a probe batch, once; the Keras
file gets the kind its converted artifacts share), and its `contract_sha256`, the fingerprint
of the classes and preprocessing bundle.json gives now — so only run it on a bundle.json you
trust (the committed one, not one edited since). Never imports TensorFlow.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from wbc_edge.core.bundle import load_bundle, save_bundle
from wbc_edge.core.quiet import native_stderr
from wbc_edge.core.runtime import open_runtime
from wbc_edge.core.vocab import FORMAT_RUNTIMES


def upgrade(path: Path) -> list[str]:
    """Fill in the schema-2 fields of one bundle; lines saying what was recorded."""
    bundle = load_bundle(path)
    lines = []
    for art in bundle.artifacts:
        if art.output_kind is None and art.format in FORMAT_RUNTIMES:
            with native_stderr(), open_runtime(bundle, art, threads=1) as rt:
                art.output_kind = rt.output_kind
    runnable = {a.output_kind for a in bundle.artifacts if a.format in FORMAT_RUNTIMES}
    for art in bundle.artifacts:
        if art.output_kind is None and len(runnable) == 1:
            art.output_kind = next(iter(runnable))
        if art.contract_sha256 is None:
            art.contract_sha256 = bundle.contract_sha256
        lines.append(
            f"{art.file}: output_kind {art.output_kind}, contract {art.contract_sha256[:12]}"
        )
    save_bundle(bundle)
    return lines


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="upgrade_bundle: %(message)s")
    for arg in argv:
        for line in upgrade(Path(arg)):
            print(f"{arg}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
