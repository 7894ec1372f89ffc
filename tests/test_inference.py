"""Native-resolution prediction: padding, tiling and shapes; residual filters; the ONNX round trip."""

import numpy as np
import pytest
import torch

from boxpromptiml.student.inference import (
    Prediction,
    pad_to_multiple,
    predict_image,
    predict_native,
    tile_end,
    tile_side,
    tile_starts,
    torch_runner,
)
from boxpromptiml.student.model import StudentConfig, build_student
from boxpromptiml.student.residual import BayarConv, SRMFilter, srm_kernels


def _echo_runner(calls):
    """A fake network whose 'probability' is the red channel, so the output can be checked exactly."""

    def run(images):
        calls.append(tuple(images.shape))
        assert images.shape[-1] % 32 == 0 and images.shape[-2] % 32 == 0
        return images[:, :1].clone(), None

    return run


def test_pad_to_multiple():
    assert pad_to_multiple(np.ones((33, 64, 3))).shape == (64, 64, 3)
    assert pad_to_multiple(np.ones((64, 64))).shape == (64, 64)


@pytest.mark.parametrize("shape", [(100, 150), (256, 384), (333, 517)])
def test_native_prediction_keeps_the_pixels(shape):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    calls = []
    prob, score = predict_native(_echo_runner(calls), image, max_side=1024)
    assert prob.shape == shape and score is None and len(calls) == 1
    np.testing.assert_allclose(prob, image[..., 0] / 255.0, atol=1e-6)


def test_tiles_cover_large_images_and_blend_back_exactly():
    image = np.random.default_rng(1).integers(0, 256, (300, 700, 3), dtype=np.uint8)
    calls = []
    prob, _ = predict_native(_echo_runner(calls), image, max_side=128, overlap=32)
    assert prob.shape == (300, 700) and len(calls) > 4
    assert max(max(c[-2:]) for c in calls) <= 128  # no tile is larger than max_side, nor padded beyond it
    np.testing.assert_allclose(prob, image[..., 0] / 255.0, atol=1e-5)  # a per-pixel weighted mean of equal values
    starts = tile_starts(700, 128, 32)
    assert starts[0] == 0 and starts[-1] == 576  # 700 - 128 = 572, up to the JPEG block grid: the last tile is 124
    assert all(s % 8 == 0 for s in starts)  # every tile keeps the photo's 8x8 block grid
    assert all(128 - 32 - 8 <= b - a <= 128 - 32 for a, b in zip(starts, starts[1:], strict=False))  # even steps


@pytest.mark.parametrize("length", [1025, 1080, 1920, 3000, 4000, 9000, 12000])
@pytest.mark.parametrize("largest", [512, 1024, 2048])
def test_tile_plan_uses_the_fewest_tiles_of_one_size(length, largest):
    overlap = 64
    side = tile_side(length, largest, overlap)
    starts = tile_starts(length, side, overlap)
    ends = [tile_end(s, starts, length, side) for s in starts]
    if length <= largest:
        assert starts == [0] and side == length
        return
    assert side % 32 == 0 and side <= largest
    assert starts[0] == 0 and ends[-1] == length and all(s % 8 == 0 for s in starts)
    assert all(side - 7 <= e - s <= side for s, e in zip(starts, ends, strict=True))  # one padded input shape
    assert all(e - s2 >= overlap - 8 for s2, e in zip(starts[1:], ends, strict=False))  # neighbours overlap
    fewest = -(-(length - overlap) // (largest - overlap))
    assert len(starts) == fewest


def test_very_large_photos_use_small_tiles_and_a_half_precision_map(monkeypatch):
    import boxpromptiml.student.inference as inference

    monkeypatch.setattr(inference, "LEAN_PIXELS", 200 * 600 - 1)
    monkeypatch.setattr(inference, "LEAN_TILE", 64)
    image = np.random.default_rng(2).integers(0, 256, (200, 600, 3), dtype=np.uint8)
    calls = []
    prob, _ = predict_native(_echo_runner(calls), image, max_side=256, overlap=16)
    assert prob.dtype == np.float16 and prob.shape == (200, 600)
    assert max(max(c[-2:]) for c in calls) <= 64
    np.testing.assert_allclose(prob.astype(np.float32), image[..., 0] / 255.0, atol=2e-3)
    config = StudentConfig(resolution="native", max_side=256)
    prediction = predict_image(_echo_runner([]), config, image)
    assert prediction.probability.dtype == np.float16 and float(prediction.probability.max()) <= 1.0


@pytest.mark.parametrize("resolution", ["resize", "native"])
def test_student_prediction_shapes(resolution):
    model = build_student(StudentConfig(input_size=64, resolution=resolution, max_side=128, encoder_init="random"))
    image = np.random.default_rng(2).integers(0, 256, (90, 200, 3), dtype=np.uint8)
    prediction = predict_image(torch_runner(model), model.config, image)
    assert isinstance(prediction, Prediction) and prediction.probability.shape == (90, 200)
    assert prediction.probability.dtype == np.float32 and 0 <= prediction.probability.min() <= 1


def test_srm_kernels_remove_smooth_content():
    kernels = srm_kernels()
    assert kernels.shape == (3, 1, 5, 5)
    torch.testing.assert_close(kernels.sum(dim=(1, 2, 3)), torch.zeros(3))  # flat areas give zero residual
    ramp = torch.linspace(0, 255, 32).repeat(1, 3, 32, 1)
    residual = SRMFilter()(ramp)[..., 4:-4, 4:-4]
    assert residual.abs().max() < 1e-4  # linear gradients vanish too (second-order kernels)
    noisy = ramp + torch.randn_like(ramp) * 5
    assert SRMFilter()(noisy).abs().mean() > 0.1


def test_bayar_constraint_holds_after_any_update():
    conv = BayarConv()
    with torch.no_grad():
        conv.weight.add_(torch.randn_like(conv.weight))
    weight = conv.constrained_weight()
    centre = weight[..., 2, 2]
    torch.testing.assert_close(centre, -torch.ones_like(centre))
    torch.testing.assert_close(weight.sum(dim=(2, 3)), torch.zeros(3, 3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("residual", ["srm", "bayar"])
def test_residual_branch_stays_light(residual):
    plain = build_student(StudentConfig(encoder_init="random"))
    model = build_student(StudentConfig(encoder_init="random", residual=residual))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0 < count(model) - count(plain) < 100_000
    assert model(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)


def test_native_onnx_export_takes_any_multiple_of_32(tmp_path):
    pytest.importorskip("onnxruntime")
    from boxpromptiml.deployment.export import export_onnx
    from boxpromptiml.deployment.predictor import Predictor

    model = build_student(StudentConfig(input_size=64, resolution="native", residual="srm", encoder_init="random"))
    error = export_onnx(model, tmp_path / "m.onnx")
    assert error is not None and error < 1e-4
    predictor = Predictor.from_onnx(tmp_path / "m.onnx")
    assert predictor.config == model.config
    image = np.random.default_rng(3).integers(0, 256, (70, 130, 3), dtype=np.uint8)
    got = predictor.predict(image).probability
    expected = Predictor.from_student(model).predict(image).probability
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_default_tile_side_is_2048_and_1024_with_the_self_similarity_branch():
    assert StudentConfig().max_side == 2048
    assert StudentConfig(self_similarity=True).max_side == 1024  # its cost grows with the square of the positions
    assert StudentConfig(self_similarity=True, max_side=512).max_side == 512  # a value given is kept
    assert StudentConfig.from_dict(StudentConfig().to_dict()) == StudentConfig()  # saved resolved, read back same
