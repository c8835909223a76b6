"""Reading a bundle's `quality` entry: was its float model clearly better than chance?

wbc-convert measures the float model on the parity set against an absolute floor (accuracy
above chance, every class recalled; `convert.quality_floor`) and records the figures in
bundle.json's `quality`. The edge app says so in one line when it loads a bundle below the
floor. Bundles without the entry (converted before it existed, or never converted) load
quietly: nothing was measured, so nothing is claimed.
"""

from __future__ import annotations

import logging
from typing import Any

from wbc_edge.core.bundle import Bundle

log = logging.getLogger(__name__)


def quality_warning(quality: dict[str, Any], name: str) -> str | None:
    """One line when the recorded quality is below the floor (None when met or not recorded)."""
    if not quality or quality.get("passed") is not False:
        return None
    reason = quality.get("reason") or "below the quality floor"
    return (
        f"warning: model {name!r} is below the quality floor wbc-convert measured ({reason}): "
        "do not trust its counts"
    )


def warn_if_below_floor(bundle: Bundle) -> str | None:
    """Log the warning line for a loaded bundle (stderr through the CLI's logging)."""
    line = quality_warning(bundle.quality, bundle.name)
    if line is not None:
        log.warning("%s", line)
    return line
