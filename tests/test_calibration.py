"""Image-level decisions: the threshold meets its false-alarm rate, travels with the model, and shows up
in predict and evaluate."""

import json
import shutil

import numpy as np
import pytest
import torch

from boxpromptiml.cli import main
from boxpromptiml.deployment.calibrate import load_decision
from boxpromptiml.deployment.map_gate import load_map_gate
from boxpromptiml.deployment.shipped import ship_model
from boxpromptiml.errors import ConfigError
from boxpromptiml.evaluation.calibration import (
    DECISION_FILE,
    PixelCalibration,
    calibrate,
    rate_above,
    threshold_for_false_alarm_rate,
)
from boxpromptiml.student.model import StudentConfig, build_student
from boxpromptiml.training.checkpoint import save_checkpoint


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.1, 0.5])
def test_threshold_flags_at_most_the_rate(rate):
    scores = np.random.default_rng(0).random(101)
    threshold = threshold_for_false_alarm_rate(scores, rate)
    assert rate_above(scores, threshold) <= rate
    # and it is the lowest such threshold: any lower score value would flag more than the rate allows
    lower = scores[scores < threshold]
    if lower.size:
        assert rate_above(scores, lower.max()) > rate


def test_ties_never_push_past_the_rate():
    scores = np.array([0.9] * 10 + [0.1] * 90)
    threshold = threshold_for_false_alarm_rate(scores, 0.05)
    assert threshold == pytest.approx(0.9) and rate_above(scores, threshold) == 0.0


def test_calibrate_reports_what_it_measured():
    decision = calibrate(np.array([0.1, 0.2, 0.3, 0.95]), np.array([0.5, 0.99]), 0.25, "val")
    assert decision.threshold == pytest.approx(0.3)
    assert decision.false_alarm_rate == pytest.approx(0.25) and decision.detection_rate == pytest.approx(1.0)
    assert "25% false alarms on 4 authentic images of val" in decision.describe()
    with pytest.raises(ValueError):
        threshold_for_false_alarm_rate(np.array([]), 0.05)


def test_a_threshold_from_too_few_images_says_so():
    rng = np.random.default_rng(0)
    few = calibrate(rng.random(3), rng.random(5), 0.05, "val")
    assert "only 3 authentic images" in few.describe() and "at least 40" in few.describe()
    assert calibrate(rng.random(40), rng.random(5), 0.05, "val").warning is None
    pixels = PixelCalibration(0.3, {"0.3": 0.5, "0.5": 0.4}, 3, "val")
    assert "only 3 tampered images" in pixels.describe()
    assert "warning" not in PixelCalibration(0.3, {"0.3": 0.5, "0.5": 0.4}, 20, "val").describe()


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    model = build_student(StudentConfig(encoder_init="random", input_size=64, resolution="native"))
    return save_checkpoint(tmp_path / "run" / "best", model, {"epoch": 0})


def test_calibrate_predict_evaluate_and_ship(model_dir, toy_dataset, tmp_path, capsys):
    run_dir = model_dir.parent
    assert main(["calibrate", "--model", str(run_dir), "-d", str(toy_dataset.source),
                 "--false-alarm-rate", "0.25", "--map-gate", "0.5"]) == 0
    decision = load_decision(run_dir)
    assert decision is not None and decision.n_authentic == len(toy_dataset.authentic)
    assert decision.false_alarm_rate <= 0.25
    assert "map gate:" in capsys.readouterr().out
    gate = load_map_gate(model_dir)
    assert gate is not None and gate.authentic_marked <= 0.5 and gate.n_authentic == len(toy_dataset.authentic)
    tampered_folder = toy_dataset.root / "Tp"
    assert main(["predict", str(tampered_folder), "--model", str(run_dir), "-o", str(tmp_path / "pred")]) == 0
    assert "called tampered" in capsys.readouterr().out
    verdicts = json.loads((tmp_path / "pred" / "verdicts.json").read_text())
    assert verdicts["decision"]["threshold"] == decision.threshold
    assert all(v["tampered"] == (v["score"] > decision.threshold) for v in verdicts["images"].values())
    assert main(["evaluate", "-d", str(toy_dataset.source), "--model", str(run_dir),
                 "--json", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["image_threshold"] == decision.threshold and report["image_false_alarm_rate"] <= 0.25
    shipped = ship_model(run_dir, {"summary": "test"}, tmp_path / "shipped")
    assert load_decision(shipped) == decision and load_map_gate(shipped) == gate  # the gate travels too
    (model_dir / DECISION_FILE).unlink()
    shipped = ship_model(run_dir, {"summary": "test"}, shipped)
    assert not (shipped / DECISION_FILE).exists(), "a replaced model's threshold must not stay behind"


def test_model_without_decision_says_so(model_dir, toy_dataset, tmp_path, capsys):
    assert main(["predict", str(toy_dataset.root / "Au"), "--model", str(model_dir), "-o", str(tmp_path / "p")]) == 0
    assert "no calibrated image-level threshold" in capsys.readouterr().out
    assert not (tmp_path / "p" / "verdicts.json").exists()
    shutil.rmtree(tmp_path / "p")


def test_pixel_threshold_choice_prefers_the_best_f1_then_the_trained_threshold():
    from boxpromptiml.evaluation.calibration import choose_pixel_threshold

    assert choose_pixel_threshold({0.2: 0.41, 0.3: 0.43, 0.5: 0.40}) == 0.3
    assert choose_pixel_threshold({0.2: 0.43, 0.45: 0.43, 0.6: 0.43}) == 0.45  # a tie: nearest 0.5
    with pytest.raises(ValueError):
        choose_pixel_threshold({})


def test_a_pixel_threshold_shifts_the_logits_so_it_maps_to_one_half():
    torch.manual_seed(0)
    plain = build_student(StudentConfig(encoder_init="random", input_size=64)).eval()
    shifted = build_student(StudentConfig(encoder_init="random", input_size=64, pixel_threshold=0.3)).eval()
    shifted.load_state_dict(plain.state_dict())
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = torch.sigmoid(plain(image)), torch.sigmoid(shifted(image))
    assert torch.equal(a > 0.3, b > 0.5)
    torch.testing.assert_close(torch.logit(b) - torch.logit(a), torch.full_like(a, -float(np.log(0.3 / 0.7))),
                               rtol=0, atol=1e-3)
    with pytest.raises(ConfigError, match="pixel_threshold"):
        StudentConfig(pixel_threshold=1.0)


def test_pixel_calibration_picks_the_best_validation_threshold_and_is_what_evaluate_then_measures(
        model_dir, toy_dataset, tmp_path):
    from boxpromptiml.deployment.calibrate import calibrate_pixel_threshold
    from boxpromptiml.evaluation.calibration import PIXEL_CALIBRATION_FILE
    from boxpromptiml.training.checkpoint import load_student

    first = calibrate_pixel_threshold(model_dir, toy_dataset)
    assert first.mean_f1[f"{first.threshold:g}"] == max(first.mean_f1.values())
    assert load_student(model_dir)[0].config.pixel_threshold == first.threshold
    assert json.loads((model_dir / PIXEL_CALIBRATION_FILE).read_text())["threshold"] == first.threshold
    assert calibrate_pixel_threshold(model_dir, toy_dataset) == first, "calibrating again starts from the raw map"
    assert main(["evaluate", "-d", str(toy_dataset.source), "--model", str(model_dir),
                 "--json", str(tmp_path / "e.json")]) == 0
    measured = json.loads((tmp_path / "e.json").read_text())["pixel_f1"]
    assert measured == pytest.approx(first.mean_f1[f"{first.threshold:g}"], abs=2e-3)
    shipped = ship_model(model_dir, {"summary": "test"}, tmp_path / "shipped")
    assert (shipped / PIXEL_CALIBRATION_FILE).is_file()
    assert load_student(shipped)[0].config.pixel_threshold == first.threshold


def test_a_cap_on_marked_authentic_images_limits_the_pixel_threshold_choice():
    from boxpromptiml.evaluation.calibration import choose_pixel_threshold

    f1 = {0.1: 0.45, 0.3: 0.42, 0.5: 0.38}
    marked = {0.1: 0.9, 0.3: 0.5, 0.5: 0.3}
    assert choose_pixel_threshold(f1, marked) == 0.1  # no cap: the best F1
    assert choose_pixel_threshold(f1, marked, 0.5) == 0.3
    assert choose_pixel_threshold(f1, marked, 0.1) == 0.5  # none within the cap: the highest candidate


def test_pixel_calibration_records_how_many_authentic_images_each_threshold_marks(model_dir, toy_dataset):
    from boxpromptiml.deployment.calibrate import calibrate_pixel_threshold

    free = calibrate_pixel_threshold(model_dir, toy_dataset)
    assert free.n_authentic == len(toy_dataset.authentic) and set(free.authentic_marked) == set(free.mean_f1)
    shares = [free.authentic_marked[k] for k in sorted(free.authentic_marked, key=float)]
    assert shares == sorted(shares, reverse=True)  # a higher threshold never marks more images
    capped = calibrate_pixel_threshold(model_dir, toy_dataset, max_authentic_marked=0.0)
    assert capped.authentic_marked[f"{capped.threshold:g}"] == 0.0 or capped.threshold == max(map(float, free.mean_f1))
    assert "authentic images marked" in capped.describe() and "at most 0% allowed" in capped.describe()
