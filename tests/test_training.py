"""Training: a short run lowers the loss and writes a loadable checkpoint; resume; baselines;
losses and paired augmentation."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from boxpromptiml.deployment.shipped import shipped_model_path
from boxpromptiml.errors import BPIMLError, ConfigError
from boxpromptiml.training import loop
from boxpromptiml.training.augment import augment, jpeg_recompress
from boxpromptiml.training.averaging import ema_decay_at
from boxpromptiml.training.checkpoint import load_student
from boxpromptiml.training.config import AugmentConfig, LossConfig, TrainConfig, load_config
from boxpromptiml.training.init_from import adopt_init_architecture, load_init_weights
from boxpromptiml.training.losses import DistillationLoss
from boxpromptiml.training.run_folder import run_summary


def _config(prepared, epochs=2, supervision="pseudo", workers=0, student=None, loss=None, **optim):
    return TrainConfig.from_dict({
        "student": {"input_size": 64, "encoder": "efficientnet_lite0", "encoder_init": "random", **(student or {})},
        "data": {"train": [{"dataset": prepared["dataset"], "boxes": prepared["boxes"],
                            "pseudo_labels": prepared["pl"]}],
                 "val": [prepared["dataset"]], "supervision": supervision},
        "loss": {"outside_box": 0.5, **(loss or {})},
        "optim": {"epochs": epochs, "batch_size": 4, "lr": 3e-3, "workers": workers, "threads": 2,
                  "warmup_epochs": 0.3, **optim},
    })


def _rows(run_dir):
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def _interrupt_in_second_epoch(monkeypatch, config, run_dir):
    """Train until the second epoch's validation, which is interrupted (a Ctrl+C after one saved epoch)."""
    real_validate, calls = loop.validate, {"n": 0}

    def killed_in_second_epoch(model, dataset):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_validate(model, dataset)

    monkeypatch.setattr(loop, "validate", killed_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        loop.train(config, run_dir)
    monkeypatch.setattr(loop, "validate", real_validate)


def test_two_epochs_lower_the_loss_and_save_a_loadable_model(prepared, tmp_path):
    result = loop.train(_config(prepared, epochs=3, workers=2, lr=1e-2), tmp_path / "run")
    rows = _rows(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[0]["outside_box"]) > 0 and rows[0]["val_pixel_f1"] != ""
    for name in ("config.json", "init.json", "best/model.safetensors", "best/student.json",
                 "last/optimizer.safetensors"):
        assert (tmp_path / "run" / name).is_file()
    model, state = load_student(tmp_path / "run")
    assert model.config.encoder == "efficientnet_lite0" and state["epoch"] <= 2
    assert result.best_val_f1 == state["best_val_f1"]


def test_resume_continues_where_it_stopped(prepared, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    loop.train(_config(prepared, epochs=2), reference)

    _interrupt_in_second_epoch(monkeypatch, _config(prepared, epochs=2), tmp_path / "run")
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == ["0"]
    loop.train(_config(prepared, epochs=2), tmp_path / "run")
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == ["0", "1"]
    resumed, _ = load_student(tmp_path / "run" / "last")
    uninterrupted, _ = load_student(reference / "last")
    for (name, a), b in zip(resumed.state_dict().items(), uninterrupted.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_other_config_in_the_same_run_folder_is_refused(prepared, tmp_path):
    loop.train(_config(prepared, epochs=1), tmp_path / "run")
    with pytest.raises(ConfigError, match="another configuration"):
        loop.train(_config(prepared, epochs=1, lr=1e-2), tmp_path / "run")


@pytest.mark.parametrize("supervision", ["full", "box"])
def test_baseline_supervisions_train(prepared, tmp_path, supervision):
    loop.train(_config(prepared, epochs=1, supervision=supervision), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["supervision"] == supervision


def test_cli_train_and_predict(prepared, tmp_path):
    from boxpromptiml.cli import main

    code = main(["train", "--out", str(tmp_path / "run"), "--train", prepared["dataset"], "--boxes", prepared["boxes"],
                 "--pseudo-labels", prepared["pl"], "--set", "optim.epochs=1", "--set", "student.input_size=64",
                 "--set", "student.encoder=efficientnet_lite0", "--set", "optim.workers=0"])
    assert code == 0
    tampered_folder = Path(prepared["dataset"]).parent / "Tp"
    assert main(["predict", str(tampered_folder), "--model", str(tmp_path / "run"), "-o", str(tmp_path / "pred")]) == 0
    assert len(list((tmp_path / "pred").glob("*.png"))) == 8


def test_loss_terms():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    region, label = torch.ones(2, 1, 8, 8), torch.tensor([1.0, 0.0])
    total, terms = DistillationLoss(LossConfig(bce=1.0, dice=0.0))(logits, target, region, label)
    torch.testing.assert_close(total, F.binary_cross_entropy_with_logits(logits, target))
    perfect = torch.where(target > 0.5, 20.0, -20.0)
    _, terms = DistillationLoss(LossConfig(bce=0.0, dice=1.0))(perfect, (target > 0.5).float(), region, label)
    assert terms["dice"] < 1e-3
    region = torch.zeros(2, 1, 8, 8)
    _, terms = DistillationLoss(LossConfig(bce=0.0, dice=0.0, outside_box=1.0))(torch.full_like(logits, 20.0),
                                                                              target, region, label)
    assert terms["outside_box"] == pytest.approx(1.0)
    score_logits = torch.tensor([2.0, -1.0])
    total, terms = DistillationLoss(LossConfig(bce=0.0, dice=0.0, image=1.0))(logits, target, region, label,
                                                                            score_logits=score_logits)
    torch.testing.assert_close(total, F.binary_cross_entropy_with_logits(score_logits, label))
    _, terms = DistillationLoss(LossConfig(image=1.0))(logits, target, region, label)
    assert "image" not in terms  # a student without a score head has no image term


def test_image_score_head_is_trained(prepared, tmp_path):
    """With ``student.image_head`` the head learns from the image labels; without the image term it would keep
    its random initial weights (and `predict` would report a random verdict)."""
    heads = {}
    for weight in (0.0, 1.0):
        config = _config(prepared, epochs=1, lr=1e-2, student={"image_head": True}, loss={"image": weight})
        loop.train(config, tmp_path / f"run{weight}")
        model, _ = load_student(tmp_path / f"run{weight}" / "last")
        heads[weight] = model.score_head.weight.detach().clone()
        assert (_rows(tmp_path / f"run{weight}")[0]["image"] != "") == (weight > 0)
    assert not torch.allclose(heads[0.0], heads[1.0])


def test_augmentation_keeps_image_and_target_aligned():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    target = (image[..., 0] > 128).astype(np.float32)
    region = (image[..., 1] > 128).astype(np.float32)
    config = AugmentConfig(hflip=1.0, scale_min=0.5, colour=0.0, jpeg=0.0)
    for seed in range(5):
        aug_image, aug_target, aug_region = augment(image, target, region, config, np.random.default_rng(seed))
        np.testing.assert_array_equal(aug_target, (aug_image[..., 0] > 128).astype(np.float32))
        np.testing.assert_array_equal(aug_region, (aug_image[..., 1] > 128).astype(np.float32))


def test_jpeg_recompression_really_reencodes():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    out = jpeg_recompress(image, 50)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image.astype(int)).mean() > 5


def test_epoch_sampler_is_seeded_and_fills_the_budget():
    from boxpromptiml.training.data import EpochSampler

    sampler = EpochSampler(n_items=5, samples_per_epoch=12, seed=1)
    first = list(sampler)
    assert len(first) == 12 and [d for _, d, _ in first] == list(range(12))
    assert sorted(i for _, _, i in first[:5]) == list(range(5))  # whole shuffled passes first
    assert list(sampler) == first
    sampler.epoch = 1
    assert [i for *_, i in sampler] != [i for *_, i in first]


def test_native_training_samples_are_crops_of_the_image(prepared):
    from boxpromptiml.training.config import Supervision, TrainSource
    from boxpromptiml.training.data import TrainingSet, collect_items

    items = collect_items((TrainSource(prepared["dataset"], prepared["boxes"], prepared["pl"]),), Supervision.FULL)
    dataset = TrainingSet(items, Supervision.FULL, 64, None, seed=0, native=True)
    sample = dataset[(0, 3, 0)]
    assert sample["image"].shape == (3, 64, 64) and sample["target"].shape == (1, 64, 64)
    assert torch.equal(dataset[(0, 3, 0)]["image"], sample["image"])  # same key, same crop
    from boxpromptiml.data import read_image

    full = torch.from_numpy(read_image(items[0].sample.image)).permute(2, 0, 1).float() / 255
    windows = full.unfold(1, 64, 1).unfold(2, 64, 1)  # every 64 x 64 window of the image
    found = (windows - sample["image"][:, None, None]).abs().amax(dim=(0, 3, 4)).min()
    assert float(found) < 1e-6, "a native crop is an exact window of the image, not a resampled one"


def test_time_budget_stops_cleanly_and_the_same_command_continues(prepared, tmp_path, monkeypatch):
    clock = {"t": 0.0}
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock.__setitem__("t", clock["t"] + 20.0) or clock["t"])
    config = _config(prepared, epochs=3, samples_per_epoch=8, max_minutes=1.0)
    result = loop.train(config, tmp_path / "run")
    assert 0 < result.epochs_done < 3 and "run the same command" in run_summary(result)
    rows = _rows(tmp_path / "run")
    assert {"samples_seen", "fit_pixel_f1", "samples_per_second"} <= set(rows[0])
    assert int(rows[-1]["samples_seen"]) == 8 * result.epochs_done
    monkeypatch.undo()
    extended = TrainConfig.from_dict({**config.to_dict(), "optim": {**config.to_dict()["optim"], "max_minutes": None}})
    result = loop.train(extended, tmp_path / "run")  # a new time limit is not a new run
    assert result.epochs_done == 3 and [int(r["epoch"]) for r in _rows(tmp_path / "run")] == [0, 1, 2]


def test_cli_authentic_only_dataset_needs_no_boxes(prepared, toy_dataset, tmp_path):
    from boxpromptiml.cli import main
    from boxpromptiml.data.readers import write_imdl_json

    write_imdl_json(toy_dataset.replace_samples(toy_dataset.authentic), tmp_path / "authentic.json")
    code = main(["train", "--out", str(tmp_path / "run"), "--train", prepared["dataset"], "--boxes", prepared["boxes"],
                 "--pseudo-labels", prepared["pl"], "--train", str(tmp_path / "authentic.json"),
                 "--set", "optim.epochs=1", "--set", "student.input_size=64", "--set", "optim.workers=0",
                 "--set", "student.encoder_init=random"])
    assert code == 0
    sources = json.loads((tmp_path / "run" / "config.json").read_text())["data"]["train"]
    assert [s["boxes"] is None for s in sources] == [False, True]
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "x"), "--boxes", prepared["boxes"]])


def test_bf16_training_on_the_cpu(prepared, tmp_path):
    result = loop.train(_config(prepared, epochs=1, precision="bf16", device="cpu"), tmp_path / "run")
    rows = _rows(tmp_path / "run")
    assert result.epochs_done == 1 and np.isfinite(float(rows[0]["train_loss"]))


@pytest.mark.parametrize("setting, message", [
    ("optim.batch_size=0", "optim.batch_size must be >= 1"),
    ("optim.lr=-1", "optim.lr must be > 0"),
    ("optim.epochs=[", "optim.epochs: cannot read the value"),
    ("optim.epochs=2.5", "optim.epochs must be a whole number"),
    ("augment.jpeg=2", "augment.jpeg must be from 0 to 1"),
    ("optim.max_minutes=0", "optim.max_minutes must be > 0"),
    ("data.synthetic_fraction=abc", "data.synthetic_fraction: expected a number"),
])
def test_settings_are_validated_with_their_name(setting, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().override([setting])


def test_zero_epochs_says_no_model_was_written(prepared, tmp_path):
    result = loop.train(_config(prepared, epochs=0), tmp_path / "run")
    assert "no model was written" in run_summary(result) and not (tmp_path / "run" / "best").exists()


def test_a_folder_without_a_finished_epoch_is_free_and_a_finished_run_can_be_extended(prepared, tmp_path):
    broken = _config(prepared, epochs=1).to_dict()
    broken["data"]["train"][0]["dataset"] = str(tmp_path / "typo.json")
    with pytest.raises(BPIMLError):
        loop.train(TrainConfig.from_dict(broken), tmp_path / "run")
    assert (tmp_path / "run" / "config.json").is_file()
    loop.train(_config(prepared, epochs=1), tmp_path / "run")  # the corrected command is not refused
    result = loop.train(_config(prepared, epochs=2), tmp_path / "run")  # more epochs: continues
    assert result.epochs_done == 2 and [r["epoch"] for r in _rows(tmp_path / "run")] == ["0", "1"]
    with pytest.raises(ConfigError, match="another configuration"):
        loop.train(_config(prepared, epochs=2, lr=1e-2), tmp_path / "run")
    # a run saved before a setting existed resumes with that setting at its default
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    del saved["data"]["synthetic_objects"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    assert loop.train(_config(prepared, epochs=3), tmp_path / "run").epochs_done == 3


def test_one_truncated_pseudo_mask_is_skipped_and_listed(prepared, tmp_path):
    import shutil

    pl = tmp_path / "pl"
    shutil.copytree(prepared["pl"], pl)
    victim = sorted(pl.glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:30])
    config = _config({**prepared, "pl": str(pl)}, epochs=1, workers=2, samples_per_epoch=24)
    result = loop.train(config.override(["data.max_bad_fraction=0.2"]), tmp_path / "run")  # 1 of 12 items is bad
    assert result.epochs_done == 1
    assert victim.stem in json.loads((tmp_path / "run" / "skipped_samples.json").read_text())
    strict = _config({**prepared, "pl": str(pl)}, epochs=1, samples_per_epoch=24).override(["data.max_bad_fraction=0"])
    with pytest.raises(BPIMLError, match="could not be read"):
        loop.train(strict, tmp_path / "strict")


@pytest.mark.parametrize("point", ["group-written:1", "before-last-pointer:1"])
def test_kill_9_while_checkpointing_resumes_to_the_same_model(prepared, tmp_path, point):
    import os
    import subprocess
    import sys

    import yaml

    config = _config(prepared, epochs=3, samples_per_epoch=8)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config.to_dict()))
    reference = tmp_path / "reference"
    loop.train(config, reference)
    command = [sys.executable, "-m", "boxpromptiml", "-q", "train", "--config", str(tmp_path / "c.yaml"),
               "--out", str(tmp_path / "run")]
    killed = subprocess.run(command, env={**os.environ, "BPIML_TEST_CRASH_AT": point}, capture_output=True)
    assert killed.returncode == -9  # SIGKILL in the middle of epoch 2's checkpoint
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == ["0"]
    subprocess.run(command, check=True, capture_output=True)
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == ["0", "1", "2"]
    assert not list((tmp_path / "run" / "checkpoints").glob("*.tmp"))
    resumed, state = load_student(tmp_path / "run" / "last")
    expected, _ = load_student(reference / "last")
    assert state["epoch"] == 2
    for (name, a), b in zip(resumed.state_dict().items(), expected.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_weight_average_is_what_is_saved_and_a_resumed_run_continues_it(prepared, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    assert ema_decay_at(0.995, 0) == pytest.approx(0.1) and ema_decay_at(0.995, 10**6) == 0.995
    config = _config(prepared, epochs=2, samples_per_epoch=8, ema_decay=0.9)
    loop.train(config, tmp_path / "reference")
    group = tmp_path / "reference" / "last"
    average, trained = load_file(str(group / "model.safetensors")), load_file(str(group / "training.safetensors"))
    assert average.keys() == trained.keys()
    assert any(not torch.equal(average[k], trained[k]) for k in average if average[k].is_floating_point())

    _interrupt_in_second_epoch(monkeypatch, config, tmp_path / "run")
    loop.train(config, tmp_path / "run")
    for name in ("model.safetensors", "training.safetensors"):
        resumed, uninterrupted = load_file(str(tmp_path / "run" / "last" / name)), load_file(str(group / name))
        for key, value in resumed.items():
            torch.testing.assert_close(value, uninterrupted[key], rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")
    model, _ = load_student(tmp_path / "run")  # predict / evaluate load the average like any checkpoint
    assert model.config.encoder == "efficientnet_lite0"


# Fine-tuning (optim.init / bpiml train --init): starts from a model's weights and architecture, resumes,
# refuses a conflicting architecture and a folder that is not a model.

def _ft_config(prepared, init=None, epochs=1, student=None, **optim):
    return TrainConfig.from_dict({
        "student": {"input_size": 64, "encoder_init": "random", **(student or {})},
        "data": {"train": [{"dataset": prepared["dataset"], "boxes": prepared["boxes"],
                            "pseudo_labels": prepared["pl"]}],
                 "val": [prepared["dataset"]]},
        "optim": {"epochs": epochs, "batch_size": 4, "lr": 1e-3, "workers": 0, "threads": 2, "warmup_epochs": 0.3,
                  "init": init, **optim},
    })


@pytest.fixture(scope="module")
def base_run(prepared, tmp_path_factory):
    """A trained model with a non-default architecture and a calibrated threshold, as a user's run would be."""
    run = tmp_path_factory.mktemp("base") / "run"
    loop.train(_ft_config(prepared, student={"width": 32, "memory_slots": 8}), run)
    best = (run / "best").resolve()
    student = json.loads((best / "student.json").read_text())
    (best / "student.json").write_text(json.dumps({**student, "pixel_threshold": 0.2}))
    return run


def test_init_takes_the_model_architecture_and_resets_its_threshold(prepared, base_run):
    config = adopt_init_architecture(_ft_config(prepared, init=str(base_run)))
    assert (config.student.width, config.student.memory_slots) == (32, 8)
    assert config.student.pixel_threshold == 0.5  # a fine-tuned model is calibrated again


def test_fine_tuning_starts_from_the_model_weights(prepared, base_run, tmp_path):
    config = adopt_init_architecture(_ft_config(prepared, init=str(base_run)))
    from boxpromptiml.student.model import build_student

    fresh = build_student(config.student)
    load_init_weights(fresh, str(base_run))
    source, _ = load_student(base_run)
    for (name, a), b in zip(fresh.state_dict().items(), source.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    result = loop.train(_ft_config(prepared, init=str(base_run)), tmp_path / "tuned")
    assert result.epochs_done == 1
    init = json.loads((tmp_path / "tuned" / "init.json").read_text())
    assert init["source"] == f"fine-tuned from {base_run}"
    tuned, _ = load_student(tmp_path / "tuned")
    assert tuned.config.width == 32 and tuned.config.pixel_threshold == 0.5


def test_fine_tuning_resumes_where_it_stopped(prepared, base_run, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    loop.train(_ft_config(prepared, init=str(base_run), epochs=2), reference)
    _interrupt_in_second_epoch(monkeypatch, _ft_config(prepared, init=str(base_run), epochs=2), tmp_path / "run")
    loop.train(_ft_config(prepared, init=str(base_run), epochs=2), tmp_path / "run")
    resumed, _ = load_student(tmp_path / "run" / "last")
    uninterrupted, _ = load_student(reference / "last")
    for (name, a), b in zip(resumed.state_dict().items(), uninterrupted.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_a_conflicting_architecture_is_refused(prepared, base_run, tmp_path):
    with pytest.raises(ConfigError, match=r"student.width=48 conflicts with the init model"):
        loop.train(_ft_config(prepared, init=str(base_run), student={"width": 48}), tmp_path / "run")
    # the same value as the init model's is no conflict
    assert adopt_init_architecture(_ft_config(prepared, init=str(base_run), student={"width": 32})).student.width == 32


def test_a_model_folder_without_its_config_is_refused(prepared, base_run, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree((base_run / "best").resolve(), broken)
    (broken / "student.json").unlink()
    with pytest.raises(ConfigError, match=r"has no student.json"):
        loop.train(_ft_config(prepared, init=str(broken)), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"is not a folder"):
        adopt_init_architecture(_ft_config(prepared, init=str(tmp_path / "missing")))


def test_the_shipped_model_is_an_init(prepared):
    config = adopt_init_architecture(_ft_config(prepared, init="shipped", student={"input_size": 256}))
    shipped = json.loads((shipped_model_path() / "student.json").read_text())
    assert config.student.encoder == shipped["encoder"] and config.student.pixel_threshold == 0.5


def test_cli_train_init_and_device(prepared, base_run, tmp_path, capsys):
    from boxpromptiml.cli import main

    code = main(["train", "--out", str(tmp_path / "run"), "--train", prepared["dataset"], "--boxes", prepared["boxes"],
                 "--pseudo-labels", prepared["pl"], "--set", "optim.epochs=1", "--set", "student.input_size=64",
                 "--set", "optim.workers=0", "--init", str(base_run), "--device", "cpu"])
    assert code in (0, 1)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["optim"]["init"] == str(base_run) and saved["optim"]["device"] == "cpu"
    assert saved["student"]["width"] == 32
    assert "no image threshold" in capsys.readouterr().out  # no validation data: said plainly, nothing carried over
    assert not (tmp_path / "run" / "best" / "decision.json").exists()


def test_fine_tuning_with_validation_data_sets_the_thresholds_again(prepared, base_run, toy_dataset, tmp_path,
                                                                      capsys):
    from boxpromptiml.cli import main
    from boxpromptiml.deployment.calibrate import load_decision

    code = main(["train", "--out", str(tmp_path / "run"), "--train", prepared["dataset"], "--boxes", prepared["boxes"],
                 "--pseudo-labels", prepared["pl"], "--val", str(toy_dataset.root / "dataset.json"),
                 "--set", "optim.epochs=1", "--set", "optim.workers=0", "--init", str(base_run)])
    assert code in (0, 1)
    out = capsys.readouterr().out
    assert "thresholds set again on the validation data" in out and "authentic images flagged" in out
    assert load_decision(tmp_path / "run") is not None  # an image threshold of its own
    assert (tmp_path / "run" / "best" / "pixel_calibration.json").is_file()


def test_a_loss_that_becomes_nan_stops_the_run_before_the_weights_take_it(prepared, tmp_path, monkeypatch):
    from boxpromptiml.errors import TrainingError

    real = DistillationLoss.__call__
    calls = []

    def turns_nan(self, logits, *args, **kwargs):
        loss, terms = real(self, logits, *args, **kwargs)
        calls.append(1)
        return (loss * float("nan"), terms) if len(calls) > 3 else (loss, terms)

    monkeypatch.setattr(DistillationLoss, "__call__", turns_nan)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="nan at step"):
        loop.train(_ft_config(prepared, epochs=3, samples_per_epoch=12), run)  # 3 steps per epoch: NaN in epoch 2
    rows = _rows(run)
    assert len(rows) == 1  # epoch 1 was kept, epoch 2 never checkpointed
    model, _ = load_student(run / "last")
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())


@pytest.mark.parametrize("override, words", [
    ("loss.bce=.nan", "finite"), ("optim.lr=.inf", "finite"), ("optim.warmup_epochs=.nan", "finite"),
    ("augment.jpeg_quality_max=50", "must not exceed"), ("student.input_size=100000", "from 32 to 2048"),
])
def test_settings_that_would_train_garbage_or_explode_are_refused(override, words):
    with pytest.raises(ConfigError, match=words):
        load_config(overrides=[override])


def test_a_damaged_optimizer_file_on_resume_is_one_clear_error(prepared, tmp_path, monkeypatch):
    _interrupt_in_second_epoch(monkeypatch, _config(prepared, epochs=2), tmp_path / "run")
    optimizer_file = (tmp_path / "run" / "last").resolve() / "optimizer.safetensors"
    optimizer_file.write_bytes(optimizer_file.read_bytes()[:100])  # truncated
    with pytest.raises(ConfigError, match="optimizer.safetensors.*damaged"):
        loop.train(_config(prepared, epochs=2), tmp_path / "run")


@pytest.mark.parametrize("damage", [b"\xb3\x01 binary", b"", b"{not json"])
def test_a_damaged_json_file_in_a_checkpoint_on_resume_is_one_clear_error(prepared, tmp_path, monkeypatch, damage):
    _interrupt_in_second_epoch(monkeypatch, _config(prepared, epochs=2), tmp_path / "run")
    meta = (tmp_path / "run" / "last").resolve() / "optimizer.json"
    meta.write_bytes(damage)
    with pytest.raises(ConfigError, match="optimizer.json.*(damaged|empty|invalid JSON)"):
        loop.train(_config(prepared, epochs=2), tmp_path / "run")


def test_a_checkpoint_that_cannot_be_written_leaves_no_partial_group(prepared, tmp_path, monkeypatch):
    import errno

    from boxpromptiml.training import checkpoint

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "write_bytes_atomic", disk_full)
    with pytest.raises(OSError, match="No space left"):
        loop.train(_config(prepared, epochs=1), tmp_path / "run")
    assert not list((tmp_path / "run" / "checkpoints").glob("*"))
