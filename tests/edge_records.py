"""What the tests of `wbc-edge`'s JSONL and printed summary share: the documented record
schema (`check_record`), a JSONL file read and checked line by line, the printed count."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from wbc_edge.edge_app.quality import ALL_FLAGS

CELL_KEYS = {
    "source", "frame", "box", "label", "confidence", "probs", "uncertain", "morphology", "scale"
}  # fmt: skip
MORPHOLOGY_KEYS = {
    "nucleus_area_px", "nucleus_area_um2", "cell_area_px", "cell_area_um2", "nc_ratio", "lobes",
    "solidity", "convexity", "elongation", "nucleus_stain", "nucleus_green", "cytoplasm_rgb",
    "granule_score", "cytoplasm_texture",
}  # fmt: skip
RUN_KEYS = {"sample", "operator", "model", "model_sha256"}  # the run's, on every record
QUALITY_KEYS = {"flags", "counted"}  # only on frames with a quality flag


def check_record(rec: dict, classes: list[str], threshold: float = 0.6) -> str:
    """Assert one JSONL record follows the documented schema; return its kind."""
    assert isinstance(rec["source"], str) and rec["source"]
    if "model" in rec:  # the CLI names the model that counted on every record
        assert isinstance(rec["model"], str) and len(rec["model_sha256"]) == 64
    rec = {k: v for k, v in rec.items() if k not in RUN_KEYS}
    if "error" in rec:
        assert set(rec) <= {"source", "frame", "error"}
        assert isinstance(rec["error"], str) and "\n" not in rec["error"] and rec["error"]
        return "error"
    if rec.get("counted"):  # a tracked cell counted once by `wbc-edge run`
        assert rec["label"] in classes and isinstance(rec["track"], int)
        assert 0 <= rec["first_frame"] <= rec["last_frame"] and rec["frames"] >= 1
        assert list(rec["probs"]) == classes
        return "counted"
    assert isinstance(rec["frame"], int) and rec["frame"] >= 0
    if "cells" in rec:
        assert rec["cells"] == 0
        assert set(rec) - {"time"} - QUALITY_KEYS == {"source", "frame", "cells", "scale"}
        return "empty"
    assert set(rec) - {"track", "field", "time"} - QUALITY_KEYS == CELL_KEYS
    assert rec["scale"] > 0 and set(rec.get("flags", [])) <= set(ALL_FLAGS)
    box = rec["box"]
    assert box is None or (
        len(box) == 4
        and all(isinstance(v, int) for v in box)
        and box[0] < box[2]
        and box[1] < box[3]
    )
    assert list(rec["probs"]) == classes
    m = rec["morphology"]
    assert m is None or (set(m) == MORPHOLOGY_KEYS and m["nucleus_area_px"] > 0 and m["lobes"] >= 1)
    probs = np.array(list(rec["probs"].values()))
    assert abs(probs.sum() - 1) < 0.02 and probs.min() >= 0
    assert rec["label"] == classes[int(probs.argmax())]
    assert rec["confidence"] == pytest.approx(probs.max(), abs=1e-6)
    assert rec["uncertain"] is (rec["confidence"] < threshold)
    return "cell"


def read_jsonl(path: Path | str, classes: list[str], threshold: float = 0.6) -> list[dict]:
    text = Path(path).read_text() if not isinstance(path, str) or "\n" not in path else path
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for rec in records:
        rec["_kind"] = check_record(rec, classes, threshold)
    return records


def summary_counts(text: str) -> dict[str, int]:
    """Class rows and the footer numbers of the printed differential count."""
    out = {c: int(n) for c, n in re.findall(r"^\s+([A-Z]+)\s+(\d+)\s+[\d.]+$", text, re.M)}
    out["uncertain"] = int(re.search(r"uncertain \(confidence < [\d.]+\): (\d+)", text)[1])
    out["empty"] = int(re.search(r"frames with no white cell: (\d+)", text)[1])
    out["errors"] = int(re.search(r"errors \(unreadable inputs\): (\d+)", text)[1])
    return out
