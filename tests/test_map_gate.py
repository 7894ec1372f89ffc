"""The map gate (deployment/map_gate.py): maps of photos scored under it mark nothing, chosen on validation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from boxpromptiml.deployment.map_gate import (
    MAP_GATE_FILE,
    MapGate,
    calibrate_map_gate,
    choose_map_gate,
    gate_candidates,
    gate_map,
    load_map_gate,
)
from boxpromptiml.errors import ConfigError, DataError


def test_a_map_under_the_gate_keeps_its_shape_and_marks_nothing() -> None:
    gate = MapGate(threshold=0.6, damped_peak=0.4)
    probability = np.linspace(0.0, 0.9, 100, dtype=np.float32).reshape(10, 10)
    damped = gate_map(probability.copy(), 0.59, gate)
    assert damped.max() == pytest.approx(0.4) and (damped < 0.5).all()
    assert np.argmax(damped) == np.argmax(probability)  # where the student looked stays visible
    np.testing.assert_allclose(damped / damped.max(), probability / probability.max(), rtol=1e-6)
    kept = gate_map(probability.copy(), 0.6, gate)  # at the gate: kept as made
    np.testing.assert_array_equal(kept, probability)
    faint = np.full((4, 4), 0.2, np.float32)  # already under the peak: not raised
    np.testing.assert_array_equal(gate_map(faint.copy(), 0.0, gate), faint)
    assert gate_map(np.zeros((0, 0), np.float32), 0.0, gate).size == 0


def test_a_float16_map_is_damped_in_place() -> None:
    probability = np.full((64, 64), 0.95, np.float16)
    out = gate_map(probability, 0.1, MapGate(threshold=0.5))
    assert out is probability and out.dtype == np.float16 and float(out.max()) <= 0.4 + 1e-3


def test_the_lowest_gate_within_the_cap_is_chosen() -> None:
    # tampered: scores 0.9, 0.8, 0.3 with F1 0.6 each; authentic: scores 0.7 (marked), 0.2 (marked), 0.1 (clean)
    candidates = gate_candidates(np.array([0.9, 0.8, 0.3]), np.array([0.6, 0.6, 0.6]), np.array([0.7, 0.2, 0.1]),
                                 np.array([True, True, False]))
    assert candidates[0].threshold == 0.0 and candidates[0].authentic_marked == pytest.approx(2 / 3)
    none_damped = choose_map_gate(candidates, 1.0)
    assert none_damped.threshold == 0.0 and none_damped.mean_f1 == pytest.approx(0.6)
    one_third = choose_map_gate(candidates, 0.34)  # the gate must pass 0.2: half-way to 0.3, no tampered map lost
    assert one_third.threshold == pytest.approx(0.25) and one_third.mean_f1 == pytest.approx(0.6)
    assert one_third.authentic_marked == pytest.approx(1 / 3) and one_third.tampered_damped == 0.0
    none_marked = choose_map_gate(candidates, 0.0)  # past 0.7: the tampered photo at 0.3 loses its map
    assert none_marked.threshold == pytest.approx(0.75) and none_marked.mean_f1 == pytest.approx(0.4)
    assert none_marked.tampered_damped == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="max_authentic_marked"):
        choose_map_gate(candidates, 1.5)
    with pytest.raises(DataError, match="tampered and authentic"):
        gate_candidates(np.array([]), np.array([]), np.array([0.5]), np.array([True]))


def test_gate_settings_are_checked_and_a_broken_file_is_named(tmp_path) -> None:
    for values, message in (({"threshold": 1.5}, "threshold"), ({"threshold": 0.5, "damped_peak": 0.5}, "damped_peak"),
                            ({"threshold": 0.5, "sides": 3}, "unknown"), ({}, "needs a threshold")):
        with pytest.raises(ConfigError, match=message):
            MapGate.from_dict(values)
    assert load_map_gate(tmp_path) is None
    for text, message in (("{not json", "invalid JSON"), ("[1]", "JSON object"), ('{"threshold": 2}', "threshold")):
        (tmp_path / MAP_GATE_FILE).write_text(text)
        with pytest.raises(ConfigError, match=message) as error:
            load_map_gate(tmp_path)
        assert MAP_GATE_FILE in str(error.value)
    gate = MapGate(threshold=0.25, calibrated_on="val")
    (tmp_path / MAP_GATE_FILE).write_text(json.dumps(gate.to_dict()))
    assert load_map_gate(tmp_path) == gate


def test_calibration_writes_the_gate_the_validation_images_call_for(toy_dataset, tmp_path) -> None:
    """A stand-in model marks every pixel and scores each photo by its brightness; the gate written is the one the
    pure chooser picks on those numbers."""
    from boxpromptiml.data.images import read_image, read_mask
    from boxpromptiml.evaluation.metrics import confusion, f1

    def predict(image: np.ndarray) -> SimpleNamespace:
        return SimpleNamespace(probability=np.full(image.shape[:2], 0.9, np.float32), score=float(image.mean() / 255))

    stand_in = SimpleNamespace(predict=predict, map_gate=None)
    gate = calibrate_map_gate(stand_in, tmp_path, toy_dataset, max_authentic_marked=0.5, source="toy")
    tampered = [s for s in toy_dataset.samples if s.mask is not None]
    authentic = [s for s in toy_dataset.samples if s.mask is None]
    scores = {s.name: read_image(s.image).mean() / 255 for s in toy_dataset.samples}
    f1s = [f1(confusion(np.full(read_image(s.image).shape[:2], 0.9, np.float32),
                        read_mask(s.mask, read_image(s.image).shape[:2]))) for s in tampered]
    expected = choose_map_gate(gate_candidates(np.array([scores[s.name] for s in tampered]), np.array(f1s),
                                               np.array([scores[s.name] for s in authentic]),
                                               np.ones(len(authentic), bool)), 0.5)
    assert gate.threshold == pytest.approx(expected.threshold) and gate.authentic_marked <= 0.5
    assert gate.authentic_marked_ungated == 1.0 and gate.n_tampered == len(tampered)
    assert load_map_gate(tmp_path) == gate and "toy" in gate.describe()
    with pytest.raises(ConfigError, match="gate off"):
        calibrate_map_gate(SimpleNamespace(predict=predict, map_gate=gate), tmp_path, toy_dataset)


def test_a_model_with_a_gate_damps_low_scored_maps_and_the_switch_turns_it_off(tmp_path) -> None:
    import torch
    from PIL import Image

    from boxpromptiml.cli import main
    from boxpromptiml.deployment.predictor import load_predictor
    from boxpromptiml.student.model import StudentConfig, build_student
    from boxpromptiml.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_student(StudentConfig(encoder="efficientnet_lite0", encoder_init="random", input_size=64))
    folder = save_checkpoint(tmp_path / "best", model, {"epoch": 0})
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    plain = load_predictor(folder, backend="torch")
    assert plain.map_gate is None and plain.describe()["map_gate"] == "off"
    made = plain.predict(image)
    # every score is under a gate of 1.0: every map is damped
    (folder / MAP_GATE_FILE).write_text(json.dumps(MapGate(threshold=1.0, damped_peak=0.3).to_dict()))
    gated = load_predictor(folder, backend="torch")
    assert "damped" in gated.describe()["map_gate"]
    damped = gated.predict(image)
    assert damped.score == pytest.approx(made.score)  # the gate changes maps, never scores
    assert damped.probability.max() == pytest.approx(min(0.3, made.probability.max()), rel=1e-4)
    off = load_predictor(folder, backend="torch", map_gate=False)
    np.testing.assert_allclose(off.predict(image).probability, made.probability)
    # the CLI switch
    Image.fromarray(image).save(tmp_path / "photo.png")
    for flag, out in (([], "on"), (["--no-map-gate"], "off")):
        assert main(["predict", str(tmp_path / "photo.png"), "--model", str(folder), "--backend", "torch",
                     "-o", str(tmp_path / out), *flag]) == 0
    on = np.asarray(Image.open(tmp_path / "on" / "photo.png"), dtype=float)
    off_map = np.asarray(Image.open(tmp_path / "off" / "photo.png"), dtype=float)
    assert on.max() <= 0.3 * 255 + 1 and on.max() < off_map.max()


def test_verdicts_say_which_maps_the_gate_damped(tmp_path) -> None:
    import torch
    from PIL import Image

    from boxpromptiml.cli import main
    from boxpromptiml.evaluation.calibration import DECISION_FILE, ImageDecision
    from boxpromptiml.student.model import StudentConfig, build_student
    from boxpromptiml.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_student(StudentConfig(encoder="efficientnet_lite0", encoder_init="random", input_size=64))
    folder = save_checkpoint(tmp_path / "best", model, {"epoch": 0})
    (folder / DECISION_FILE).write_text(json.dumps(ImageDecision(0.5, 0.05, 0.05, 0.5, 40, 40, "val").to_dict()))
    (folder / MAP_GATE_FILE).write_text(json.dumps(MapGate(threshold=1.0).to_dict()))
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "a.png"), "--model", str(folder), "--backend", "torch",
                 "-o", str(tmp_path / "out")]) == 0
    verdicts = json.loads((tmp_path / "out" / "verdicts.json").read_text())
    assert verdicts["map_gate"]["threshold"] == 1.0 and verdicts["images"]["a"]["map_damped"] is True
