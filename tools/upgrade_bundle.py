"""Upgrade a bundle in place (schema 1 to 2; machine paths out of its IRs), without retraining.

    python tools/upgrade_bundle.py models/default [models/other ...]

Loading already moves an OpenVINO artifact's `weights_*` options into its `extra_files` (and
checks every hash). This records what schema 1 could not: each artifact's `output_kind`,
decided as the runtime decides it for an undeclared artifact (a probe batch, once; the Keras
file gets the kind its converted artifacts share), and its `contract_sha256`, the fingerprint
of the classes and preprocessing bundle.json gives now — so only run it on a bundle.json you
trust (the committed one, not one edited since). It also drops the `conversion_parameters`
block older converters left in OpenVINO IRs (the converter's temporary SavedModel path, a
machine path; the graph is untouched) and re-hashes those files. Never imports TensorFlow.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from wbc_edge.core.bundle import Bundle, load_bundle, save_bundle
from wbc_edge.core.quiet import native_stderr
from wbc_edge.core.runtime import open_runtime
from wbc_edge.core.vocab import FORMAT_RUNTIMES

CONVERSION_BLOCK = re.compile(r"\n[ \t]*<conversion_parameters>.*?</conversion_parameters>", re.S)


def upgrade(path: Path) -> list[str]:
    """Fill in the schema-2 fields of one bundle; lines saying what was recorded."""
    bundle = load_bundle(path)
    lines = drop_conversion_paths(bundle)
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


def drop_conversion_paths(bundle: Bundle) -> list[str]:
    """Remove the IRs' `conversion_parameters` (a temporary path) and re-record their hashes."""
    lines = []
    for art in bundle.artifacts:
        xml = bundle.artifact_path(art)
        if art.format != "openvino" or not xml.is_file():
            continue
        text = xml.read_text(encoding="utf-8")
        kept = CONVERSION_BLOCK.sub("", text)
        if kept != text:
            xml.write_text(kept, encoding="utf-8")
            record = bundle.file_hash(art.file)
            art.sha256, art.size_bytes = record.sha256, record.size_bytes
            lines.append(f"{art.file}: conversion_parameters (a temporary path) removed")
    return lines


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="upgrade_bundle: %(message)s")
    for arg in argv:
        for line in upgrade(Path(arg)):
            print(f"{arg}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
