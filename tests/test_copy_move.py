"""Copy-move search: finds copies that are moved, turned or mirrored, leaves photos without copies alone, and
lets the student's map choose the pasted member of a pair."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from boxpromptiml.copy_move import Copies, CopyMoveSettings, find_copies, fuse_copies
from boxpromptiml.copy_move.detector import affine_fit_residual
from boxpromptiml.copy_move.features import patch_features
from boxpromptiml.errors import ConfigError

SOURCE = (slice(40, 100), slice(50, 110))
TARGET = (slice(150, 210), slice(250, 310))


def textured(seed: int = 0, shape: tuple[int, int] = (256, 384)) -> np.ndarray:
    """A photo-like texture with no two places alike."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 1.2)


def copied(transform=lambda block: block, seed: int = 0) -> np.ndarray:
    image = textured(seed)
    image[TARGET] = transform(image[SOURCE].copy())
    return image


def covered(copies: Copies, where: tuple[slice, slice]) -> float:
    """Share of a square that the found regions cover."""
    return float((copies.labels[where] > 0).mean())


@pytest.mark.parametrize("stride", [1, 2], ids=["every patch", "every second patch"])
@pytest.mark.parametrize("transform", [lambda b: b, lambda b: np.rot90(b).copy(), lambda b: b[:, ::-1].copy()],
                         ids=["moved", "turned 90 degrees", "mirrored"])
def test_a_copy_and_its_original_are_found_as_a_pair(transform, stride) -> None:
    copies = find_copies(copied(transform), CopyMoveSettings(stride=stride))
    assert copies.found
    assert covered(copies, SOURCE) > 0.8 and covered(copies, TARGET) > 0.8
    # one pair: the region at the source and the region at the target
    (a, b), = copies.pairs
    assert {int(np.bincount(copies.labels[SOURCE].ravel()).argmax()),
            int(np.bincount(copies.labels[TARGET].ravel()).argmax())} == {a, b}
    # nothing else is marked
    outside = copies.labels > 0
    outside[SOURCE] = False
    outside[TARGET] = False
    assert outside.mean() < 0.02


def test_the_cheaper_search_without_random_tries_still_finds_a_turned_copy() -> None:
    """``random_search=False`` keeps the sorted seeds and the propagation, which are what find copies."""
    cheap = CopyMoveSettings(iterations=1, random_search=False)
    copies = find_copies(copied(lambda b: np.rot90(b).copy()), cheap)
    assert len(copies.pairs) == 1 and covered(copies, SOURCE) > 0.8 and covered(copies, TARGET) > 0.8
    assert not find_copies(textured(seed=3), cheap).found
    assert CopyMoveSettings.from_dict(cheap.to_dict()) == cheap


@pytest.mark.parametrize("stride", [1, 2])
def test_a_photo_without_copies_has_none(stride) -> None:
    for seed in range(3):
        copies = find_copies(textured(seed), CopyMoveSettings(stride=stride))
        assert not copies.found and not copies.labels.any()


def test_a_strided_search_still_gives_every_patch_its_exact_match() -> None:
    """With stride 2 PatchMatch runs on every second patch along each axis, matched against all patches, and every
    patch then takes the best match around it: a copy moved by an odd offset is matched exactly everywhere."""
    from boxpromptiml.copy_move.matching import nearest_neighbour_field

    image = textured(5)
    image[150:210, 251:311] = image[40:100, 50:110]  # moved by (110, 201): odd along the columns
    features, contrast = patch_features(torch.from_numpy(image.mean(axis=2).astype(np.float32)), 8, 5)
    targets, distance = nearest_neighbour_field(features, contrast > 2.0, 16.0, 2, 16, stride=2)
    assert targets.shape == (2, *features.shape[1:]) and distance.shape == features.shape[1:]
    inside = (slice(150, 194), slice(251, 295))  # patches whose whole disc lies in the copy (radius 8)
    rows = torch.arange(features.shape[1])[inside[0]][:, None]
    cols = torch.arange(features.shape[2])[inside[1]][None, :]
    exact = (targets[0][inside] == rows - 110) & (targets[1][inside] == cols - 201)
    assert exact.float().mean() > 0.95 and float(distance[inside][exact].max()) < 1e-6


def test_flat_grey_and_tiny_photos_have_no_copies() -> None:
    assert not find_copies(np.full((200, 300, 3), 128, np.uint8)).found  # every patch matches: none is usable
    assert not find_copies(textured(0)[:, :, 0]).found  # a grey photo is read as it is
    tiny = find_copies(np.zeros((12, 9, 3), np.uint8))
    assert not tiny.found and tiny.labels.shape == (12, 9)


def test_a_large_photo_is_searched_at_the_working_size() -> None:
    small = copied()
    large = cv2.resize(small, (1152, 768), interpolation=cv2.INTER_CUBIC)
    copies = find_copies(large, CopyMoveSettings(work_side=384))
    assert copies.found and copies.labels.shape == (256, 384) and copies.image_shape == (768, 1152)
    probability = np.zeros((768, 1152), np.float32)
    fused = fuse_copies(probability, copies, CopyMoveSettings())
    assert fused.shape == (768, 1152) and fused.max() >= 0.95


def test_rotation_invariant_features() -> None:
    import torch

    grey = torch.from_numpy(textured(1)[:, :, 1].astype(np.float32))
    features, _ = patch_features(grey, radius=8, max_order=5)
    turned, _ = patch_features(torch.rot90(grey, 1, (0, 1)).contiguous(), radius=8, max_order=5)
    # the patch at (r, c) of the photo is the patch at (W-1-c, r) of the photo turned by 90 degrees
    h, w = features.shape[1:]
    assert torch.allclose(features[:, 20, 30], turned[:, w - 1 - 30, 20], atol=1e-3)
    assert features.shape[0] == 12


def test_affine_fit_residual_is_zero_on_an_affine_field_and_large_on_a_random_one() -> None:
    import torch

    rows, cols = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    affine = torch.stack([0.9 * rows + 0.2 * cols + 5, -0.2 * rows + 0.9 * cols + 40])
    usable = torch.ones(20, 30, dtype=torch.bool)
    residual = affine_fit_residual(affine, usable, 2)
    assert torch.all(residual[2:-2, 2:-2] < 1e-3) and torch.isinf(residual[0, 0])
    noisy = affine_fit_residual(torch.rand(2, 20, 30) * 100, usable, 2)
    assert torch.all(noisy[2:-2, 2:-2] > 10)
    usable[10, 10] = False  # a window over an unusable position is no evidence
    assert torch.isinf(affine_fit_residual(affine, usable, 2)[10, 10])


def test_affine_fit_residual_is_the_least_squares_residual_of_each_window() -> None:
    rng = np.random.default_rng(4)
    field = torch.from_numpy(rng.integers(0, 300, (2, 12, 14)).astype(np.int64))
    usable = torch.ones(12, 14, dtype=torch.bool)
    residual = affine_fit_residual(field, usable, 2)
    rows, cols = np.meshgrid(np.arange(-2, 3), np.arange(-2, 3), indexing="ij")
    design = np.stack([np.ones(25), cols.ravel(), rows.ravel()], axis=1)
    for r, c in [(2, 2), (5, 7), (9, 11)]:
        expected = 0.0
        for channel in range(2):
            values = field[channel, r - 2:r + 3, c - 2:c + 3].numpy().ravel().astype(np.float64)
            fit, *_ = np.linalg.lstsq(design, values, rcond=None)
            expected += float(((values - design @ fit) ** 2).sum()) / 25
        assert residual[r, c].item() == pytest.approx(expected, rel=1e-5)


def test_the_student_chooses_the_pasted_member_and_the_rest_is_scaled_down() -> None:
    image = copied()
    copies = find_copies(image)
    probability = np.full(image.shape[:2], 0.6, np.float32)
    probability[TARGET] = 0.4  # the student leans to the target
    probability[SOURCE] = 0.1
    fused = fuse_copies(probability.copy(), copies, CopyMoveSettings(outside_weight=0.5))
    assert fused[TARGET].mean() > 0.9 and fused[SOURCE].max() <= 0.06
    assert np.isclose(fused[0, 0], 0.3)  # elsewhere scaled by outside_weight
    # when the student does not choose, both members are kept
    even = fuse_copies(np.zeros(image.shape[:2], np.float32), copies, CopyMoveSettings())
    assert even[TARGET].mean() > 0.9 and even[SOURCE].mean() > 0.9


def test_no_copy_leaves_the_map_unchanged() -> None:
    probability = np.random.default_rng(0).random((256, 384), dtype=np.float32)
    copies = find_copies(textured(2))
    assert fuse_copies(probability.copy(), copies, CopyMoveSettings()).tolist() == probability.tolist()


def test_settings_are_checked_and_round_trip() -> None:
    settings = CopyMoveSettings(iterations=2)
    assert CopyMoveSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(ConfigError, match="unknown setting"):
        CopyMoveSettings.from_dict({"radious": 3})
    with pytest.raises(ConfigError, match="outside_weight"):
        CopyMoveSettings(outside_weight=2.0)


@pytest.fixture(scope="module")
def model_with_copy_search(tmp_path_factory):
    """A random student saved with a copy_move.json beside it."""
    import torch

    from boxpromptiml.deployment.predictor import COPY_MOVE_FILE
    from boxpromptiml.student.model import StudentConfig, build_student
    from boxpromptiml.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_student(StudentConfig(encoder="efficientnet_lite0", encoder_init="random", input_size=64))
    folder = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best", model, {"epoch": 0})
    (folder / COPY_MOVE_FILE).write_text(json.dumps(CopyMoveSettings(outside_weight=0.0).to_dict()))
    return folder


def test_a_model_with_copy_move_settings_marks_the_copy(model_with_copy_search, tmp_path) -> None:
    from PIL import Image

    from boxpromptiml.cli import main
    from boxpromptiml.deployment.predictor import load_predictor

    image = copied()
    predictor = load_predictor(model_with_copy_search, backend="torch")
    assert predictor.copy_move is not None and predictor.describe()["copy_move"]["outside_weight"] == 0.0
    prediction = predictor.predict(image)
    assert prediction.probability[TARGET].mean() > 0.9 or prediction.probability[SOURCE].mean() > 0.9
    outside = np.ones(image.shape[:2], bool)
    for where in (SOURCE, TARGET):  # with the margin a region may grow by (its edge patches reach past it)
        outside[where[0].start - 10:where[0].stop + 10, where[1].start - 10:where[1].stop + 10] = False
    assert prediction.probability[outside].max() < 0.5  # outside_weight 0: the rest of the map is cleared
    assert prediction.score >= 0.99  # a found copy is a finding (copy_score)
    plain = load_predictor(model_with_copy_search, backend="torch", copy_move=False)
    assert plain.copy_move is None and plain.describe()["copy_move"] == "off"
    assert plain.predict(image).probability[TARGET].mean() < 0.9
    # the CLI switch
    Image.fromarray(image).save(tmp_path / "copy.png")
    for flag, out in (([], "on"), (["--no-copy-move"], "off")):
        assert main(["predict", str(tmp_path / "copy.png"), "--model", str(model_with_copy_search), "--backend",
                     "torch", "-o", str(tmp_path / out), *flag]) == 0
    on = np.asarray(Image.open(tmp_path / "on" / "copy.png"))
    off = np.asarray(Image.open(tmp_path / "off" / "copy.png"))
    assert on[TARGET].mean() > 200 or on[SOURCE].mean() > 200
    assert off[TARGET].mean() < 200 and off[SOURCE].mean() < 200


class _Tracked(np.ndarray):
    """An ndarray that can be watched with a weak reference (plain ndarrays cannot)."""


def test_a_handed_over_photo_is_freed_before_the_search_and_gives_the_same_prediction(model_with_copy_search,
                                                                                      monkeypatch) -> None:
    """``predict_handed`` frees the photo once the network and the search's shrunk copy are made from it: a huge
    photo (above LEAN_PIXELS, lowered here) is not held beside its map while the search (and numba's first load)
    runs, even with threads to spare. Same map as ``predict``."""
    import weakref

    from boxpromptiml.deployment import predictor as predictor_module
    from boxpromptiml.deployment.predictor import load_predictor

    predictor = load_predictor(model_with_copy_search, backend="torch")
    predictor.threads = 2
    monkeypatch.setattr(predictor_module, "LEAN_PIXELS", 100_000)
    image = cv2.resize(copied(), (768, 512), interpolation=cv2.INTER_CUBIC)  # larger than the working size
    expected = predictor.predict(image)
    photo = [image.copy().view(_Tracked)]
    watched = weakref.ref(photo[0])
    alive_during_search = []
    search = predictor_module.find_copies_in_working_copy

    def watching_search(*args, **kwargs):
        alive_during_search.append(watched() is not None)
        return search(*args, **kwargs)

    monkeypatch.setattr(predictor_module, "find_copies_in_working_copy", watching_search)
    handed = predictor.predict_handed(photo)
    assert photo == [] and alive_during_search == [False] and watched() is None
    assert np.array_equal(handed.probability, expected.probability) and handed.score == expected.score
    assert handed.probability.max() >= 0.95  # the copy was found and marked


def test_the_search_runs_beside_the_network_when_the_predictor_has_threads_to_spare(model_with_copy_search,
                                                                                   monkeypatch) -> None:
    """With more than one thread the search runs in its own thread while the network runs (one photo on two cores:
    the search is mostly one thread's work); with one (a process of ``--processes N``) it runs in the caller's.
    The prediction is the same either way."""
    import threading

    from boxpromptiml.deployment import predictor as predictor_module
    from boxpromptiml.deployment.predictor import load_predictor

    predictor = load_predictor(model_with_copy_search, backend="torch")
    search = predictor_module.find_copies_in_working_copy
    searched_in = []

    def recording_search(*args, **kwargs):
        searched_in.append(threading.current_thread().name)
        return search(*args, **kwargs)

    monkeypatch.setattr(predictor_module, "find_copies_in_working_copy", recording_search)
    image = copied()
    predictions = []
    for threads in (1, 2):
        predictor.threads = threads
        predictions.append(predictor.predict(image))
    assert searched_in[0] == threading.current_thread().name and searched_in[1].startswith("bpiml-copy-move")
    assert np.array_equal(predictions[0].probability, predictions[1].probability)
    assert predictions[0].score == predictions[1].score and predictions[0].probability.max() >= 0.95


def test_a_broken_copy_move_file_is_a_clear_error(model_with_copy_search, tmp_path) -> None:
    import shutil

    from boxpromptiml.deployment.predictor import COPY_MOVE_FILE, load_predictor

    folder = tmp_path / "model"
    shutil.copytree(model_with_copy_search, folder)
    for text, message in (("{not json", "invalid JSON"), ("[1, 2]", "JSON object"), ('{"radius": 1}', "radius"),
                          ('{"sides": 3}', "unknown setting")):
        (folder / COPY_MOVE_FILE).write_text(text)
        with pytest.raises(ConfigError, match=message) as error:
            load_predictor(folder, backend="torch")
        assert COPY_MOVE_FILE in str(error.value)
    # asked to leave the search out, the model loads whatever the file says
    assert load_predictor(folder, backend="torch", copy_move=False).copy_move is None


def test_a_float16_map_of_a_large_photo_is_fused_in_place() -> None:
    """Photos over 40 MP are predicted into float16 maps (student/inference.py); the fusion keeps them so."""
    small = copied()
    copies = find_copies(small)
    scaled = Copies(copies.labels, copies.pairs, (1024, 1536))  # as if found on a photo 4x the size
    probability = np.zeros((1024, 1536), np.float16)
    fused = fuse_copies(probability, scaled, CopyMoveSettings())
    assert fused is probability and fused.dtype == np.float16
    assert fused[600:840, 1000:1240].mean() > 0.9 or fused[160:400, 200:440].mean() > 0.9


@pytest.mark.parametrize("photo_shape", [(1001, 1777), (1535, 1023), (256, 384)])
def test_the_fusion_marks_the_rows_a_full_size_resize_of_the_mask_gives(photo_shape) -> None:
    # the mask is brought to the photo's size a band of rows at a time (memory); every pixel must be as if the whole
    # mask had been resized at once
    labels = np.zeros((255, 383), np.int32)
    labels[50:90, 60:190] = 1
    labels[130:170, 200:330] = 2
    labels[np.random.default_rng(0).random(labels.shape) < 0.01] = 2
    copies = Copies(labels, [(1, 2)], photo_shape)
    settings = CopyMoveSettings()
    probability = np.random.default_rng(1).random(photo_shape).astype(np.float32)
    inside = cv2.resize(copies.region_mask({1, 2}).astype(np.uint8), photo_shape[::-1],
                        interpolation=cv2.INTER_NEAREST).astype(bool)  # a tie: both members stay marked
    expected = np.where(inside, np.maximum(probability, settings.copy_probability),
                        probability * settings.outside_weight).astype(np.float32)
    np.testing.assert_array_equal(fuse_copies(probability.copy(), copies, settings), expected)


@pytest.mark.parametrize("shape", [(288, 384), (40, 23), (17, 17), (16, 30)])
def test_window_means_equal_torch_average_pooling_bit_for_bit(shape) -> None:
    """The features' window means replace torch's avg_pool2d: the search is chaotic on ambiguous patches, so they
    must agree to the last bit, not just closely (grey levels, their squares and arbitrary floats)."""
    from boxpromptiml.copy_move.loops import window_means

    generator = torch.Generator().manual_seed(sum(shape))
    grey = torch.rand(shape, generator=generator) * 255
    for values in (grey.round(), grey * grey, grey):
        expected = torch.nn.functional.avg_pool2d(values[None, None], 17, stride=1)[0, 0] if min(shape) >= 17 \
            else torch.empty(max(shape[0] - 16, 0), max(shape[1] - 16, 0))
        assert np.array_equal(window_means(values.numpy(), 17), expected.numpy())


def _squared_distance_in_documented_order(gathered: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """The fused search's distance, written with whole-column torch operations: twelve squares added in the order
    of MKL's AVX2 kernel (see loops.squared_distance)."""
    s = (gathered - sources).square().unbind(1)
    head = (((s[0] + s[1]) + s[2]) + s[3]) + s[4]
    return ((head + s[8]) + (s[6] + s[10])) + ((s[5] + s[9]) + (s[7] + s[11]))


def test_the_fused_field_keeps_the_better_of_its_match_and_a_candidate_like_whole_array_operations() -> None:
    """Every source of the fused loop: candidates moved inside the field, too-near ones refused, the strictly
    better one kept; compared with the same steps in whole-array torch operations."""
    from boxpromptiml.copy_move.matching import _Field

    height, width, min_squared = 30, 41, 256
    generator = torch.Generator().manual_seed(7)
    table = torch.rand(height * width, 12, generator=generator) * 3
    table[::5] = 1.0e4  # unusable patches
    rows = torch.arange(height, dtype=torch.int32).repeat_interleave(width)
    cols = torch.arange(width, dtype=torch.int32).repeat(height)
    field = _Field(table, height, width, rows, cols, (height, width), min_squared)

    def offsets() -> tuple[torch.Tensor, torch.Tensor]:  # some point outside, some too near
        return (torch.randint(-height, height, (height * width,), generator=generator, dtype=torch.int32),
                torch.randint(-width, width, (height * width,), generator=generator, dtype=torch.int32))

    def expected_cost(offset_rows, offset_cols):
        offset_rows = torch.clamp(offset_rows, -rows, height - 1 - rows)
        offset_cols = torch.clamp(offset_cols, -cols, width - 1 - cols)
        gathered = table[(rows + offset_rows) * width + cols + offset_cols]
        cost = _squared_distance_in_documented_order(gathered, table)
        return offset_rows, offset_cols, cost.masked_fill(offset_rows ** 2 + offset_cols ** 2 < min_squared, np.inf)

    start = offsets()
    field.start(*start)
    kept_rows, kept_cols, kept = expected_cost(*start)
    assert torch.equal(field.offset_rows, kept_rows) and torch.equal(field.best, kept)
    assert torch.isinf(kept).any() and start[0].abs().max() > height - 1  # both cases were exercised
    for _ in range(5):
        candidate = offsets()
        field.consider(*candidate)
        rows_now, cols_now, cost = expected_cost(*candidate)
        better = cost < kept
        kept_rows, kept_cols = torch.where(better, rows_now, kept_rows), torch.where(better, cols_now, kept_cols)
        kept = torch.where(better, cost, kept)
        assert torch.equal(field.offset_rows, kept_rows) and torch.equal(field.offset_cols, kept_cols)
        assert torch.equal(field.best, kept)


def test_the_loops_compile_without_a_cache_where_none_can_be_written(monkeypatch) -> None:
    """numba refuses to cache when neither the package folder nor the user's cache folder is writable; the search
    then compiles its loops in each process instead of failing to import."""
    import numba

    from boxpromptiml.copy_move import loops

    real_njit = numba.njit
    asked = []

    def njit_without_a_place_to_cache(*args, **options):
        asked.append(options.get("cache", False))
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
        return real_njit(*args, **options)

    monkeypatch.setattr(numba, "njit", njit_without_a_place_to_cache)

    def doubled(values):
        return values * 2

    compiled = loops.compiled()(doubled)
    assert asked == [True, False]
    assert np.array_equal(compiled(np.arange(3)), [0, 2, 4])
