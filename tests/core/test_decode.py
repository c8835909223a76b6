import io

import numpy as np
import pytest
from PIL import Image

from wbc_edge.core.decode import decode_image
from wbc_edge.core.errors import ImageError

pytestmark = pytest.mark.edge


def save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_lossless_formats_round_trip(tmp_path, rgb, suffix):
    path = save(Image.fromarray(rgb), tmp_path / f"x{suffix}")
    np.testing.assert_array_equal(decode_image(path), rgb)


def test_jpeg_and_bytes(tmp_path, rgb):
    path = save(Image.fromarray(rgb), tmp_path / "x.jpg", quality=95)
    out = decode_image(path)
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(decode_image(path.read_bytes()), out)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(1200, dtype=np.uint8).reshape(30, 40)
    out = decode_image(save(Image.fromarray(gray, "L"), tmp_path / "g.png"))
    assert out.shape == (30, 40, 3)
    assert (out[:, :, 0] == gray).all() and (out[:, :, 2] == gray).all()


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    gray16 = np.full((10, 10), 65535, np.uint16)
    gray16[0, 0] = 0
    out = decode_image(save(Image.fromarray(gray16), tmp_path / "g16.png"))
    assert out[5, 5].tolist() == [255, 255, 255] and out[0, 0].tolist() == [0, 0, 0]
    half = decode_image(save(Image.fromarray(gray16 // 2), tmp_path / "h16.png"))
    assert 126 <= half[5, 5, 0] <= 128


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red, but fully transparent except one pixel
    rgba[0, 0, 3] = 255
    out = decode_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert out[0, 0].tolist() == [255, 0, 0] and out[4, 4].tolist() == [255, 255, 255]


def test_palette_image(tmp_path, rgb):
    im = Image.fromarray(rgb).convert("P")
    out = decode_image(save(im, tmp_path / "p.png"))
    np.testing.assert_array_equal(out, np.asarray(im.convert("RGB")))


def test_exif_rotation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs 90° clockwise
    path = tmp_path / "r.jpg"
    im.save(path, exif=exif.tobytes(), quality=100)
    out = decode_image(path)
    assert out.shape == (40, 20, 3)
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # old left half is now on top


def test_unreadable_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match=r"broken\.jpg: not a readable image"):
        decode_image(bad)
    with pytest.raises(ImageError, match=r"missing\.png: "):
        decode_image(tmp_path / "missing.png")
    truncated = tmp_path / "cut.png"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(buf, "PNG")
    truncated.write_bytes(buf.getvalue()[:60])
    with pytest.raises(ImageError, match=r"cut\.png"):
        decode_image(truncated)
