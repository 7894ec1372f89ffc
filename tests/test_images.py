import cv2
import numpy as np
import pytest
from PIL import Image

from boxpromptiml.data.images import (
    image_size,
    read_image,
    read_label_map,
    read_mask,
    read_probability_map,
    write_probability_map,
)
from boxpromptiml.errors import DataError


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)


def test_rgb_png_roundtrip(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, rgb)


def test_gray_is_expanded_to_three_equal_channels(tmp_path, rgb):
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (20, 30, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], rgb[..., 0])


def test_rgba_alpha_is_dropped_not_composited(tmp_path, rgb):
    rgba = np.dstack([rgb, np.zeros((20, 30), np.uint8)])  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)


def test_palette_image_is_expanded(tmp_path):
    im = Image.new("P", (4, 3))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((1, 1), 1)
    im.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    assert out.shape == (3, 4, 3)
    assert tuple(out[1, 1]) == (255, 0, 0) and tuple(out[0, 0]) == (0, 0, 0)


def test_16bit_gray_png_is_scaled(tmp_path):
    arr = np.array([[0, 65535], [257 * 100, 32768]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), arr)
    out = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[..., 0], np.array([[0, 255], [100, 128]], np.uint8))


def test_16bit_colour_png_is_scaled(tmp_path):
    arr = np.zeros((2, 2, 3), np.uint16)
    arr[0, 0] = (65535, 0, 257 * 10)  # written as BGR by OpenCV
    cv2.imwrite(str(tmp_path / "c16.png"), arr)
    out = read_image(tmp_path / "c16.png")
    assert out.dtype == np.uint8
    assert tuple(out[0, 0]) == (10, 0, 255)


def test_16bit_colour_tiff_is_read(tmp_path):
    arr = np.full((3, 5, 3), 65535, np.uint16)
    arr[..., 0] = 0  # blue channel in OpenCV order
    cv2.imwrite(str(tmp_path / "c16.tif"), arr)
    out = read_image(tmp_path / "c16.tif")
    assert out.shape == (3, 5, 3)
    assert tuple(out[0, 0]) == (255, 255, 0)


def test_exif_rotation_is_not_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW" orientation tag
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=95)
    assert read_image(tmp_path / "r.jpg").shape == (20, 30, 3)
    assert image_size(tmp_path / "r.jpg") == (20, 30)


def test_truncated_jpeg_fails_naming_the_file(tmp_path, rgb):
    big = np.repeat(np.repeat(rgb, 8, axis=0), 8, axis=1)
    Image.fromarray(big).save(tmp_path / "t.jpg", quality=95)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")


def test_truncated_png_fails_naming_the_file(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t.png"):
        read_image(tmp_path / "t.png")


def test_not_an_image_and_missing_file(tmp_path):
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(DataError, match="x.png"):
        read_image(tmp_path / "x.png")
    with pytest.raises(DataError, match="not found.*nope.png"):
        read_image(tmp_path / "nope.png")


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.array([[0, 255], [127, 128]], np.uint8), [[False, True], [False, True]]),
        (np.array([[0, 1], [1, 0]], np.uint8), [[False, True], [True, False]]),
        (np.array([[0, 65535], [32767, 40000]], np.uint16), [[False, True], [False, True]]),
    ],
)
def test_mask_binarisation(tmp_path, values, expected):
    cv2.imwrite(str(tmp_path / "m.png"), values)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), np.array(expected))


def test_colour_mask_uses_max_over_channels(tmp_path):
    m = np.zeros((2, 2, 3), np.uint8)
    m[0, 0] = (255, 0, 0)
    m[1, 1] = (0, 0, 200)
    Image.fromarray(m).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), [[True, False], [False, True]])


def test_mask_of_wrong_size_names_both_files_or_is_resized(tmp_path):
    m = np.zeros((10, 10), np.uint8)
    m[:5] = 255
    cv2.imwrite(str(tmp_path / "m.png"), m)
    with pytest.raises(DataError, match=r"m\.png.*img\.jpg.*--resize-masks"):
        read_mask(tmp_path / "m.png", (20, 30), tmp_path / "img.jpg")
    resized = read_mask(tmp_path / "m.png", (20, 30), tmp_path / "img.jpg", resize=True)
    assert resized.shape == (20, 30)
    assert resized[:10].all() and not resized[10:].any()


def test_probability_map_roundtrip(tmp_path):
    prob = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    write_probability_map(tmp_path / "p.png", prob)
    back = read_probability_map(tmp_path / "p.png")
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, prob, atol=0.5 / 255 + 1e-6)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


def test_colour_probability_map_is_rejected(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(DataError, match="colour"):
        read_probability_map(tmp_path / "c.png")


def test_label_map_keeps_16bit_ids(tmp_path):
    labels = np.array([[1, 2], [300, 1000]], np.uint16)
    cv2.imwrite(str(tmp_path / "s.png"), labels)
    np.testing.assert_array_equal(read_label_map(tmp_path / "s.png"), labels.astype(np.int32))


def test_pixel_limit_applies_to_pillow_and_opencv(tmp_path, monkeypatch):
    import subprocess
    import sys

    from boxpromptiml.data import images

    png = tmp_path / "big.png"
    Image.new("RGB", (120, 100)).save(png)
    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    with pytest.raises(DataError, match="120 x 100 = 0 megapixels, over the limit.*BPIML_MAX_PIXELS"):
        images.read_image(png)
    # OpenCV (here for a Radiance HDR file, which Pillow cannot read) gets the limit before it decodes
    hdr = tmp_path / "big.hdr"
    code = ("import sys, numpy as np; import boxpromptiml.data.images as im, cv2; "
            f"cv2.imwrite({str(hdr)!r}, np.ones((100, 120, 3), np.float32)); "
            "from boxpromptiml.errors import DataError\n"
            f"try:\n    im.read_image({str(hdr)!r})\nexcept DataError as e:\n    print(e); sys.exit(0)\nsys.exit(1)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**__import__("os").environ, "BPIML_MAX_PIXELS": "10000"})
    assert result.returncode == 0 and "over the limit" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("gray", [False, True])
def test_large_jpeg_fast_path_gives_pillows_pixels(tmp_path, gray, monkeypatch):
    """Large plain JPEGs are decoded by OpenCV into one array; the pixels are exactly Pillow's."""
    import boxpromptiml.data.images as images

    monkeypatch.setattr(images, "LARGE_PHOTO_PIXELS", 10_000)
    rng = np.random.default_rng(3)
    pixels = cv2.resize(rng.integers(0, 255, (30, 40, 3), np.uint8), (400, 300), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW": pixels are read as stored, not rotated
    Image.fromarray(pixels[..., 0] if gray else pixels).save(path, quality=85, exif=exif)
    assert images._read_large_jpeg(path).shape == (300, 400, 3)
    expected = np.array(Image.open(path).convert("RGB"))
    assert np.array_equal(read_image(path), expected)
    # a truncated one goes through Pillow, which reports it instead of filling grey rows
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert images._read_large_jpeg(cut) is None
    with pytest.raises(DataError, match="cut.jpg"):
        read_image(cut)
