"""Synthesis: each forgery kind changes exactly the pixels its mask marks, the BSDS fix-up, and
the full `bpiml synthesize` output on a tiny generated BSDS-style folder (no shared data)."""

import json

import numpy as np
import pytest

from boxpromptiml.cli import main
from boxpromptiml.data import load_dataset, read_image, read_mask
from boxpromptiml.data.bsds import SegmentedImage, aligned_label_map
from boxpromptiml.data.coco import read_coco_boxes
from boxpromptiml.data.degrade import gaussian_blur, gaussian_noise, jpeg_recompress, limit_long_side, rescale
from boxpromptiml.data.images import write_image
from boxpromptiml.data.toy import random_blob, random_texture
from boxpromptiml.errors import ConfigError, DataError
from boxpromptiml.synthesis import PasteParams, SynthesisConfig, copy_move, pick_region, remove, splice, synthesize

RNG_SEED = 3


def _scene(seed: int, height: int = 120, width: int = 160):
    rng = np.random.default_rng(seed)
    image = random_texture(rng, height, width)
    labels = np.zeros((height, width), np.int32)
    for k in range(1, 4):  # objects: each segment has its own texture, so its edges are image edges
        blob = random_blob(rng, height, width)
        labels[blob] = k
        image[blob] = random_texture(rng, height, width)[blob]
    return image, labels


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=2)


@pytest.mark.parametrize("kind", ["splice", "copy_move", "removal"])
def test_each_forgery_changes_only_its_mask(kind):
    image, labels = _scene(0)
    donor, _ = _scene(1)
    rng = np.random.default_rng(RNG_SEED)
    region = pick_region(labels, rng, 0.01, 0.3, 1)
    assert region is not None and region.any()
    no_feather = PasteParams(feather_probability=0.0, colour_match_probability=0.5)
    forgery = {
        "splice": lambda: splice(image, donor, region, rng, no_feather),
        "copy_move": lambda: copy_move(image, region, rng, no_feather),
        "removal": lambda: remove(image, region, rng),
    }[kind]()
    assert forgery is not None
    assert forgery.image.shape == image.shape and forgery.image.dtype == np.uint8
    assert forgery.mask.shape == image.shape[:2] and forgery.mask.any()
    changed = _changed(forgery.image, image)
    assert not (changed & ~forgery.mask).any()  # nothing changed outside the mask
    assert changed[forgery.mask].mean() > 0.5  # and most of the mask really changed


def test_pick_region_respects_the_area_limits():
    _, labels = _scene(2)
    rng = np.random.default_rng(0)
    for _ in range(10):
        region = pick_region(labels, rng, 0.01, 0.2, 2)
        if region is not None:
            assert 0.01 <= region.mean() <= 0.2
    assert pick_region(np.zeros((50, 50), np.int32), rng, 0.01, 0.2, 1) is None  # one segment = whole image


def test_degradations_keep_masks_aligned_and_really_degrade():
    image, labels = _scene(4)
    mask = labels == 1
    small, small_mask = rescale(image, 0.5, mask)
    assert small.shape[:2] == small_mask.shape == (60, 80) and small_mask.dtype == bool
    assert abs(small_mask.mean() - mask.mean()) < 0.02
    big = np.zeros((100, 400, 3), np.uint8)
    assert limit_long_side(big, 200)[0].shape == (50, 200, 3)
    assert limit_long_side(big, 1000)[0] is big
    assert (jpeg_recompress(image, 50) != image).any()
    assert gaussian_blur(image, 5).std() < image.std()
    noisy = gaussian_noise(image, 10.0, np.random.default_rng(0))
    assert 5 < np.abs(noisy.astype(float) - image).mean() < 12
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(image, 4)


def test_quarter_turned_label_maps_are_turned_back(tmp_path):
    image, labels = _scene(5)
    turned = np.ascontiguousarray(np.rot90(labels, 1))  # stored portrait, as in the shared BSDS copy
    write_image(tmp_path / "seg.png", turned.astype(np.uint16))
    item = SegmentedImage(tmp_path / "img.png", tmp_path / "seg.png", "train")
    np.testing.assert_array_equal(aligned_label_map(item, image), labels)
    with pytest.raises(DataError, match="seg.png.*img.png"):
        aligned_label_map(item, image[:50])


def _fake_bsds(root, n_per_split: int = 4):
    for s, split in enumerate(("train", "val", "test")):
        for i in range(n_per_split):
            image, labels = _scene(100 * s + i)
            write_image(root / "images" / split / f"{split}{i}.png", image)
            write_image(root / "segments" / split / f"{split}{i}.png", labels.astype(np.uint16))
    return root


def test_synthesize_writes_a_readable_reproducible_dataset(tmp_path):
    bsds = _fake_bsds(tmp_path / "bsds")
    config = SynthesisConfig(n_tampered=9, n_authentic=3)
    dataset = synthesize(bsds, tmp_path / "a", config, ("train", "val"))
    assert len(dataset.tampered) == 9 and len(dataset.authentic) == 3
    for sample in dataset.tampered:
        image, mask = read_image(sample.image), read_mask(sample.mask)
        assert mask.shape == image.shape[:2] and mask.any()
    boxes = read_coco_boxes(tmp_path / "a" / "boxes.json")
    assert sum(1 for b in boxes.boxes.values() if b) == 9
    record = json.loads((tmp_path / "a" / "synthesis.json").read_text())
    used = {r.get("target") for r in record["images"].values()} | {r.get("donor") for r in record["images"].values()} \
        | {r.get("source") for r in record["images"].values()}
    assert not any(name and name.startswith("test") for name in used)  # the test split stays out
    synthesize(bsds, tmp_path / "b", config, ("train", "val"))
    for name in ("Tp", "Gt", "Au"):
        files_a = sorted((tmp_path / "a" / name).iterdir())
        files_b = sorted((tmp_path / "b" / name).iterdir())
        assert [f.name for f in files_a] == [f.name for f in files_b]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(files_a, files_b, strict=True))
    assert len(load_dataset(tmp_path / "a" / "dataset.json")) == 12


def test_synthesize_cli_and_bad_options(tmp_path):
    bsds = _fake_bsds(tmp_path / "bsds", 2)
    out = tmp_path / "syn"
    assert main(["synthesize", "--bsds", str(bsds), "--out", str(out), "--tampered", "4", "--authentic", "1",
                 "--kinds", "splice=1,removal=1"]) == 0
    assert len(load_dataset(out / "dataset.json").tampered) == 4
    assert main(["synthesize", "--bsds", str(bsds), "--out", str(out), "--kinds", "warp=1"]) == 2
    with pytest.raises(ConfigError, match="unknown forgery kind"):
        SynthesisConfig(kind_weights={"blend": 1.0})
    assert main(["synthesize", "--bsds", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
