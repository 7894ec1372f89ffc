import json

import numpy as np
import pytest

from boxpromptiml.cli import main
from boxpromptiml.data import Label, load_dataset, read_mask, write_probability_map
from boxpromptiml.data.images import image_size
from boxpromptiml.errors import DataError
from boxpromptiml.evaluation import Evaluator, evaluate_prediction_dir

REQUIRED_KEYS = {"pixel_f1", "pixel_iou", "pixel_auc", "pixel_f1_best", "pixel_f1_pooled", "image_auc",
                 "image_bacc", "n_tampered", "n_authentic"}


def _write_maps(dataset, out, make):
    for s in dataset:
        mask = read_mask(s.mask) if s.mask else np.zeros(image_size(s.image), bool)
        write_probability_map(out / f"{s.name}.png", make(mask))
    return out


def test_ground_truth_as_prediction_is_perfect(toy_dataset, tmp_path):
    preds = _write_maps(toy_dataset, tmp_path, lambda m: m.astype(np.float32))
    report, run = evaluate_prediction_dir(toy_dataset, preds)
    assert not run.failures
    assert report.pixel_f1 == 1.0 and report.pixel_iou == 1.0 and report.pixel_auc == 1.0
    assert report.image_auc == 1.0 and report.image_bacc == 1.0
    assert (report.n_tampered, report.n_authentic) == (8, 4)


def test_all_zero_prediction_scores_zero(toy_dataset, tmp_path):
    preds = _write_maps(toy_dataset, tmp_path, lambda m: np.zeros(m.shape, np.float32))
    report, _ = evaluate_prediction_dir(toy_dataset, preds)
    assert report.pixel_f1 == 0.0 and report.pixel_f1_pooled == 0.0 and report.pixel_auc == 0.5
    assert report.image_auc == 0.5


def test_per_image_mean_and_pooled_are_reported(toy_dataset, tmp_path):
    def half(mask):
        out = mask.astype(np.float32)
        out[::2] = 0  # drop every other row of every mask
        return out

    report, _ = evaluate_prediction_dir(toy_dataset, _write_maps(toy_dataset, tmp_path, half))
    f1s = [r.confusion for r in report.per_image if r.label is Label.TAMPERED]
    assert report.pixel_precision == 1.0 and 0 < report.pixel_recall < 1
    assert report.pixel_f1 == pytest.approx(np.mean([2 * c.tp / (2 * c.tp + c.fp + c.fn) for c in f1s]))


def test_missing_predictions_are_listed(toy_dataset, tmp_path):
    _write_maps(toy_dataset, tmp_path, lambda m: m.astype(np.float32))
    (tmp_path / f"{toy_dataset[1].name}.png").unlink()
    (tmp_path / f"{toy_dataset[-1].name}.png").unlink()
    with pytest.raises(DataError, match=rf"2 of 12 prediction\(s\) missing[\s\S]*{toy_dataset[1].name}.png"):
        evaluate_prediction_dir(toy_dataset, tmp_path)


def test_prediction_of_wrong_size_fails_or_is_resized(toy_dataset, tmp_path):
    _write_maps(toy_dataset, tmp_path, lambda m: m.astype(np.float32))
    first = toy_dataset.tampered[0]
    write_probability_map(tmp_path / f"{first.name}.png", np.ones((10, 10), np.float32))
    report, run = evaluate_prediction_dir(toy_dataset, tmp_path)
    assert first.name in run.failures and "--resize-predictions" in run.failures[first.name]
    assert report.n_tampered == 7
    report, run = evaluate_prediction_dir(toy_dataset, tmp_path, resize_predictions=True)
    assert not run.failures and report.n_tampered == 8


def test_model_scores_file_overrides_map_maximum(toy_dataset, tmp_path):
    _write_maps(toy_dataset, tmp_path, lambda m: np.zeros(m.shape, np.float32))
    scores = {s.name: (0.9 if s.is_tampered else 0.1) for s in toy_dataset}
    (tmp_path / "scores.json").write_text(json.dumps(scores))
    report, _ = evaluate_prediction_dir(toy_dataset, tmp_path)
    assert report.image_auc == 1.0 and report.pixel_f1 == 0.0


def test_evaluator_needs_mask_for_tampered():
    with pytest.raises(ValueError, match="mask"):
        Evaluator().add("x", Label.TAMPERED, np.zeros((2, 2)))


def test_cli_evaluate_writes_json(toy_dataset, tmp_path, capsys):
    preds = _write_maps(toy_dataset, tmp_path / "p", lambda m: m.astype(np.float32))
    code = main(["evaluate", "--dataset", str(toy_dataset.source), "--pred", str(preds),
                 "--json", str(tmp_path / "r.json"), "--per-image"])
    assert code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert REQUIRED_KEYS <= result.keys() and result["pixel_f1"] == 1.0 and len(result["per_image"]) == 12
    assert "pixel F1 (mean over tampered images)" in capsys.readouterr().out


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["evaluate", "--dataset", str(tmp_path / "nope.json"), "--pred", str(tmp_path)]) == 2
    assert "error: dataset not found" in capsys.readouterr().err


def test_casia_ground_truth_and_zero_maps(shared_data, tmp_path):
    dataset = load_dataset(shared_data / "casia1_dev" / "test.json")
    report, run = evaluate_prediction_dir(dataset, shared_data / "casia1_dev" / "Gt")
    assert not run.failures and report.pixel_f1 == 1.0 and report.n_tampered == 203
    zeros = _write_maps(dataset, tmp_path, lambda m: np.zeros(m.shape, np.float32))
    assert evaluate_prediction_dir(dataset, zeros)[0].pixel_f1 == 0.0
