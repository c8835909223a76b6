"""The one confusion-matrix picture, drawn by training's reports and the parity report.

matplotlib is imported only when a picture is drawn (the device install does not have it).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def draw_confusion(
    ax: Any, cm: Sequence[Sequence[int]], classes: Sequence[str], title: str, abbrev: int = 10
) -> None:
    """Counts and row shares on `ax`, shaded by the row share; rows are true classes."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    size = 9 if abbrev > 4 else 8
    for (i, j), v in np.ndenumerate(cm):
        colour = "white" if frac[i, j] > 0.6 else "black"
        text = f"{v}\n{frac[i, j]:.0%}"
        ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=size)
    names = [c[:abbrev] for c in classes]
    ax.set_xticks(range(len(classes)), names, rotation=30, ha="right", fontsize=size)
    ax.set_yticks(range(len(classes)), names, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
