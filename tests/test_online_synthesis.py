"""On-the-fly forgeries: seeded, exact masks, shapes of the requested size, mixed into training."""

import numpy as np
import pytest

from boxpromptiml.synthesis.online import (
    SHAPES,
    OnlineSynthesisConfig,
    forge_online,
    object_region,
    random_region,
    trace_history,
)


def _photo(seed, shape=(120, 160)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    smooth = np.stack([np.sin(xx / 9 + seed), np.cos(yy / 7), np.sin((xx + yy) / 13)], axis=2) * 80 + 128
    return np.clip(smooth + rng.normal(0, 3, (*shape, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", SHAPES)
def test_regions_have_the_requested_kind_and_size(shape):
    for seed in range(5):
        region = random_region((200, 300), np.random.default_rng(seed), shape, (0.02, 0.05))
        assert region.dtype == bool and 16 <= region.sum() <= 0.25 * region.size
    with pytest.raises(ValueError):
        random_region((50, 50), np.random.default_rng(0), "star")


def test_same_seed_same_forgery():
    host, donor = _photo(0), _photo(1)
    a = forge_online(host, donor, np.random.default_rng(7))
    b = forge_online(host, donor, np.random.default_rng(7))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.record == b.record


@pytest.mark.parametrize("kind", ["splice", "copy_move", "removal"])
def test_the_mask_is_exactly_where_pixels_changed(kind):
    config = OnlineSynthesisConfig(kind_weights={kind: 1.0}, final_jpeg=0.0, trace_jpeg=1.0)
    host, donor = _photo(2), _photo(3)
    for seed in range(4):
        forgery = forge_online(host, donor, np.random.default_rng(seed), config)
        changed = np.any(forgery.image != host, axis=2)
        assert forgery.mask.any() and forgery.record["kind"] == kind
        assert not (changed & ~forgery.mask).any(), "no pixel outside the mask may change"
        assert changed[forgery.mask].mean() > 0.5, "most of the masked pixels differ from the host"


def _objects_photo(seed, shape=(120, 160)):
    """A photo with a few flat-coloured 'objects' on a textured background."""
    photo = _photo(seed, shape)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        y, x = rng.integers(10, shape[0] - 40), rng.integers(10, shape[1] - 50)
        photo[y:y + 30, x:x + 40] = rng.integers(0, 255, 3)
    return photo


def test_object_regions_follow_segments_of_the_photo():
    photo = _objects_photo(5)
    region = object_region(photo, np.random.default_rng(0), (0.03, 0.2))
    assert region is not None and region.dtype == bool and region.shape == photo.shape[:2]
    assert 0.03 * region.size * 0.8 <= region.sum() <= 0.2 * region.size * 1.2
    assert object_region(np.zeros((60, 80, 3), np.uint8), np.random.default_rng(0), (0.01, 0.2)) is None


@pytest.mark.parametrize("kind", ["splice", "copy_move"])
def test_object_shaped_forgeries_are_seeded_and_exact(kind):
    config = OnlineSynthesisConfig(kind_weights={kind: 1.0}, final_jpeg=0.0, trace_jpeg=1.0, object_share=1.0)
    host, donor = _objects_photo(6), _objects_photo(7)
    shapes = set()
    for seed in range(4):
        forgery = forge_online(host, donor, np.random.default_rng(seed), config)
        again = forge_online(host, donor, np.random.default_rng(seed), config)
        np.testing.assert_array_equal(forgery.image, again.image)
        changed = np.any(forgery.image != host, axis=2)
        assert not (changed & ~forgery.mask).any()
        shapes.add(forgery.record["shape"])
    assert "object" in shapes


def test_trace_history_changes_traces_not_content():
    photo = _photo(4)
    config = OnlineSynthesisConfig(trace_jpeg=1.0, trace_resample=1.0, trace_noise=1.0, trace_blur=0.0)
    processed = trace_history(photo, config, np.random.default_rng(0))
    difference = np.abs(processed.astype(int) - photo.astype(int))
    assert processed.shape == photo.shape and 0.5 < difference.mean() < 15


def test_training_mixes_fresh_forgeries(toy_dataset):
    from boxpromptiml.training.config import Supervision, TrainSource
    from boxpromptiml.training.data import SYNTHETIC, EpochSampler, TrainingSet, collect_items

    items = collect_items((TrainSource(str(toy_dataset.source)),), Supervision.FULL)
    photos = [s.image for s in toy_dataset.authentic]
    dataset = TrainingSet(items, Supervision.FULL, 64, None, seed=0, native=True, photos=photos)
    keys = list(EpochSampler(len(items), 40, seed=0, synthetic_fraction=0.5))
    synthetic = [k for k in keys if k[2] == SYNTHETIC]
    assert 10 <= len(synthetic) <= 30
    sample = dataset[synthetic[0]]
    assert sample["label"] == 1 and sample["target"].shape == (1, 64, 64) and sample["target"].max() <= 1
    again = dataset[synthetic[0]]
    assert (sample["image"] == again["image"]).all() and (sample["target"] == again["target"]).all()
