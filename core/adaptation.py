"""What a bundle's provenance says about its adaptation to a lab (`wbc-train adapt`).

An adapted bundle records `provenance.adaptation`: its parent, the lab's reports and cells, the
parent's and its own scores on the lab's held-out runs and on the original held-out cells, and
the verdict. Training, shipping and the device all ask the same question through this module:
may this bundle replace the model in use?
"""

from __future__ import annotations

from typing import Any

from wbc_edge.core.bundle import Bundle


def adaptation(bundle: Bundle) -> dict[str, Any] | None:
    """The bundle's adaptation record, or None for a bundle that was not adapted."""
    record = bundle.provenance.get("adaptation")
    return record if isinstance(record, dict) else None


def adaptation_problem(bundle: Bundle) -> str | None:
    """Why an adapted bundle may not replace its parent (it did not win), else None (also for
    a bundle that was not adapted)."""
    record = adaptation(bundle)
    if record is None:
        return None
    verdict = record.get("verdict") if isinstance(record.get("verdict"), dict) else {}
    if verdict.get("wins") is True:
        return None
    reasons = [str(r) for r in verdict.get("reasons") or []] or ["no verdict recorded"]
    return "did not win against its parent: " + "; ".join(reasons)


def parent_name(bundle: Bundle) -> str | None:
    """The name of the bundle an adapted bundle was fine-tuned from."""
    record = adaptation(bundle)
    parent = record.get("parent") if record else None
    return str(parent.get("name")) if isinstance(parent, dict) and parent.get("name") else None
