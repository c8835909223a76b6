"""A FHIR R4 Bundle (type collection) for a lab system: one DiagnosticReport, the Specimen it
is about, and one Observation per cell type as a percentage of leukocytes.

- DiagnosticReport: LOINC 69738-3, status preliminary (unsigned) or final (signed),
  `resultsInterpreter` the reviewer, `performer` the operator, `specimen` the slide.
- Observation: the class's LOINC code, `valueQuantity` in UCUM `%`, the 95 % interval both as
  a note and as the extension `CI95_EXTENSION` (a Range: FHIR R4 has no element for it),
  `method.text` "pre-classified by model X, verified by Y" and which count the value is.
- Specimen: `accessionIdentifier` the sample id (when given).

Plain dicts and json: nothing to install on the device. Tests validate the output with an R4
library from the `dev` extra.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from wbc_edge.edge_app.lab_result import PANEL, LabResult

LOINC_SYSTEM = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CI95_EXTENSION = "urn:wbc-edge:fhir:StructureDefinition:interval-95"  # ours: R4 has none
ID_SYSTEM = "urn:wbc-edge:run"
_NS = uuid.UUID("6f1c7a52-3b7e-4b8e-9a59-2f0d2f1e4a30")  # wbc-edge's namespace for resource ids


def fhir_bundle(result: LabResult) -> dict[str, Any]:
    """The Bundle as a JSON-ready dict."""
    ids = _Ids(result.run_id)
    specimen = {
        "resourceType": "Specimen",
        "id": ids.id("specimen"),
        "type": {"text": "Peripheral blood smear"},
    }
    if result.sample:
        specimen["accessionIdentifier"] = {"value": result.sample}
    observations = [_observation(result, row, ids, k) for k, row in enumerate(result.rows)]
    report = {
        "resourceType": "DiagnosticReport",
        "id": ids.id("report"),
        "identifier": [{"system": ID_SYSTEM, "value": result.run_id}],
        "status": result.status,
        "category": [
            _category("HM", "Hematology", "http://terminology.hl7.org/CodeSystem/v2-0074")
        ],
        "code": {"coding": [_loinc(PANEL)], "text": "White-cell differential"},
        "effectiveDateTime": result.date,
        "issued": result.signed_at or result.date,
        "specimen": [{"reference": ids.ref("specimen")}],
        "result": [{"reference": ids.ref(f"obs-{k}")} for k in range(len(observations))],
        "conclusion": f"{result.cells} white cells; {result.method}",
    }
    if result.operator:
        report["performer"] = [{"display": result.operator}]
    if result.reviewer:
        report["resultsInterpreter"] = [{"display": result.reviewer}]
    entries = [report, specimen, *observations]
    return {
        "resourceType": "Bundle",
        "id": ids.id("bundle"),
        "type": "collection",
        "timestamp": result.signed_at or result.date,
        "entry": [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e} for e in entries],
    }


def fhir_json(result: LabResult) -> str:
    return json.dumps(fhir_bundle(result), indent=1, ensure_ascii=False) + "\n"


def _observation(result: LabResult, row, ids: _Ids, k: int) -> dict[str, Any]:
    code: dict[str, Any] = {"text": f"{row.cls}/100 leukocytes in Blood"}
    if row.loinc is not None:
        code["coding"] = [_loinc(row.loinc)]
    obs = {
        "resourceType": "Observation",
        "id": ids.id(f"obs-{k}"),
        "status": result.status,
        "category": [
            _category(
                "laboratory",
                "Laboratory",
                "http://terminology.hl7.org/CodeSystem/observation-category",
            )
        ],
        "code": code,
        "specimen": {"reference": ids.ref("specimen")},
        "effectiveDateTime": result.date,
        "issued": result.signed_at or result.date,
        "valueQuantity": _percent(row.percent),
        "method": {"text": result.method},
        "note": [{"text": f"{row.cells} cells; {row.note}"}],
        "extension": [
            {
                "url": CI95_EXTENSION,
                "valueRange": {"low": _percent(row.low), "high": _percent(row.high)},
            }
        ],
    }
    performers = [p for p in (result.operator, result.reviewer) if p]
    if performers:
        obs["performer"] = [{"display": p} for p in performers]
    return obs


def _percent(value: float) -> dict[str, Any]:
    return {"value": round(float(value), 2), "unit": "%", "system": UCUM, "code": "%"}


def _loinc(code: tuple[str, str]) -> dict[str, str]:
    return {"system": LOINC_SYSTEM, "code": code[0], "display": code[1]}


def _category(code: str, display: str, system: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


class _Ids:
    """Stable resource ids per run (uuid5), so a re-export names the same resources."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def id(self, name: str) -> str:
        return str(uuid.uuid5(_NS, f"{self.run_id}/{name}"))

    def ref(self, name: str) -> str:
        return f"urn:uuid:{self.id(name)}"
