"""`wbc-edge export REPORT_DIR`: the report's result as files a lab system reads.

    REPORT_DIR/export/diagnostic-report.fhir.json   FHIR R4 Bundle (`export_fhir`)
    REPORT_DIR/export/oru-r01.hl7                   HL7 v2.5.1 ORU^R01 (`export_hl7`)

Written through `OutputFolder` (atomic, never over a file wbc-edge did not write). A review whose
signature no longer matches its files is refused.
"""

from __future__ import annotations

from pathlib import Path

from wbc_edge.edge_app.export_fhir import fhir_json
from wbc_edge.edge_app.export_hl7 import oru_r01
from wbc_edge.edge_app.lab_result import LabResult, lab_result
from wbc_edge.edge_app.output_folder import OutputFolder
from wbc_edge.edge_app.report import load_report

FORMATS = {"fhir": "diagnostic-report.fhir.json", "hl7": "oru-r01.hl7"}


def export_report(
    folder: Path, out: Path | None = None, formats: tuple[str, ...] = tuple(FORMATS)
) -> tuple[LabResult, list[Path]]:
    """Write the chosen formats into `out` (default REPORT_DIR/export); the result and paths."""
    folder = Path(folder)
    result = lab_result(load_report(folder), folder)
    inputs = [folder / "report.json", folder / "review.json"]
    target = OutputFolder(out or folder / "export", inputs)
    texts = {"fhir": lambda: fhir_json(result), "hl7": lambda: oru_r01(result)}
    paths = [target.write(FORMATS[f], texts[f]()) for f in formats]
    target.save()
    return result, paths
