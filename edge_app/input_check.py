"""Notice when field mode is fed single-cell crops (it miscounts them) and say what to do.

A field of view at `scale` spans several training images; a Kaggle-like crop is one training
image (320x240 training px) or less, with one white cell near its centre. Field mode on such
crops finds the cell but cuts its window at the field scale, so the model sees the wrong size.
"""

from __future__ import annotations

from wbc_edge.core.field import TRAINING_IMAGE
from wbc_edge.edge_app.classify import FrameResult
from wbc_edge.edge_app.sources.files import MediaFrame

CENTRAL = 0.4  # the cell's centre lies within this fraction of the width/height of the middle
CROP_LIKE_SHARE = 0.8  # warn when this share of the frames look like crops


class CropLikeInput:
    """Counts frames that look like one-cell crops: `message()` says so when most of them do."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.frames = 0
        self.crop_like = 0
        self.sizes: set[tuple[int, int]] = set()

    def __call__(self, item: MediaFrame, result: FrameResult) -> None:
        if item.rgb is None:
            return
        self.frames += 1
        h, w = item.rgb.shape[:2]
        if looks_like_crop((w, h), [c.box for c in result.cells], self.scale):
            self.crop_like += 1
            self.sizes.add((w, h))

    def message(self) -> str | None:
        """A one-line warning, or None when the input looks like fields of view."""
        if not self.frames or self.crop_like < CROP_LIKE_SHARE * self.frames:
            return None
        sizes = ", ".join(f"{w}x{h}" for w, h in sorted(self.sizes)[:3])
        what = (
            "the image looks"
            if self.frames == 1
            else f"{self.crop_like} of {self.frames} images look"
        )
        return (
            f"{what} like single-cell crops ({sizes}, one white cell in the middle), not fields "
            "of view: field mode miscounts such crops; use --mode cell for images like the "
            "Kaggle ones"
        )


def looks_like_crop(size: tuple[int, int], boxes: list, scale: float) -> bool:
    """One cell near the centre of an image no larger than one training image at `scale`."""
    w, h = size
    if len(boxes) != 1 or boxes[0] is None:
        return False
    if w > TRAINING_IMAGE[0] * scale * 0.6 or h > TRAINING_IMAGE[1] * scale * 0.6:
        return False
    x0, y0, x1, y1 = boxes[0]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return abs(cx - w / 2) <= CENTRAL * w and abs(cy - h / 2) <= CENTRAL * h
