"""The image-level verdict fitted on a frozen localizer (bpiml fit-verdict) and how verdicts are worded."""

import numpy as np
import pytest
import torch

from boxpromptiml.cli import main
from boxpromptiml.data.degrade import jpeg_recompress
from boxpromptiml.data.images import read_image
from boxpromptiml.deployment.predictor import load_predictor
from boxpromptiml.deployment.report import verdict_text
from boxpromptiml.deployment.verdict import VERDICT_FILE, fit_verdict, head_inputs
from boxpromptiml.errors import ConfigError
from boxpromptiml.evaluation.calibration import ImageDecision
from boxpromptiml.student.model import StudentConfig, build_student
from boxpromptiml.training.checkpoint import load_student, save_checkpoint


@pytest.fixture(scope="module")
def localizer(tmp_path_factory):
    torch.manual_seed(0)
    model = build_student(StudentConfig(encoder_init="random", input_size=64, resolution="native",
                                        pixel_threshold=0.3))
    return save_checkpoint(tmp_path_factory.mktemp("localizer") / "best", model, {"epoch": 0})


def test_the_fitted_head_is_the_logistic_regression_and_the_maps_stay_frozen(localizer, toy_dataset, tmp_path):
    fit = fit_verdict(localizer, toy_dataset, tmp_path / "verdict", quality=(80, 90), copies=2, folds=2)
    assert fit.n_tampered == len(toy_dataset.tampered) and fit.n_authentic == len(toy_dataset.authentic)
    assert 0.0 <= fit.cv_auc <= 1.0 and (tmp_path / "verdict" / VERDICT_FILE).is_file()
    before, _ = load_student(localizer)
    after, _ = load_student(tmp_path / "verdict")
    assert after.config.image_head and after.config.pixel_threshold == 0.3
    for name, tensor in before.state_dict().items():  # the localizer's weights, unchanged
        torch.testing.assert_close(after.state_dict()[name], tensor)
    # the head's score is a logistic function of what it reads, and it is what predict reports
    image = jpeg_recompress(read_image(toy_dataset.samples[0].image), 85)
    inputs = torch.from_numpy(head_inputs(after, image))
    expected = torch.sigmoid(after.score_head(inputs[None]))[0, 0].item()
    got = load_predictor(tmp_path / "verdict", backend="torch").predict(image).score
    assert got == pytest.approx(expected, abs=1e-4)
    # the default backend (OpenVINO, bf16 on CPUs that have it) reports the same score within bf16's precision
    assert load_predictor(tmp_path / "verdict").predict(image).score == pytest.approx(expected, abs=1e-2)
    before_map = load_predictor(localizer, backend="torch").predict(image).probability  # torch: no second graph
    np.testing.assert_allclose(load_predictor(tmp_path / "verdict", backend="torch").predict(image).probability,
                               before_map, atol=1e-5)


def test_fit_verdict_refuses_to_overwrite_the_localizer_and_needs_both_classes(localizer, toy_dataset):
    with pytest.raises(ConfigError, match="own folder"):
        fit_verdict(localizer, toy_dataset, localizer)
    from boxpromptiml.errors import DataError

    with pytest.raises(DataError, match="tampered and authentic"):
        fit_verdict(localizer, toy_dataset.replace_samples(toy_dataset.tampered), localizer.parent / "x")


def test_fit_verdict_command_calibrates_on_resaved_validation_images(localizer, toy_dataset, tmp_path, capsys):
    source = str(toy_dataset.source)
    assert main(["fit-verdict", "--model", str(localizer), "--train", source, "--val", source,
                 "--out", str(tmp_path / "v"), "--copies", "1", "--threads", "1"]) == 0
    decision = load_predictor(tmp_path / "v").decision
    assert decision is not None and "re-saved as JPEG 90" in decision.calibrated_on
    assert "caught" in capsys.readouterr().out


def test_a_verdict_states_its_detection_rate_and_that_silence_is_weak_evidence():
    decision = ImageDecision(0.8, 0.05, 0.06, 0.14, 51, 70, "val")
    flagged, quiet = verdict_text(0.9, decision), verdict_text(0.1, decision)
    assert flagged.startswith("TAMPERED") and "caught 14% of its 70 tampered" in flagged
    assert quiet.startswith("not flagged") and "weak evidence" in quiet
    assert "caught 14%" in decision.describe()


def test_a_verdict_says_when_the_map_gate_damped_the_map():
    from boxpromptiml.deployment.map_gate import MapGate

    decision, gate = ImageDecision(0.8, 0.05, 0.06, 0.14, 51, 70, "val"), MapGate(threshold=0.5)
    assert "damped" in verdict_text(0.3, decision, gate) and "0.500" in verdict_text(0.3, decision, gate)
    assert "damped" not in verdict_text(0.6, decision, gate)  # above the gate: the map is as made
    assert "damped" in verdict_text(0.3, None, gate)  # no verdict, still said
    assert "damped" not in verdict_text(0.3, decision)
