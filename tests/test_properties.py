"""Property-based checks of the readers: random bytes, random JSON and random COCO boxes never raise
anything but our own errors, and reading never changes a file."""

import json
import string

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from boxpromptiml.data import load_dataset, read_image  # noqa: E402
from boxpromptiml.data.coco import attach_boxes, read_coco_boxes  # noqa: E402
from boxpromptiml.data.images import read_mask, read_probability_map  # noqa: E402
from boxpromptiml.errors import BPIMLError  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(string.printable, max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(string.ascii_letters, max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3))


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@SETTINGS
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".tif", ".bmp", ".webp"]))
def test_random_bytes_as_images(tmp_path, data, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    for reader in (read_image, read_mask, read_probability_map):
        try:
            reader(path)
        except BPIMLError:
            pass
    assert path.read_bytes() == data


@SETTINGS
@given(value=json_values)
def test_random_json_as_dataset_lists(tmp_path, value):
    path = tmp_path / "list.json"
    path.write_text(json.dumps(value))
    before = _snapshot(tmp_path)
    try:
        load_dataset(path)
    except BPIMLError:
        pass
    assert _snapshot(tmp_path) == before


@SETTINGS
@given(boxes=st.lists(st.lists(numbers, min_size=0, max_size=5), max_size=6),
       image_ids=st.lists(st.one_of(st.integers(0, 3), st.text(max_size=2)), max_size=6),
       sizes=st.tuples(st.integers(-5, 50), st.integers(-5, 50)))
def test_random_coco_boxes(toy_dataset, tmp_path, boxes, image_ids, sizes):
    names = [s.image.name for s in toy_dataset][:3]
    images = [{"id": i, "file_name": n, "width": sizes[0], "height": sizes[1]} for i, n in enumerate(names)]
    annotations = [{"image_id": image_ids[i] if i < len(image_ids) else 0, "bbox": b} for i, b in enumerate(boxes)]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    before = _snapshot(toy_dataset.root)
    try:
        attach_boxes(toy_dataset, read_coco_boxes(path))
    except BPIMLError:
        pass
    assert _snapshot(toy_dataset.root) == before
