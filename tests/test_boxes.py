import json

import numpy as np
import pytest

from boxpromptiml.boxes.from_masks import make_boxes
from boxpromptiml.boxes.simulate import (
    BoxSimulationConfig,
    boxes_to_mask,
    merge_close_boxes,
    region_boxes,
    rng_for,
    simulate_boxes,
)
from boxpromptiml.data import Box, attach_boxes, read_coco_boxes
from boxpromptiml.data.samples import Dataset
from boxpromptiml.errors import ConfigError

TIGHT = BoxSimulationConfig(margin=0.0, jitter=0.0)


def _mask(h=100, w=200):
    return np.zeros((h, w), bool)


def test_one_region_gives_its_tight_box():
    m = _mask()
    m[10:30, 40:90] = True
    assert simulate_boxes(m, TIGHT, rng_for("x", 0)) == [Box(40, 10, 90, 30)]


def test_margin_expands_each_side_by_fraction_of_size():
    m = _mask()
    m[40:60, 50:100] = True  # 50 wide, 20 high
    boxes = simulate_boxes(m, BoxSimulationConfig(margin=0.1, jitter=0.0), rng_for("x", 0))
    assert boxes == [Box(45, 38, 105, 62)]


def test_jittered_boxes_contain_the_region_and_stay_in_the_image():
    rng = np.random.default_rng(1)
    for trial in range(50):
        m = _mask()
        y, x = rng.integers(0, 80), rng.integers(0, 180)
        m[y:y + 20, x:x + 20] = True
        (box,) = simulate_boxes(m, BoxSimulationConfig(margin=0.1, jitter=0.05), rng_for(str(trial), 0))
        assert box.x1 <= x and box.y1 <= y and box.x2 >= x + 20 and box.y2 >= y + 20
        assert box.x1 >= 0 and box.y1 >= 0 and box.x2 <= 200 and box.y2 <= 100
        assert all(float(v).is_integer() for v in box.to_xyxy())


def test_seeded_per_image_name():
    m = _mask()
    m[20:50, 20:60] = True
    cfg = BoxSimulationConfig(jitter=0.1)
    a = simulate_boxes(m, cfg, rng_for("img1", 3))
    assert a == simulate_boxes(m, cfg, rng_for("img1", 3))
    others = [simulate_boxes(m, cfg, rng_for(f"img{i}", 3)) for i in range(2, 8)]
    assert any(o != a for o in others)


def test_small_regions_dropped_but_largest_kept():
    m = _mask()
    m[10:40, 10:40] = True
    m[80:82, 150:152] = True  # 4 px: below 0.1% of 20000
    assert region_boxes(m, min_area=0.001) == [Box(10, 10, 40, 40)]
    tiny = _mask()
    tiny[5:7, 5:7] = True
    assert region_boxes(tiny, min_area=0.001) == [Box(5, 5, 7, 7)]
    assert region_boxes(_mask(), 0.001) == []


def test_merging_close_boxes():
    boxes = [Box(0, 0, 10, 10), Box(12, 0, 20, 10), Box(100, 100, 110, 110)]
    assert merge_close_boxes(boxes, 0) == boxes
    assert merge_close_boxes(boxes, 2) == [Box(0, 0, 20, 10), Box(100, 100, 110, 110)]
    m = _mask()
    m[10:20, 10:20] = True
    m[15:30, 20:40] = True  # touches diagonally -> one 8-connected region anyway
    m[60:70, 60:70] = True
    assert len(simulate_boxes(m, TIGHT, rng_for("x", 0))) == 2
    no_merge = BoxSimulationConfig(margin=0, jitter=0, merge_gap=None)
    m2 = _mask()
    m2[10:20, 10:20] = True
    m2[10:20, 22:30] = True
    assert len(simulate_boxes(m2, no_merge, rng_for("x", 0))) == 2
    assert len(simulate_boxes(m2, BoxSimulationConfig(margin=0, jitter=0, merge_gap=0.02), rng_for("x", 0))) == 1


def test_invalid_config():
    with pytest.raises(ConfigError):
        BoxSimulationConfig(margin=-0.1)
    with pytest.raises(ConfigError):
        BoxSimulationConfig(merge_gap=-1)


def test_boxes_to_mask_covers_pixel_centres():
    out = boxes_to_mask([Box(1, 2, 4, 3), Box(-5, -5, 1, 1)], (5, 6))
    expected = np.zeros((5, 6), np.float32)
    expected[2, 1:4] = 1
    expected[0, 0] = 1
    np.testing.assert_array_equal(out, expected)


def test_make_boxes_writes_coco_that_reads_back(toy_dataset, tmp_path):
    run = make_boxes(toy_dataset, tmp_path / "boxes.json", filled_masks_dir=tmp_path / "filled")
    assert not run.failures and len(run.results) == len(toy_dataset)
    coco = json.loads((tmp_path / "boxes.json").read_text())
    assert coco["info"]["simulation"]["margin"] == 0.1
    assert {a["category_id"] for a in coco["annotations"]} == {1}
    annotated = attach_boxes(toy_dataset, read_coco_boxes(tmp_path / "boxes.json"))
    for s in annotated:
        assert (len(s.boxes) > 0) == s.is_tampered
    assert len(list((tmp_path / "filled").glob("*.png"))) == len(toy_dataset)


def test_make_boxes_skips_and_reports_a_corrupt_image(toy_dataset, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(toy_dataset.tampered[0].image.read_bytes()[:50])
    samples = list(toy_dataset.samples)
    samples.insert(3, type(samples[0])(broken, samples[0].mask, samples[0].label))
    ds = Dataset(samples, toy_dataset.root, "with a broken file")
    run = make_boxes(ds, tmp_path / "b.json")
    assert list(run.failures) == ["broken"] and "broken.png" in run.failures["broken"]
    assert len(run.results) == len(toy_dataset)
    assert len(json.loads((tmp_path / "b.json").read_text())["images"]) == len(toy_dataset)
