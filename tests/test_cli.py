import subprocess
import sys
from pathlib import Path

import pytest

from boxpromptiml.cli import COMMANDS, build_parser, main


def _subcommands():
    return list(build_parser()._subparsers._group_actions[0].choices)


def test_commands_follow_the_data_flow():
    assert _subcommands() == ["toy-data", "check", "synthesize", "split", "boxes", "pseudo-label", "train",
                              "evaluate", "robustness", "predict", "calibrate", "fit-verdict", "export", "bench",
                              "serve", "demo"]
    assert len(COMMANDS) == 12


@pytest.mark.parametrize("command", _subcommands())
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: bpiml" in out and out.count("--") >= 2


def test_toy_boxes_evaluate_pipeline(tmp_path):
    assert main(["toy-data", str(tmp_path / "toy"), "--tampered", "3", "--authentic", "2"]) == 0
    assert main(["boxes", "-d", str(tmp_path / "toy" / "dataset.json"), "-o", str(tmp_path / "b.json"),
                 "--filled-masks", str(tmp_path / "maps")]) == 0
    assert main(["evaluate", "-d", str(tmp_path / "toy"), "--pred", str(tmp_path / "maps")]) == 0


def test_console_script_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "boxpromptiml.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "evaluate" in out.stdout


def test_exit_code_rule_train_and_evaluate_record_skipped_images(toy_dataset, tmp_path):
    """0 = done, 1 = done but inputs were skipped (and listed), 2 = error."""
    import json
    import shutil

    root = tmp_path / "data"
    shutil.copytree(toy_dataset.root, root)
    broken = sorted((root / "Au").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    args = ["train", "--out", str(tmp_path / "run"), "--train", str(root / "dataset.json"), "--supervision", "full",
            "--set", "optim.epochs=1", "--set", "student.input_size=64", "--set", "optim.workers=0",
            "--set", "student.encoder_init=random"]
    assert main(args) == 1
    assert broken.stem in json.loads((tmp_path / "run" / "skipped_images.json").read_text())
    assert main(["evaluate", "-d", str(root / "dataset.json"), "--model", str(tmp_path / "run"),
                 "--json", str(tmp_path / "e.json")]) == 1
    assert broken.stem in json.loads((tmp_path / "e.json").read_text())["skipped"]
    assert main(["train", "--out", str(tmp_path / "x"), "--train", str(tmp_path / "missing.json")]) == 2


def test_train_offers_resize_masks_for_a_mask_of_the_wrong_size(toy_dataset, tmp_path):
    import json
    import shutil

    import cv2

    root = tmp_path / "data"
    shutil.copytree(toy_dataset.root, root)
    mask_path = sorted((root / "Gt").iterdir())[0]
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(mask_path), cv2.resize(mask, (mask.shape[1] // 2, mask.shape[0] // 2)))
    args = ["train", "--train", str(root / "dataset.json"), "--supervision", "full", "--set", "optim.epochs=1",
            "--set", "student.input_size=64", "--set", "optim.workers=0", "--set", "student.encoder_init=random",
            "--set", "optim.samples_per_epoch=8", "--set", "data.max_bad_fraction=0.5"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 1  # done, but an input was skipped
    skipped = json.loads((tmp_path / "a" / "skipped_samples.json").read_text())
    assert mask_path.stem in skipped and "--resize-masks" in skipped[mask_path.stem]
    assert main([*args, "--out", str(tmp_path / "b"), "--resize-masks"]) == 0
    assert not (tmp_path / "b" / "skipped_samples.json").exists()


def test_help_imports_no_heavy_library():
    """`bpiml --help` and `bpiml COMMAND --help` must answer at once: building the parsers imports neither torch
    nor the other heavy libraries (checked in a fresh interpreter, not timed)."""
    code = ("import sys; from boxpromptiml.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'timm', 'skimage', 'matplotlib', 'onnx') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_os_errors_and_binary_configs_are_one_line_with_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["toy-data", str(blocker / "sub")]) == 2  # NotADirectoryError, as read-only or full disks are
    err = capsys.readouterr().err.strip()
    assert err.startswith("bpiml toy-data: error:") and "Traceback" not in err and len(err.splitlines()) == 1
    binary = tmp_path / "config.yaml"
    binary.write_bytes(bytes(range(128, 256)))
    assert main(["train", "--config", str(binary), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a text (YAML) file" in err and len(err.splitlines()) == 1


def test_a_single_refused_image_is_exit_2_for_every_command_and_a_bad_model_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "Tp").mkdir()
    (tmp_path / "Gt").mkdir()
    (tmp_path / "Tp" / "bad.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "Gt" / "bad.png").write_bytes(b"\x89PNG not really")
    assert main(["predict", str(tmp_path / "Tp" / "bad.png"), "-o", str(tmp_path / "maps")]) == 2
    out, err = capsys.readouterr()
    assert "bpiml predict: error: no image could be processed" in err and "predicted" not in out
    assert main(["boxes", "-d", str(tmp_path), "-o", str(tmp_path.parent / f"{tmp_path.name}-boxes.json")]) == 2
    assert main(["predict", str(tmp_path / "Tp"), "-m", str(tmp_path / "no-model"), "-o", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_a_pickle_with_code_is_refused_without_inviting_weights_only_false(tmp_path):
    import torch

    from boxpromptiml.errors import ConfigError
    from boxpromptiml.teachers.checkpoints import read_state_dict

    torch.save({"w": torch.zeros(1), "hook": print}, tmp_path / "evil.pth")
    with pytest.raises(ConfigError) as refused:
        read_state_dict(tmp_path / "evil.pth")
    assert "does not unpickle" in str(refused.value) and "weights_only" not in str(refused.value)


def test_a_full_disk_names_the_file_it_could_not_write(toy_dataset, tmp_path, monkeypatch, capsys):
    """ENOSPC arises inside a write and names no file; the one-line error must still say which file."""
    import errno

    from boxpromptiml import fileio

    real_write_atomic = fileio.write_atomic

    def disk_full(path, write):
        def failing(tmp):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_atomic(path, failing)

    monkeypatch.setattr(fileio, "write_atomic", disk_full)
    assert main(["boxes", "-d", str(toy_dataset.root), "-o", str(tmp_path / "boxes.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"bpiml boxes: error: {tmp_path / 'boxes.json'}: No space left on device"
    assert not list(tmp_path.glob(".*tmp"))


def test_a_refused_training_start_leaves_no_run_folder(toy_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "-o", str(run), "--train", str(toy_dataset.root), "--set", "optim.epochs=1"]) == 2
    assert "needs its --pseudo-labels folder" in capsys.readouterr().err
    assert not run.exists()
    run.mkdir()  # a folder the user made is never removed, even when the start is refused
    (run / "notes.txt").write_text("mine")
    assert main(["train", "-o", str(run), "--train", str(toy_dataset.root), "--set", "optim.epochs=1",
                 "--overwrite"]) == 2
    assert (run / "notes.txt").read_text() == "mine"


def test_shipped_names_the_shipped_model_for_every_model_option(toy_dataset, tmp_path, monkeypatch, capsys):
    from boxpromptiml.deployment.shipped import model_dir, shipped_model_dir

    assert model_dir("shipped") == model_dir(None) == shipped_model_dir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipped").mkdir()  # a folder of that name here wins: the user means it
    assert model_dir("shipped") == Path("shipped")
    image = sorted((toy_dataset.root / "Tp").iterdir())[0]
    (tmp_path / "shipped").rmdir()
    assert main(["predict", str(image), "-m", "shipped", "-o", str(tmp_path / "maps")]) == 0
    assert (tmp_path / "maps" / f"{image.stem}.png").is_file()
