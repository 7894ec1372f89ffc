import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    jaccard_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from boxpromptiml.evaluation import metrics as M


def _random_case(seed, shape=(40, 50), quantise=True):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    y, x = rng.integers(0, shape[0] - 10), rng.integers(0, shape[1] - 10)
    mask[y:y + rng.integers(3, 10), x:x + rng.integers(3, 10)] = True
    prob = np.clip(mask * 0.4 + rng.uniform(0, 0.7, size=shape), 0, 1)
    if quantise:
        prob = np.round(prob * 255) / 255  # ties, as in 8-bit maps
    return prob.astype(np.float32), mask


def test_hand_computed_counts_and_scores():
    prob = np.array([[0.9, 0.6, 0.2], [0.5, 0.1, 0.7]])
    mask = np.array([[1, 1, 1], [0, 0, 0]], bool)
    c = M.confusion(prob, mask, 0.5)  # predicted: 0.9 0.6 0.7 (0.5 is not above the threshold)
    assert c == M.Confusion(tp=2, fp=1, fn=1, tn=2)
    assert M.f1(c) == pytest.approx(2 / 3)
    assert M.iou(c) == pytest.approx(0.5)
    assert M.precision(c) == pytest.approx(2 / 3) and M.recall(c) == pytest.approx(2 / 3)


def test_zero_division_is_zero():
    c = M.confusion(np.zeros((2, 2)), np.array([[1, 0], [0, 0]], bool))
    assert M.precision(c) == 0.0 and M.f1(c) == 0.0 and M.iou(c) == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        M.confusion(np.zeros((2, 3)), np.zeros((3, 2), bool))


@pytest.mark.parametrize("seed", range(5))
def test_pixel_scores_match_sklearn(seed):
    prob, mask = _random_case(seed)
    c = M.confusion(prob, mask, 0.5)
    pred, truth = (prob > 0.5).ravel(), mask.ravel()
    assert M.f1(c) == pytest.approx(f1_score(truth, pred, zero_division=0))
    assert M.iou(c) == pytest.approx(jaccard_score(truth, pred, zero_division=0))
    assert M.precision(c) == pytest.approx(precision_score(truth, pred, zero_division=0))
    assert M.recall(c) == pytest.approx(recall_score(truth, pred, zero_division=0))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("quantise", [True, False])
def test_auc_matches_sklearn(seed, quantise):
    prob, mask = _random_case(seed, quantise=quantise)
    assert M.binary_auc(prob, mask) == pytest.approx(roc_auc_score(mask.ravel(), prob.ravel()))


def test_auc_is_none_for_one_class():
    assert M.binary_auc(np.array([0.1, 0.9]), np.array([True, True])) is None
    assert M.binary_auc(np.array([0.1, 0.9]), np.array([False, False])) is None


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_f1_matches_precision_recall_curve(seed):
    prob, mask = _random_case(seed)
    p, r, _ = precision_recall_curve(mask.ravel(), prob.ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.nanmax(np.where(p + r > 0, 2 * p * r / (p + r), 0))
    assert M.best_threshold_f1(prob, mask) == pytest.approx(expected)
    assert M.best_threshold_f1(prob, mask) >= M.f1(M.confusion(prob, mask, 0.5)) - 1e-12


def test_reductions_differ_and_are_named():
    big = M.Confusion(tp=90, fp=10, fn=0, tn=0)    # F1 0.947
    small = M.Confusion(tp=0, fp=0, fn=10, tn=90)  # F1 0
    assert M.reduce([big, small], M.f1, M.Reduction.PER_IMAGE) == pytest.approx((180 / 190) / 2)
    assert M.reduce([big, small], M.f1, M.Reduction.POOLED) == pytest.approx(180 / 200)
    assert M.reduce([big, small], M.f1, "pooled") == pytest.approx(180 / 200)
    assert M.reduce([], M.f1, M.Reduction.POOLED) is None


def test_balanced_accuracy_matches_sklearn():
    rng = np.random.default_rng(0)
    labels, pred = rng.random(50) > 0.4, rng.random(50) > 0.5
    assert M.balanced_accuracy(pred, labels) == pytest.approx(balanced_accuracy_score(labels, pred))
    assert M.balanced_accuracy(pred, np.ones(50, bool)) is None
