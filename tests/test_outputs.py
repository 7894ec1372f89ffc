"""Outputs never land on inputs, and never in folders or files bpiml did not make (unless --overwrite)."""

import json
import shutil

import pytest

from boxpromptiml.cli import main


@pytest.fixture
def data(toy_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(toy_dataset.root, root)
    return root


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_outputs_onto_inputs_are_refused_and_nothing_changes(data, tmp_path, capsys):
    before = _snapshot(data)
    listing = str(data / "dataset.json")
    assert main(["boxes", "-d", listing, "-o", listing]) == 2
    assert main(["boxes", "-d", listing, "-o", str(tmp_path / "boxes.json")]) == 0
    boxes = str(tmp_path / "boxes.json")
    assert main(["pseudo-label", "-d", listing, "--boxes", boxes, "--teacher", "box", "-o", str(data / "Gt")]) == 2
    assert main(["pseudo-label", "-d", listing, "--boxes", boxes, "--teacher", "box", "-o", str(data)]) == 2
    assert main(["predict", str(data / "Tp"), "-o", str(data / "Tp")]) == 2
    assert main(["predict", str(data / "Tp"), "-o", str(data / "Tp" / "maps")]) == 2
    assert main(["evaluate", "-d", listing, "--pred", str(data / "Gt"), "--json", listing]) == 2
    assert main(["split", "-d", listing, "-o", str(data)]) == 2
    err = capsys.readouterr().err
    assert "is one of the inputs" in err and "holds the input" in err and "lies inside the input folder" in err
    assert _snapshot(data) == before


def test_foreign_folders_and_files_need_overwrite(data, tmp_path):
    listing = str(data / "dataset.json")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("the user's own file")
    assert main(["predict", str(data / "Tp"), "-o", str(foreign)]) == 2
    assert main(["predict", str(data / "Tp"), "-o", str(foreign), "--overwrite"]) == 0
    assert (foreign / "notes.txt").read_text() == "the user's own file"
    assert main(["predict", str(data / "Tp"), "-o", str(tmp_path / "new")]) == 0
    assert main(["predict", str(data / "Tp"), "-o", str(tmp_path / "new")]) == 0  # its own folder: fine
    (tmp_path / "theirs.json").write_text(json.dumps({"images": [], "annotations": []}))
    assert main(["boxes", "-d", listing, "-o", str(tmp_path / "theirs.json")]) == 2
    assert main(["boxes", "-d", listing, "-o", str(tmp_path / "b.json")]) == 0
    assert main(["boxes", "-d", listing, "-o", str(tmp_path / "b.json")]) == 0  # written by bpiml: fine
