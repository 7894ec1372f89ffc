"""Shared fixtures: a generated toy dataset, and the real data beside the repo when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from boxpromptiml.data.toy import make_toy_dataset

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def graph_cache(tmp_path_factory):
    """Graphs made on demand (deployment/graph.py) go to a folder of this test session, never the user's cache."""
    import os

    folder = tmp_path_factory.mktemp("graph-cache")
    previous = os.environ.get("BPIML_CACHE")
    os.environ["BPIML_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("BPIML_CACHE", None)
    else:
        os.environ["BPIML_CACHE"] = previous


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory):
    """8 tampered + 4 authentic generated images (Tp/ Gt/ Au/ + dataset.json)."""
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), n_tampered=8, n_authentic=4, size=(96, 128))


@pytest.fixture(scope="session")
def prepared(toy_dataset, tmp_path_factory):
    """The toy dataset with simulated boxes and GrabCut pseudo labels (a fast teacher), as training sources."""
    from boxpromptiml.boxes.from_masks import make_boxes
    from boxpromptiml.data import attach_boxes, read_coco_boxes
    from boxpromptiml.pseudo_labels import generate_pseudo_labels
    from boxpromptiml.teachers import create_teacher

    folder = tmp_path_factory.mktemp("prepared")
    make_boxes(toy_dataset, folder / "boxes.json")
    boxed = attach_boxes(toy_dataset, read_coco_boxes(folder / "boxes.json"))
    generate_pseudo_labels(boxed, create_teacher("grabcut"), folder / "pl")
    return {"dataset": str(toy_dataset.source), "boxes": str(folder / "boxes.json"), "pl": str(folder / "pl")}


@pytest.fixture
def shared_data() -> Path:
    """The real datasets in ../shared/data; tests using it skip when it is absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests that build very large models")
