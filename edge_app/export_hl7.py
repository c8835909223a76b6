"""An HL7 v2.5.1 ORU^R01 message with the same rows as the FHIR export.

    MSH  sender WBC-EDGE, ORU^R01^ORU_R01, version 2.5.1
    OBR  the run id as filler order number, LOINC 69738-3, result status P (preliminary:
         unsigned) or F (final: signed)
    NTE  the method: "pre-classified by model X, verified by Y" and which count the values are
    OBX  one per cell type: NM, its LOINC code, the value in UCUM %, status P/F, the operator
         and reviewer as responsible observers, the method in OBX-17
    NTE  after each OBX: its cells and 95 % interval (and the model's estimate once signed)
    SPM  the sample id as the specimen id, specimen type BLD (whole blood)

Every text field is escaped with HL7's escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\), control
characters dropped; segments end with a carriage return. Tests validate the message with v2
libraries from the `dev` extra.
"""

from __future__ import annotations

import re
from datetime import datetime

from wbc_edge.edge_app.lab_result import PANEL, LabResult

SENDER = "WBC-EDGE"
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


def escape_hl7(text: str) -> str:
    """`text` as an HL7 v2 field value: delimiters escaped, control characters as spaces."""
    text = re.sub(r"[\x00-\x1f\x7f]", " ", str(text))
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def hl7_time(iso: str) -> str:
    """An ISO 8601 time as HL7's DTM (YYYYMMDDHHMMSS+ZZZZ)."""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return ""
    return when.strftime("%Y%m%d%H%M%S%z")


def oru_r01(result: LabResult, now: str | None = None) -> str:
    """The ORU^R01 message (segments separated by CR)."""
    status = "F" if result.status == "final" else "P"
    sent = hl7_time(now or result.signed_at or result.date)
    counted = hl7_time(result.date)
    reported = hl7_time(result.signed_at or result.date)
    control = f"{result.run_id[:19]}{status}"
    observers = "~".join(
        f"^{escape_hl7(p)}" for p in (result.operator, result.reviewer) if p
    )  # XCN: family name only
    segments = [
        f"MSH|^~\\&|{SENDER}||||{sent}||ORU^R01^ORU_R01|{control}|P|2.5.1|||AL|NE",
        f"OBR|1||{escape_hl7(result.run_id)}^{SENDER}|{PANEL[0]}^{escape_hl7(PANEL[1])}^LN"
        f"|||{counted}|||||||||||||||{reported}||HM|{status}",
        f"NTE|1|L|{escape_hl7(result.method)}",
    ]
    for k, row in enumerate(result.rows, 1):
        if row.loinc is not None:
            code = f"{row.loinc[0]}^{escape_hl7(row.loinc[1])}^LN"
        else:
            code = f"^{escape_hl7(row.cls)}/100 leukocytes in Blood"
        segments += [
            f"OBX|{k}|NM|{code}||{row.percent:.2f}|%^percent^UCUM|||||{status}|||{counted}||"
            f"{observers}|^{escape_hl7(_short(result.method))}",
            f"NTE|1|L|{escape_hl7(f'{row.cells} cells; {row.note}')}",
        ]
    if result.sample:
        segments.append(f"SPM|1|{escape_hl7(result.sample)}^{SENDER}||BLD^Whole blood^HL70487")
    return "\r".join(segments) + "\r"


def _short(method: str) -> str:
    """OBX-17's text: the method up to its value description (the NTE has it whole)."""
    return method.split("; value:")[0][:199]
