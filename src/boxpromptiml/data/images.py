"""Reading images, masks, label maps and probability maps the same way everywhere.

Conventions (documented in the README):
- Images are read *without* EXIF rotation (pixels as stored: forensic traces live there) and
  returned as RGB ``uint8`` HxWx3 whatever the file's mode: gray and palette images are
  expanded, alpha is dropped (not composited), 16-bit images are scaled by 255/65535,
  multi-frame files give their first frame.
- Masks are binarised at 127 (``value > 127``; 16-bit masks at 32767), except integer masks
  whose largest value is 1, which are read as ``value > 0``. Colour masks use the maximum
  over their colour channels.
- Probability maps are single-channel PNGs, 0..255 meaning 0..1 (16-bit: 0..65535).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import MAX_PIXELS
from ..errors import DataError
from ..fileio import write_bytes_atomic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif")

PathLike = str | os.PathLike


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")


def _pil_to_native(im: Image.Image) -> np.ndarray:
    """Pixels of a PIL image as an array in their own depth; palettes expanded, alpha dropped."""
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
    if im.mode in ("LA", "La"):
        im = im.getchannel(0)
    if im.mode in ("RGBA", "RGBa", "RGBX"):
        im = im.convert("RGB")
    if im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    if im.mode == "1":
        return np.asarray(im, dtype=bool).astype(np.uint8) * 255
    return np.array(im)  # a writable copy (np.asarray of a PIL image is read-only)


def _too_large(path: Path, what: str, width: int, height: int) -> DataError:
    return DataError(f"{what} {path} is {width} x {height} = {width * height / 1e6:.0f} megapixels, over the limit of "
                     f"{MAX_PIXELS / 1e6:.0f}; set BPIML_MAX_PIXELS to a larger number of pixels to read it "
                     "(decoding needs about 3 bytes per pixel, more for 16-bit images)")


def _read_native(path: Path, what: str) -> np.ndarray:
    """Decode ``path`` into an array of its native depth (2-D or HxWxC), no EXIF rotation. Images over
    ``MAX_PIXELS`` are refused from their header, before any pixel is decoded."""
    _require_file(path, what)
    try:
        with warnings.catch_warnings():  # our own limit, with our own message, replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise _too_large(path, what, im.width, im.height)
                im.load()  # raises on truncated data instead of returning grey rows
                return _pil_to_native(im)
    except UnidentifiedImageError:
        pass  # e.g. 16-bit colour TIFF, which Pillow cannot decode: OpenCV can
    except DataError:
        raise
    except Image.DecompressionBombError as exc:
        raise DataError(f"{what} {path} is over the limit of {MAX_PIXELS / 1e6:.0f} megapixels ({exc}); set "
                        "BPIML_MAX_PIXELS to read it") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is reported with the file name
        raise DataError(f"cannot read {what} {path}: {exc}") from exc
    try:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:  # OpenCV checks the header against OPENCV_IO_MAX_IMAGE_PIXELS (set in __init__)
        if "MAX_IMAGE_PIXELS" in str(exc):
            raise DataError(f"{what} {path} is over the limit of {MAX_PIXELS / 1e6:.0f} megapixels; set "
                            "BPIML_MAX_PIXELS to read it") from exc
        raise DataError(f"cannot read {what} {path}: {exc}") from exc
    if arr is not None and arr.shape[0] * arr.shape[1] > MAX_PIXELS:  # OpenCV limit raised by the user
        raise _too_large(path, what, arr.shape[1], arr.shape[0])
    if arr is None:
        raise DataError(f"cannot read {what} {path}: not a supported image file")
    if arr.ndim == 3:
        arr = arr[..., :3][..., ::-1] if arr.shape[2] >= 3 else arr[..., 0]
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale any integer or float pixel array to uint8 (16-bit by 255/65535)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        scale = 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(arr) * scale + 0.5, 0, 255).astype(np.uint8)
    # uint16 and 32-bit integer images ("I" mode) are taken to hold 16-bit values.
    wide = np.clip(arr.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


LARGE_PHOTO_PIXELS = 4_000_000  # from this size on, plain 8-bit JPEGs are decoded straight into the result


def _read_large_jpeg(path: Path) -> np.ndarray | None:
    """A large 8-bit RGB / gray JPEG decoded by OpenCV directly into the returned array, in RGB: one copy of
    the pixels instead of Pillow's three (its RGBX buffer, the bytes handed to numpy, the array), 0.7 GB less
    for a 12000 x 9000 photo (OpenCV's own ``imread`` result briefly holds two). Both wrap libjpeg-turbo with
    the same settings, so the pixels are the same (checked in the tests). None when the file is not such a
    JPEG, or may be truncated (no end-of-image marker: OpenCV would fill the missing rows with grey; Pillow
    reports them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format != "JPEG" or im.mode not in ("RGB", "L") or im.width * im.height < LARGE_PHOTO_PIXELS:
                    return None
                if im.width * im.height > MAX_PIXELS:
                    raise _too_large(path, "image", im.width, im.height)
                width, height = im.size
        with open(path, "rb") as handle:
            handle.seek(-2, os.SEEK_END)
            if handle.read(2) != b"\xff\xd9":
                return None
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return None
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    if rgb_flag is not None:  # OpenCV >= 4.11 decodes RGB into our own array: no second copy of the pixels at all
        arr = np.empty((height, width, 3), np.uint8)
        try:
            decoded = cv2.imread(str(path), arr, rgb_flag | cv2.IMREAD_IGNORE_ORIENTATION)
        except (TypeError, cv2.error):
            decoded = None
        if decoded is not None and decoded.shape == arr.shape and np.shares_memory(decoded, arr):
            return arr
    # older OpenCV: its own array (decoding briefly holds a second copy), colour order swapped in place
    arr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None:
        return None
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=arr)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image as RGB uint8 (HxWx3), see the module docstring for the conversions."""
    path = Path(path)
    _require_file(path, "image")
    large = _read_large_jpeg(path)
    if large is not None:
        return large
    arr = _to_uint8(_read_native(path, "image"))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def image_size(path: PathLike, decode_fallback: bool = True) -> tuple[int, int]:
    """(height, width) of an image, read from its header when Pillow knows the format. Other formats are
    decoded to learn their size, unless ``decode_fallback`` is False (untrusted files: the web app), when
    they are refused: a small file can declare a huge image that only decoding would reveal."""
    path = Path(path)
    _require_file(path, "image")
    try:
        with Image.open(path) as im:
            width, height = im.size
            return height, width
    except UnidentifiedImageError:
        if not decode_fallback:
            raise DataError(f"cannot read the size of {path} from its header (not a format this reader knows "
                            "without decoding it)") from None
        return read_image(path).shape[:2]
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read image {path}: {exc}") from exc


def binarise_mask(arr: np.ndarray) -> np.ndarray:
    """Binary mask from a mask's pixels (see module docstring for the rule)."""
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2)
    if arr.dtype == bool:
        return arr.copy()
    peak = float(arr.max()) if arr.size else 0.0
    if np.issubdtype(arr.dtype, np.floating):
        return arr > (0.5 if peak <= 1.0 else 127.0)
    if peak <= 1:
        return arr > 0
    if arr.dtype == np.uint8:
        return arr > 127
    return arr > 32767


def read_mask(
    path: PathLike,
    expected_hw: tuple[int, int] | None = None,
    image_path: PathLike | None = None,
    resize: bool = False,
) -> np.ndarray:
    """Read a ground-truth mask as a bool HxW array.

    If ``expected_hw`` is given and the mask's size differs, raise a :class:`DataError` naming
    both files, or (``resize=True``) resize the mask with nearest neighbour.
    """
    path = Path(path)
    mask = binarise_mask(_read_native(path, "mask"))
    if expected_hw is not None and mask.shape != tuple(expected_hw):
        if not resize:
            other = f" but its image {image_path} is" if image_path else " but expected"
            raise DataError(
                f"mask {path} is {mask.shape[1]}x{mask.shape[0]}{other} {expected_hw[1]}x{expected_hw[0]} "
                "(width x height); pass --resize-masks to resize masks with nearest neighbour"
            )
        mask = cv2.resize(
            mask.astype(np.uint8), (expected_hw[1], expected_hw[0]), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
    return mask


def read_label_map(path: PathLike) -> np.ndarray:
    """Read an integer label map (e.g. BSDS 16-bit segment ids) without changing its values."""
    path = Path(path)
    arr = _read_native(path, "label map")
    if arr.ndim == 3:
        raise DataError(f"label map {path} has {arr.shape[2]} channels; expected a single-channel image")
    return arr.astype(np.int32)


def read_probability_map(path: PathLike) -> np.ndarray:
    """Read a probability map PNG as float32 HxW in [0, 1]."""
    path = Path(path)
    arr = _read_native(path, "probability map")
    if arr.ndim == 3:
        gray = all(np.array_equal(arr[..., 0], arr[..., c]) for c in range(1, min(arr.shape[2], 3)))
        if not gray:
            raise DataError(f"probability map {path} is a colour image; expected one channel (8-bit gray PNG)")
        arr = arr[..., 0]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype == bool:
        return arr.astype(np.float32)
    raise DataError(f"probability map {path} has unsupported pixel type {arr.dtype}; expected 8-bit PNG")


def fit_within(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk (area interpolation) so its longer side is at most ``max_side``, and the scale used."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def encode_png(arr: np.ndarray) -> bytes:
    """PNG bytes of a uint8 gray (HxW) or RGB (HxWx3) array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


BAND_ROWS = 512  # whole-image arithmetic on large maps goes a band of rows at a time: no full-size temporaries


def probability_to_uint8(prob: np.ndarray) -> np.ndarray:
    """Quantise probabilities in [0, 1] to 0..255 (round to nearest)."""
    out = np.empty(prob.shape, np.uint8)
    for row in range(0, max(1, prob.shape[0]), BAND_ROWS):
        band = np.asarray(prob[row:row + BAND_ROWS], dtype=np.float32) * 255.0
        out[row:row + BAND_ROWS] = np.clip(np.rint(band, out=band), 0, 255, out=band)
    return out


def write_probability_map(path: PathLike, prob: np.ndarray) -> Path:
    """Write a float map in [0, 1] as an 8-bit gray PNG, atomically."""
    if prob.ndim != 2:
        raise ValueError(f"probability map must be 2-D, got shape {prob.shape}")
    return write_bytes_atomic(path, encode_png(probability_to_uint8(prob)))


def write_image(path: PathLike, image: np.ndarray) -> Path:
    """Write a uint8 RGB or gray array as PNG (lossless), atomically."""
    return write_bytes_atomic(path, encode_png(image))
