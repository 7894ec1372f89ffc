"""The JPEG compression-history branch: the transform matches JPEG's, a region with another history stands out,
the branch survives bf16 and ONNX, and training keeps the block grid it reads."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from boxpromptiml.errors import ConfigError
from boxpromptiml.student.compression import JPEGGhost, dct_basis, quantisation_table
from boxpromptiml.student.config import StudentConfig
from boxpromptiml.student.model import build_student
from boxpromptiml.training.augment import native_crop
from boxpromptiml.training.config import load_config


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _texture(size: int = 256, seed: int = 0) -> np.ndarray:
    """A smooth random texture (grey, so that luma is the image) with JPEG-like content at all frequencies."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (size // 4, size // 4)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(noise).resize((size, size), Image.BICUBIC))
    grey = np.clip(128 + 40 * smooth + rng.normal(0, 4, (size, size)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0


def test_dct_is_orthonormal_and_tables_scale_as_libjpeg():
    basis = dct_basis().flatten(1)
    torch.testing.assert_close(basis @ basis.T, torch.eye(64), atol=1e-5, rtol=0)
    assert quantisation_table(50)[0] == 16 and quantisation_table(75)[0] == 8 and quantisation_table(100).max() == 1
    with pytest.raises(ValueError):
        quantisation_table(0)


@pytest.mark.parametrize("quality", [60, 75, 90])
def test_a_jpeg_re_quantises_with_least_error_at_its_own_quality(quality):
    image = _jpeg(_texture(), quality)
    qualities = tuple(range(50, 100, 5))
    errors = JPEGGhost(qualities).errors(_tensor(image)).mean(dim=(0, 2, 3))
    own = qualities.index(quality)
    assert errors[own] < 0.2  # only the decoder's rounding to whole pixels is left
    assert errors[own] < 0.2 * errors[own - 1]  # a coarser table does not fit (finer tables may, at multiples)


def test_a_pasted_region_with_another_history_stands_out():
    """A copy-move at an offset off the 8-pixel grid, saved again at a finer quality: its blocks no longer
    re-quantise cleanly at the photo's first quality, the rest of the photo does."""
    first = _jpeg(_texture(seed=1), 60)
    forged = first.copy()
    forged[96:160, 96:160] = first[13:77, 21:85]  # offsets 13, 21: off the block grid
    saved = _jpeg(forged, 95)
    ghost = JPEGGhost((60, 95))(_tensor(saved))[0, 0]  # B x Q x 32 x 32, centred on the image
    inside = ghost[13:19, 13:19]  # blocks wholly inside the pasted square (pixels 104-152)
    outside = torch.cat([ghost[:10].flatten(), ghost[22:].flatten()])
    assert inside.mean() > outside.mean() + 1.0
    assert (inside.flatten() > outside.quantile(0.9)).float().mean() > 0.9


def test_the_ghost_is_centred_per_image_so_the_table_alone_says_nothing():
    ghost = JPEGGhost()(_tensor(_jpeg(_texture(seed=2), 80)))
    torch.testing.assert_close(ghost.mean(dim=(2, 3)), torch.zeros(1, ghost.shape[1]), atol=1e-5, rtol=0)


def test_the_ghost_errors_are_the_mean_square_re_quantisation_error_of_every_block_and_quality():
    # the branch takes its means one quality at a time (fast in OpenVINO); the plain definition, all qualities at
    # once over the coefficient axis, must give the same float32 sums bit for bit: shipped weights were trained on it
    image = _tensor(_jpeg(_texture(seed=4), 75))
    ghost = JPEGGhost()
    luma = (image * 255.0 * ghost.luma).sum(dim=1, keepdim=True) - 128.0
    coefficients = torch.nn.functional.conv2d(luma, dct_basis(), stride=8)[:, None]  # B x 1 x 64 x h x w
    steps = torch.stack([quantisation_table(q) for q in (50, 60, 70, 75, 80, 85, 90, 95)])[None, :, :, None, None]
    expected = (coefficients - torch.round(coefficients / steps) * steps).square().mean(dim=2)
    got = ghost.errors(image)
    assert got.shape == (1, 8, 32, 32)
    assert torch.equal(got, expected)


def test_the_ghost_is_computed_in_float32_under_bf16_autocast():
    image = _tensor(_jpeg(_texture(seed=3), 70))
    ghost = JPEGGhost()
    expected = ghost.errors(image)
    with torch.autocast("cpu", torch.bfloat16):
        got = ghost.errors(image)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)


def test_student_with_the_branch_builds_light_and_exports_to_onnx(tmp_path):
    plain = build_student(StudentConfig(encoder_init="random", resolution="native"))
    model = build_student(StudentConfig(encoder_init="random", resolution="native", compression_traces=True))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0 < count(model) - count(plain) < 60_000
    assert model(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)
    pytest.importorskip("onnxruntime")
    from boxpromptiml.deployment.export import export_onnx
    from boxpromptiml.deployment.predictor import Predictor

    model.eval()
    error = export_onnx(model, tmp_path / "m.onnx")
    assert error is not None and error < 1e-4
    image = _jpeg(_texture(128, seed=4), 80)[:, :120]
    got = Predictor.from_onnx(tmp_path / "m.onnx").predict(image).probability
    np.testing.assert_allclose(got, Predictor.from_student(model).predict(image).probability, atol=1e-4)


def test_the_branch_needs_native_resolution_the_block_grid_and_no_colour_jitter():
    with pytest.raises(ConfigError, match="native"):
        StudentConfig(compression_traces=True)
    native = ["student.resolution=native", "student.compression_traces=true"]
    with pytest.raises(ConfigError, match="crop_grid"):
        load_config(overrides=[*native, "augment.colour=0"])
    with pytest.raises(ConfigError, match="colour"):
        load_config(overrides=[*native, "augment.crop_grid=8"])
    assert load_config(overrides=[*native, "augment.colour=0", "augment.crop_grid=16"]).student.compression_traces


def test_native_crops_start_on_the_grid_asked_for():
    rows, cols = np.mgrid[0:300, 0:421]
    rng = np.random.default_rng(0)
    target = np.zeros((300, 421), np.float32)
    target[200:230, 350:380] = 1  # focus crops centre on it, then snap to the grid
    for _ in range(50):
        crop_rows, _, crop_cols = native_crop([rows, target, cols], 128, rng, grid=8)
        assert crop_rows.shape == (128, 128)
        assert crop_rows[0, 0] % 8 == 0 and crop_cols[0, 0] % 8 == 0


def test_fine_tuning_a_model_with_the_branch_keeps_its_augmentation_valid(tmp_path):
    from boxpromptiml.training.checkpoint import save_checkpoint
    from boxpromptiml.training.init_from import adopt_init_architecture

    model = build_student(StudentConfig(encoder_init="random", resolution="native", compression_traces=True))
    folder = save_checkpoint(tmp_path / "model", model, {"epoch": 0})
    config = adopt_init_architecture(load_config(overrides=[f"optim.init={folder}"]))  # default augment: jitter
    assert config.student.compression_traces and config.augment.colour == 0 and config.augment.crop_grid == 8
