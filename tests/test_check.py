"""bpiml check: the problems users of peer tools lose days to, found before a run."""

import json
import shutil

import cv2
import numpy as np
import pytest

from boxpromptiml.cli import main


@pytest.fixture
def data(toy_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(toy_dataset.root, root)
    return root


def test_a_clean_dataset_passes(data, capsys):
    assert main(["check", "-d", str(data / "dataset.json")]) == 0
    assert "8 tampered + 4 authentic" in capsys.readouterr().out


def test_each_problem_is_found_and_named(data, tmp_path, capsys):
    masks = sorted((data / "Gt").iterdir())
    inverted = cv2.imread(str(masks[0]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(masks[0]), 255 - inverted)
    cv2.imwrite(str(masks[1]), np.zeros((10, 10), np.uint8))  # wrong size and empty
    soft = cv2.imread(str(masks[2]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(masks[2]), cv2.GaussianBlur(soft, (9, 9), 3))
    image = sorted((data / "Tp").iterdir())[3]
    image.write_bytes(image.read_bytes()[:50])
    coco = {"images": [{"id": 1, "file_name": sorted((data / "Tp").iterdir())[4].name, "width": 4, "height": 4}],
            "annotations": [{"image_id": 1, "bbox": [10, 10, 5, 5]}]}
    (tmp_path / "b.json").write_text(json.dumps(coco))
    assert main(["check", "-d", str(data / "dataset.json"), "--boxes", str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    for expected in ("probably inverted", "mask size differs", "empty mask", "not binary", "unreadable file",
                     "box fixed up", "without a box", masks[0].name, image.stem):
        assert expected in out, expected


def test_duplicate_names_are_reported_not_raised(data, capsys):
    entries = json.loads((data / "dataset.json").read_text())
    (data / "twice.json").write_text(json.dumps(entries + entries[:1]))
    assert main(["check", "-d", str(data / "twice.json")]) == 1
    assert "more than once" in capsys.readouterr().out


def test_every_dataset_level_problem_is_reported_in_one_pass(data, tmp_path, capsys):
    """Missing files, a name used twice, an orphan mask, a thin strip and boxes on unknown COCO images used to
    stop the check at the first; now each is listed, and the readable images are still checked."""
    entries = json.loads((data / "dataset.json").read_text())
    entries.append(["Tp/gone.png", "Gt/gone.png"])  # missing image and mask
    entries.append(entries[0])  # the same name twice
    cv2.imwrite(str(data / "Tp" / "strip.png"), np.full((10, 2000, 3), 128, np.uint8))
    strip_mask = np.zeros((10, 2000), np.uint8)
    strip_mask[:, 100:300] = 255
    cv2.imwrite(str(data / "Gt" / "strip.png"), strip_mask)
    entries.append(["Tp/strip.png", "Gt/strip.png"])
    (data / "listed.json").write_text(json.dumps(entries))
    cv2.imwrite(str(data / "Gt" / "orphan.png"), strip_mask)  # a mask no Tp/ image has
    truncated = sorted((data / "Tp").glob("toy_*"))[2]
    truncated.write_bytes(truncated.read_bytes()[:60])
    coco = {"images": [{"id": 1, "file_name": "Tp/strip.png", "width": 2000, "height": 10}],
            "annotations": [{"image_id": 1, "bbox": [100, 0, 200, 10]}, {"image_id": 7, "bbox": [1, 1, 2, 2]}]}
    (tmp_path / "b.json").write_text(json.dumps(coco))
    assert main(["check", "-d", str(data / "listed.json"), "-d", str(data), "--boxes", str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    for expected in ("referenced file does not exist", "gone.png", "more than once", "thinner than 32 px",
                     "strip.png: 2000x10", "unknown COCO image id", "unreadable file", truncated.stem,
                     "mask without a tampered image", "orphan.png"):
        assert expected in out, (expected, out)
