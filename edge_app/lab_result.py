"""The result a lab system receives, read from a report folder: what both exports send.

Unsigned, the value per class is the model's differential (`estimate`: corrected for the model's
known confusions, or each cell's label counted) and the result is preliminary. Signed, it is the
reviewed count (each cell confirmed or reclassified by the reviewer) and final; the model's
estimate still travels, in each row's note. `method` says which, in words.

Each class is coded with its LOINC "<cells>/100 leukocytes in Blood" (method-less) code; the
report is the "Differential panel, method unspecified - Blood" (69738-3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.signing import result_status, signature_problem

PANEL = ("69738-3", "Differential panel, method unspecified - Blood")
LOINC = {
    "NEUTROPHIL": ("26511-6", "Neutrophils/100 leukocytes in Blood"),
    "LYMPHOCYTE": ("26478-8", "Lymphocytes/100 leukocytes in Blood"),
    "MONOCYTE": ("26485-3", "Monocytes/100 leukocytes in Blood"),
    "EOSINOPHIL": ("26450-7", "Eosinophils/100 leukocytes in Blood"),
    "BASOPHIL": ("30180-4", "Basophils/100 leukocytes in Blood"),
    "BAND": ("26508-2", "Band form neutrophils/100 leukocytes in Blood"),
    "BLAST": ("26446-5", "Blasts/100 leukocytes in Blood"),
}


def loinc_for(cls: str) -> tuple[str, str] | None:
    """The LOINC code and name of a class (NEUTROPHIL, neutrophils, ...), or None."""
    key = cls.strip().upper().removesuffix("S")
    return LOINC.get(key)


@dataclass(frozen=True)
class ResultRow:
    """One cell type: its value (% of leukocytes) with the 95 % interval, and a note."""

    cls: str
    loinc: tuple[str, str] | None
    percent: float
    low: float
    high: float
    cells: int
    note: str


@dataclass(frozen=True)
class LabResult:
    run_id: str
    status: str  # preliminary | final
    sample: str | None
    operator: str | None
    reviewer: str | None
    signed_at: str | None
    date: str  # when the slide was counted
    model: str
    bundle_sha256: str
    cells: int
    method: str
    rows: list[ResultRow]


def lab_result(data: dict[str, Any], folder: Path) -> LabResult:
    """The result of a loaded report (report.json + review.json); WbcError when its signature no
    longer matches what was signed."""
    problem = signature_problem(folder, data.get("review"))
    if problem is not None:
        raise WbcError(problem, Path(folder) / "review.json")
    meta, count = data["meta"], data["count"]
    review = data.get("review")
    status = result_status(review)
    sig = review["signature"] if status == "final" else None
    estimate = {r["class"]: r for r in count["rows"]}
    model = f"{meta['model']} (bundle.json sha256 {meta['bundle_sha256'][:12]})"
    kind = (
        "corrected for the model's known confusions"
        if count.get("estimate") == "corrected"
        else "each cell's label counted"
    )
    if sig:
        shown = review["count"]
        method = (
            f"pre-classified by model {model}, verified by {sig['reviewer']} ({sig['time']}); "
            f"value: the reviewed count of {shown['cells']} cells, each confirmed or "
            "reclassified by the reviewer"
        )
    else:
        shown = count
        method = (
            f"pre-classified by model {model}, not yet verified; value: the model's "
            f"differential of {count['cells']} cells ({kind})"
        )
    rows = []
    for r in shown["rows"]:
        e = estimate[r["class"]]
        note = f"95 % interval {r['ci95_low']:.1f}-{r['ci95_high']:.1f} %"
        if sig:
            note += (
                f"; the model's estimate was {e['percent']:.1f} % "
                f"({e['ci95_low']:.1f}-{e['ci95_high']:.1f} %, {kind})"
            )
        rows.append(
            ResultRow(
                r["class"], loinc_for(r["class"]), r["percent"], r["ci95_low"],
                r["ci95_high"], r["cells"], note,
            )
        )  # fmt: skip
    return LabResult(
        run_id=meta.get("run_id") or "unknown",
        status=status,
        sample=meta.get("sample"),
        operator=meta.get("operator"),
        reviewer=sig["reviewer"] if sig else None,
        signed_at=sig["time"] if sig else None,
        date=meta["date"],
        model=meta["model"],
        bundle_sha256=meta["bundle_sha256"],
        cells=shown["cells"],
        method=method,
        rows=rows,
    )
