"""Signing a review: the technician's name, the time and a hash of exactly what was signed.

review.json keeps one open version of the review at a time:

    {"version": 1, "date": ..., "corrections": {id: class}, "confirmed": [id, ...],
     "count": {...reviewed count...},
     "signature": null | {"reviewer": ..., "time": ..., "sha256": ..., "report_sha256": ...},
     "history": [earlier versions, each as it was when a later change amended it]}

`sha256` is the hash of the signed content: report.json's bytes (through their sha256), the
version, every decision and the reviewed count, the reviewer and the time, as canonical JSON
(`signed_payload`). Anything changed afterwards, in either file, no longer matches
(`signature_problem`). A signed version is read-only; `amend_review` starts the next version
from its decisions and keeps the signed one in `history`. Unsigned results are preliminary,
signed ones final (`result_status`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.identity import name_problem


def result_status(review: dict[str, Any] | None) -> str:
    """'final' once the open version is signed, else 'preliminary' (FHIR's and HL7's words)."""
    return "final" if review and review.get("signature") else "preliminary"


def signed_payload(report_bytes: bytes, review: dict[str, Any], reviewer: str, time: str) -> bytes:
    """The canonical bytes a signature's hash covers."""
    content = {
        "report_sha256": hashlib.sha256(report_bytes).hexdigest(),
        "version": review.get("version", 1),
        "corrections": review.get("corrections", {}),
        "confirmed": sorted(review.get("confirmed", []), key=int),
        "count": review.get("count"),
        "reviewer": reviewer,
        "time": time,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature_problem(folder: Path, review: dict[str, Any] | None) -> str | None:
    """Why the open version's signature does not match the files now, or None (also when the
    review is not signed)."""
    sig = (review or {}).get("signature")
    if not sig:
        return None
    report = (Path(folder) / "report.json").read_bytes()
    payload = signed_payload(report, review, sig["reviewer"], sig["time"])
    if hashlib.sha256(payload).hexdigest() != sig["sha256"]:
        return "the signed review no longer matches report.json and review.json (changed after "
        "signing)"
    return None


def undecided(data: dict[str, Any], review: dict[str, Any] | None) -> list[str]:
    """Ids of the shown cells neither confirmed nor changed yet."""
    review = review or {}
    done = set(review.get("corrections", {})) | set(review.get("confirmed", []))
    return [str(c["id"]) for c in data["cells"] if str(c["id"]) not in done]


def sign_problem(data: dict[str, Any], review: dict[str, Any] | None) -> str | None:
    """Why the review cannot be signed yet, or None."""
    if review and review.get("signature"):
        return f"version {review.get('version', 1)} is already signed"
    shown, counted = len(data["cells"]), data["count"]["cells"]
    if shown < counted:
        return (
            f"the report shows {shown} of its {counted} counted cells: a signed differential "
            "needs every counted cell in front of the reviewer"
        )
    left = undecided(data, review)
    if left:
        return f"{len(left)} of {shown} cells are neither confirmed nor changed yet"
    return None


def sign_review(folder: Path, reviewer: str) -> dict[str, Any]:
    """Sign the open version as `reviewer`; returns review.json's content. WbcError when the
    name is not a name or a cell is still undecided."""
    from wbc_edge.edge_app import review as reviewing

    why = name_problem(reviewer)
    if why is not None:
        raise WbcError(f"reviewer {reviewer[:64]!r} {why}")
    folder = Path(folder)
    with reviewing.SAVE_LOCK:
        data = reviewing.load_report(folder)
        review = data.get("review") or reviewing.new_review(data)
        why = sign_problem(data, review)
        if why is not None:
            raise WbcError(f"cannot sign: {why}", folder / "review.json")
        time = _now()
        report = (folder / "report.json").read_bytes()
        digest = hashlib.sha256(signed_payload(report, review, reviewer, time)).hexdigest()
        review["signature"] = {
            "reviewer": reviewer,
            "time": time,
            "sha256": digest,
            "report_sha256": hashlib.sha256(report).hexdigest(),
        }
        out = reviewing.write_review(folder, data, review)
        out.write(f"signed/report-v{review['version']}.html", (folder / "report.html").read_bytes())
        out.save()
    return review


def amend_review(folder: Path) -> dict[str, Any]:
    """Start the next version of a signed review from its decisions; the signed version is kept
    in `history` (and its page in signed/report-vN.html)."""
    from wbc_edge.edge_app import review as reviewing

    folder = Path(folder)
    with reviewing.SAVE_LOCK:
        data = reviewing.load_report(folder)
        review = data.get("review")
        if not review or not review.get("signature"):
            raise WbcError("nothing to amend: the review is not signed", folder / "review.json")
        kept = {k: v for k, v in review.items() if k != "history"} | {"amended": _now()}
        review = {
            **review,
            "version": review.get("version", 1) + 1,
            "date": _now(),
            "signature": None,
            "history": [*review.get("history", []), kept],
        }
        reviewing.write_review(folder, data, review).save()
    return review


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
