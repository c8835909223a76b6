"""The one decode path on hostile files: an array or one ImageError naming the file, never more.

Every input is generated here: PNG headers claiming huge sizes, BMP/TIFF files with flipped
header bytes, truncated files, grey images.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import png_header

from wbc_edge.core import decode
from wbc_edge.core.decode import decode_image, decode_stain_image, is_grey
from wbc_edge.core.errors import ImageError, WbcError

pytestmark = pytest.mark.edge


def colour_image(h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_claiming_100000_squared_is_an_error_naming_file_and_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(100_000, 100_000))
    assert path.stat().st_size < 100
    with pytest.raises(ImageError) as err:  # not PIL's DecompressionBombError
        decode_image(path)
    assert str(path) in str(err.value) and "too large" in str(err.value)
    assert "10,000.0 MP" in str(err.value) and "\n" not in str(err.value)


def test_over_the_pi_budget_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_header(9000, 9000))  # 81 MP: under PIL's bomb limit, over ours
    with pytest.raises(ImageError, match=r"9000x9000 pixels \(81.0 MP\), over the 50.0 MP"):
        decode_image(path)
    small = tmp_path / "small.png"
    Image.fromarray(colour_image(40, 50)).save(small)
    assert decode_image(small).shape == (40, 50, 3)
    with pytest.raises(ImageError, match="50x40 pixels"):
        decode_image(small, max_pixels=1000)


def test_the_budget_is_a_module_constant(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "c.png"
    Image.fromarray(colour_image(20, 20)).save(path)
    monkeypatch.setattr(decode, "MAX_PIXELS", 399)
    with pytest.raises(ImageError, match="too large"):
        decode_image(path)


def test_the_budget_can_be_set_for_a_small_pi(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "c.png"
    Image.fromarray(colour_image(20, 20)).save(path)
    monkeypatch.setenv("WBC_MAX_PIXELS", "399")
    with pytest.raises(ImageError, match="20x20 pixels"):
        decode_image(path)
    monkeypatch.setenv("WBC_MAX_PIXELS", "lots")
    with pytest.raises(WbcError, match="WBC_MAX_PIXELS='lots' is not a positive number"):
        decode_image(path)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PNG", "JPEG"])
def test_every_flipped_header_byte_gives_an_array_or_an_image_error(fmt: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(colour_image()).save(buf, fmt)
    good = buf.getvalue()
    header_and_tail = {*range(min(64, len(good))), *range(max(0, len(good) - 160), len(good))}
    for pos in sorted(header_and_tail):  # a TIFF keeps its directory at the end
        for flip in (0xFF, 0x80):
            data = bytearray(good)
            data[pos] ^= flip
            try:
                out = decode_image(bytes(data))
            except ImageError as exc:
                assert "\n" not in str(exc)
                continue
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            assert out.shape[0] * out.shape[1] <= decode.MAX_PIXELS


def test_truncated_files_are_image_errors(tmp_path: Path) -> None:
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("BMP", ".bmp")):
        buf = io.BytesIO()
        Image.fromarray(colour_image(64, 64)).save(buf, fmt)
        path = tmp_path / f"cut{suffix}"
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        try:
            decode_image(path)
        except ImageError as exc:
            assert str(path) in str(exc)


def test_grey_images_cannot_be_analysed(tmp_path: Path) -> None:
    grey = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    cases = {
        "l.png": Image.fromarray(grey, "L"),
        "rgb_equal.png": Image.fromarray(np.repeat(grey[:, :, None], 3, 2)),
        "grey.jpg": Image.fromarray(np.repeat(grey[:, :, None], 3, 2)),
        "g16.png": Image.fromarray(grey.astype(np.uint16) * 256),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
        assert decode_image(tmp_path / name).shape == (48, 64, 3)  # still decodable
        with pytest.raises(ImageError, match="not a colour stain image") as err:
            decode_stain_image(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    Image.fromarray(colour_image()).save(tmp_path / "colour.png")
    assert decode_stain_image(tmp_path / "colour.png").shape == (24, 32, 3)


def test_is_grey_samples_large_frames_cheaply() -> None:
    frame = np.full((2000, 3000, 3), 128, np.uint8)
    assert is_grey(frame)
    frame[::4, ::4, 0] = 200  # a stain that the sample sees
    assert not is_grey(frame)
