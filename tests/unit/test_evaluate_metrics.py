"""Accuracy, agreement and MAE: pure numpy, no runtime or framework import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.evaluate import METRICS, classification_metrics, regression_metrics


def test_accuracy_is_top1_against_integer_labels():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    result = classification_metrics(scores, np.array([0, 1, 1, 0]))
    assert result == {"accuracy": 0.75, "agreement": None}


def test_one_hot_and_column_labels_are_accepted():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    assert classification_metrics(scores, np.eye(2)[[0, 1, 0]])["accuracy"] == pytest.approx(2 / 3)
    assert classification_metrics(scores, np.array([[0], [1], [0]]))["accuracy"] == pytest.approx(2 / 3)


def test_agreement_compares_top1_with_the_reference_not_the_labels():
    pred = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    teacher = np.array([[5.0, 1.0], [0.0, 2.0], [3.0, 1.0], [1.0, 0.0]])  # logits, argmax 0 1 0 0
    labels = np.array([1, 1, 1, 1])
    result = classification_metrics(pred, labels, reference_scores=teacher)
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["agreement"] == pytest.approx(0.75)


def test_classification_length_mismatch_raises():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        classification_metrics(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="reference"):
        classification_metrics(np.zeros((3, 2)), np.array([0, 1, 1]), np.zeros((2, 2)))


def test_regression_mae_and_mae_vs_reference():
    pred = np.array([[1.0], [2.0], [3.0]], np.float32)  # (n, 1) model output against (n,) targets
    result = regression_metrics(pred, np.array([1.5, 2.0, 2.0]), reference=np.array([1.0, 2.5, 3.0]))
    assert result["mae"] == pytest.approx(0.5)
    assert result["mae_vs_reference"] == pytest.approx(1 / 6)
    assert result["agreement"] is None
    assert "mae_vs_reference" not in regression_metrics(pred, np.array([1.0, 2.0, 3.0]))
    assert regression_metrics(pred, np.array([1.0, 2.0, 3.0]))["mae"] == 0.0


def test_regression_shape_mismatch_raises():
    with pytest.raises(ValueError, match="do not match"):
        regression_metrics(np.zeros(3), np.zeros(4))


def test_metric_table_covers_the_recipe_tasks():
    assert METRICS["classification"] is classification_metrics
    assert METRICS["regression"] is regression_metrics


def test_importing_evaluate_pulls_in_no_runtime():
    """In a fresh interpreter (other tests may import runtimes): no framework or runtime is loaded."""
    code = ("import sys, edgekit.evaluate, edgekit.formats.files, edgekit.runtimes; "
            "heavy = {'tensorflow', 'torch', 'onnxruntime', 'ai_edge_litert', 'onnx'}; "
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
