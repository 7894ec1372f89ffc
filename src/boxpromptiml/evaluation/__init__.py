"""Evaluation: pure IML metrics and the evaluator that reduces them over a dataset."""

from .evaluate import EvaluationReport, Evaluator, evaluate_prediction_dir, evaluate_predictor
from .metrics import Confusion, Reduction

__all__ = ["Confusion", "EvaluationReport", "Evaluator", "Reduction", "evaluate_prediction_dir",
           "evaluate_predictor"]
