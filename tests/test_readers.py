import json

import numpy as np
import pytest
from PIL import Image

from boxpromptiml.data import Box, Label, attach_boxes, load_dataset, load_datasets, read_coco_boxes, write_coco_boxes
from boxpromptiml.errors import DataError


def _img(path, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)


def _mask(path, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size[1], size[0]), np.uint8)
    m[1:3, 2:5] = 255
    Image.fromarray(m).save(path)


@pytest.fixture
def layout(tmp_path):
    _img(tmp_path / "Tp" / "a.jpg")
    _mask(tmp_path / "Gt" / "a.png")
    _img(tmp_path / "Tp" / "b.png")
    _mask(tmp_path / "Gt" / "b_gt.png")
    _img(tmp_path / "Au" / "c.jpg")
    return tmp_path


def test_imdl_json_relative_absolute_and_negative(layout):
    entries = [["Tp/a.jpg", "Gt/a.png"], [str(layout / "Tp" / "b.png"), str(layout / "Gt" / "b_gt.png")],
               ["Au/c.jpg", "Negative"]]
    (layout / "list.json").write_text(json.dumps(entries))
    ds = load_dataset(layout / "list.json")
    assert [s.name for s in ds] == ["a", "b", "c"]
    assert [s.label for s in ds] == [Label.TAMPERED, Label.TAMPERED, Label.AUTHENTIC]
    assert ds[0].image == layout / "Tp" / "a.jpg" and ds[2].mask is None
    assert ds.relative_name(ds[0]) == "Tp/a.jpg"


def test_forensichub_json(layout):
    entries = [{"path": "Tp/a.jpg", "mask": "Gt/a.png", "label": 1}, {"path": "Au/c.jpg", "mask": None, "label": 0}]
    (layout / "fh.json").write_text(json.dumps(entries))
    ds = load_dataset(layout / "fh.json")
    assert [(s.name, s.label, s.mask is None) for s in ds] == [("a", Label.TAMPERED, False),
                                                               ("c", Label.AUTHENTIC, True)]


def test_forensichub_bad_label(layout):
    (layout / "fh.json").write_text(json.dumps([{"path": "Tp/a.jpg", "mask": "Gt/a.png", "label": 3}]))
    with pytest.raises(DataError, match="fh.json.*entry 0.*label"):
        load_dataset(layout / "fh.json")


def test_tp_gt_folder_matches_masks_by_stem_and_suffix(layout):
    ds = load_dataset(layout)
    by_name = {s.name: s for s in ds}
    assert by_name["a"].mask == layout / "Gt" / "a.png"
    assert by_name["b"].mask == layout / "Gt" / "b_gt.png"
    assert by_name["c"].label is Label.AUTHENTIC
    assert len(ds.tampered) == 2 and len(ds.authentic) == 1


def test_tp_without_mask_is_kept_and_logged(layout, caplog):
    _img(layout / "Tp" / "d.png")
    ds = load_dataset(layout)
    assert {s.name: s.mask for s in ds}["d"] is None
    assert "no mask" in caplog.text


def test_two_masks_with_the_same_stem_fail(layout):
    _mask(layout / "Gt" / "a.jpg")
    with pytest.raises(DataError, match="share the stem 'a'"):
        load_dataset(layout)


@pytest.mark.parametrize("content, message", [("", "empty"), ("[]", "no samples"), ("{oops", "invalid JSON"),
                                              ('{"a": 1}', "expected a JSON list"),
                                              ('[["x.jpg"]]', "entry 0")])
def test_bad_json_lists(tmp_path, content, message):
    (tmp_path / "d.json").write_text(content)
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path / "d.json")


def test_missing_files_are_listed(layout):
    (layout / "d.json").write_text(json.dumps([["Tp/a.jpg", "Gt/zz.png"], ["Tp/nope.jpg", "Negative"]]))
    with pytest.raises(DataError, match=r"2 referenced file\(s\) do not exist[\s\S]*zz.png[\s\S]*nope.jpg"):
        load_dataset(layout / "d.json")


def test_missing_dataset_and_unknown_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(DataError, match="unknown folder layout"):
        load_dataset(tmp_path)


def test_duplicate_stems_are_rejected(layout):
    _img(layout / "Au" / "a.png")
    with pytest.raises(DataError, match="more than once.*a"):
        load_dataset(layout)


def test_concatenated_datasets(layout):
    (layout / "t.json").write_text(json.dumps([["Tp/a.jpg", "Gt/a.png"]]))
    (layout / "au.json").write_text(json.dumps([["Au/c.jpg", "Negative"]]))
    ds = load_datasets([layout / "t.json", layout / "au.json"])
    assert [s.name for s in ds] == ["a", "c"]


def test_coco_roundtrip_and_matching(layout):
    ds = load_dataset(layout)
    boxes = {"a": [Box(1, 1, 4, 3)], "b": [Box(0, 0, 2, 2), Box(5, 3, 8, 6)]}
    sizes = {s.name: (6, 8) for s in ds}
    write_coco_boxes(layout / "boxes.json", ds, boxes, sizes)
    coco = read_coco_boxes(layout / "boxes.json")
    assert coco.boxes["Tp/a.jpg"] == boxes["a"] and coco.sizes["Tp/a.jpg"] == (6, 8)
    annotated = attach_boxes(ds, coco)
    got = {s.name: s.boxes for s in annotated}
    assert got == {"a": tuple(boxes["a"]), "b": tuple(boxes["b"]), "c": ()}


def test_coco_matches_by_basename_when_paths_differ(layout):
    coco_json = {"images": [{"id": 7, "file_name": "somewhere/else/a.jpg"}],
                 "annotations": [{"id": 1, "image_id": 7, "bbox": [1, 2, 3, 4]}]}
    (layout / "c.json").write_text(json.dumps(coco_json))
    annotated = attach_boxes(load_dataset(layout), read_coco_boxes(layout / "c.json"))
    assert {s.name: s.boxes for s in annotated}["a"] == (Box(1, 2, 4, 6),)


def test_coco_fixups_clip_and_drop(layout, caplog):
    coco_json = {"images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}],
                 "annotations": [{"image_id": 1, "bbox": [-2, 1, 5, 20]},   # clipped
                                 {"image_id": 1, "bbox": [2, 2, 0, 3]},     # empty: dropped
                                 {"image_id": 1, "bbox": [9, 7, 3, 3]}]}    # outside: dropped
    (layout / "c.json").write_text(json.dumps(coco_json))
    coco = read_coco_boxes(layout / "c.json")
    assert coco.boxes["a.jpg"] == [Box(0, 1, 3, 6)]
    assert len(coco.fixups) == 3 and "clipped" in caplog.text and "dropped" in caplog.text


@pytest.mark.parametrize("coco_json, message", [
    ({"images": []}, "not a COCO file"),
    ({"images": [{"id": 1}], "annotations": []}, r"images\[0\]"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "bbox": [1, 2]}]}, "bbox"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 9, "bbox": [1, 2, 3, 4]}]},
     "unknown image_id"),
])
def test_bad_coco_files(tmp_path, coco_json, message):
    (tmp_path / "c.json").write_text(json.dumps(coco_json))
    with pytest.raises(DataError, match=message):
        read_coco_boxes(tmp_path / "c.json")


def test_coco_file_given_as_dataset_gets_a_hint(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError, match="--boxes"):
        load_dataset(tmp_path / "c.json")


def test_coco_non_finite_boxes_are_dropped_by_name(layout, caplog):
    text = ('{"images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}], "annotations": ['
            '{"image_id": 1, "bbox": [NaN, 1, 2, 2]}, {"image_id": 1, "bbox": [1, 1, Infinity, 2]}, '
            '{"image_id": 1, "bbox": [1, 1, 2, 2]}]}')
    (layout / "c.json").write_text(text)
    coco = read_coco_boxes(layout / "c.json")
    assert coco.boxes["a.jpg"] == [Box(1, 1, 3, 3)]
    assert sum("finite" in note for note in coco.fixups) == 2 and "annotations[0] (a.jpg)" in caplog.text


def test_coco_images_outside_the_dataset_are_counted(layout, caplog):
    coco_json = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "elsewhere/zz1.jpg"},
                            {"id": 3, "file_name": "zz2.jpg"}], "annotations": []}
    (layout / "c.json").write_text(json.dumps(coco_json))
    attach_boxes(load_dataset(layout), read_coco_boxes(layout / "c.json"))
    assert "2 of its 3 image(s) are not in" in caplog.text and "zz2.jpg" in caplog.text


def test_coco_matching_nothing_fails(layout):
    (layout / "c.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "zzz.jpg"}], "annotations": []}))
    with pytest.raises(DataError, match="none of its"):
        attach_boxes(load_dataset(layout), read_coco_boxes(layout / "c.json"))


def test_shared_datasets_load(shared_data):
    counts = {}
    for spec in ["coverage", "coverage/train.json", "coverage/test.json", "coverage/authentic.json",
                 "casia1_dev", "casia1_dev/test.json", "casia1_dev/authentic.json", "casia1_train/train.json",
                 "casia1_train/authentic.json", "bsds500"]:
        ds = load_dataset(shared_data / spec)
        counts[spec] = (len(ds.tampered), len(ds.authentic))
    assert counts["coverage/train.json"] == (70, 0)
    assert counts["coverage/test.json"] == (30, 0)
    assert counts["casia1_dev/test.json"] == (203, 0)
    assert counts["casia1_dev/authentic.json"] == (0, 165)
    assert counts["casia1_train/train.json"] == (479, 0)
    assert counts["casia1_train/authentic.json"] == (0, 301)
    assert counts["bsds500"] == (0, 500)
    assert counts["coverage"] == (100, 100)
