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


def test_a_second_writer_on_one_folder_is_refused_and_stale_locks_do_not_block(data, tmp_path, capsys):
    import multiprocessing

    from boxpromptiml.outputs import folder_lock

    listing = str(data / "dataset.json")
    assert main(["boxes", "-d", listing, "-o", str(tmp_path / "b.json")]) == 0
    args = ["pseudo-label", "-d", listing, "--boxes", str(tmp_path / "b.json"), "--teacher", "box",
            "-o", str(tmp_path / "pl")]
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(tmp_path / "pl", ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        assert main(args) == 2
        assert f"bpiml pid {holder.pid}" in capsys.readouterr().err
    finally:
        release.set()
        holder.join(30)
    (tmp_path / "pl" / ".pseudo-label.lock").write_text("bpiml pid 999999 on a machine long gone")  # stale
    assert main(args) == 0
    with folder_lock(tmp_path / "run", "train"):  # training takes the same kind of lock
        with pytest.raises(Exception, match="is being written by"):
            from boxpromptiml.outputs import folder_lock as again

            with again(tmp_path / "run", "train"):
                pass


def _hold(folder, ready, release):
    from boxpromptiml.outputs import folder_lock

    with folder_lock(folder, "pseudo-label"):
        ready.set()
        release.wait(30)


def test_one_commands_outputs_are_not_overwritten_by_another(data, tmp_path, capsys):
    """evaluate --json over a model, a map or a foreign file; pseudo-label into predict's maps; predict into the
    model's own run folder: each is refused, with nothing changed, unless --overwrite says so where that is safe."""
    listing = str(data / "dataset.json")
    maps = tmp_path / "maps"
    scored = ["evaluate", "-d", listing, "--tampered-only", "--pred", str(maps)]
    assert main(["predict", str(data / "Tp"), "-o", str(maps)]) == 0
    before = _snapshot(maps)
    assert main(["boxes", "-d", listing, "-o", str(tmp_path / "b.json")]) == 0
    assert main(["pseudo-label", "-d", listing, "--boxes", str(tmp_path / "b.json"), "--teacher", "box",
                 "-o", str(maps)]) == 2
    assert "holds the outputs of bpiml predict" in capsys.readouterr().err
    a_map = sorted(maps.glob("*.png"))[0]
    assert main([*scored, "--json", str(a_map)]) == 2
    assert main([*scored, "--json", str(maps / "scores.json")]) == 2
    assert _snapshot(maps) == before
    from boxpromptiml.deployment.shipped import shipped_model_path

    model = tmp_path / "model"
    shutil.copytree(shipped_model_path(), model)
    model_before = _snapshot(model)
    assert main(["evaluate", "-d", listing, "--model", str(model), "--json", str(model / "model.safetensors")]) == 2
    assert main(["predict", str(data / "Tp"), "--model", str(model), "-o", str(model)]) == 2
    assert _snapshot(model) == model_before
    theirs = tmp_path / "theirs.json"
    theirs.write_text('{"mine": true}')
    assert main([*scored, "--json", str(theirs)]) == 2
    assert theirs.read_text() == '{"mine": true}'
    assert main([*scored, "--json", str(theirs), "--overwrite"]) == 0
    ours = tmp_path / "scores.json"
    assert main([*scored, "--json", str(ours)]) == 0
    assert main([*scored, "--json", str(ours)]) == 0  # its own file again
    assert json.loads(ours.read_text())["info"]["generator"] == "bpiml evaluate"
