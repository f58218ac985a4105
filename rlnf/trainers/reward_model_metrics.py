"""Reward-model metrics: regression quality of scores in [0, 1] and the mismatch AUROC.

`compute_reward_metrics` is the one definition: the training recipe reports with it (`compute_metrics`, the
`Trainer` adapter, every evaluation) and `rlnf.trainers.reward_model_evaluation` / ``rlnf eval-reward`` report
with it too. Arrays in, floats out: numpy (scipy's ranks and correlations, imported when called), no torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["ACCURACY_TOLERANCE", "auroc", "compute_metrics", "compute_reward_metrics"]

ACCURACY_TOLERANCE = 0.1  # the model card's "accuracy": share of predictions within +-0.1 of the label


def auroc(positives: Iterable[float], negatives: Iterable[float]) -> float:
    """Area under the ROC curve = P(positive scores above negative), ties counting half (Mann-Whitney U)."""
    from scipy.stats import rankdata

    pos = np.asarray(list(positives), dtype=np.float64).ravel()
    neg = np.asarray(list(negatives), dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks: ties share the rank
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def _correlation(kind: str, x: np.ndarray, y: np.ndarray) -> float:
    from scipy import stats

    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")  # undefined for constant inputs (scipy would warn and return nan anyway)
    result = stats.pearsonr(x, y) if kind == "pearson" else stats.spearmanr(x, y)
    return float(result[0])


def compute_reward_metrics(
    predictions: Any,
    labels: Any,
    *,
    mismatch_predictions: Any = None,
    matched_predictions: Any = None,
) -> dict[str, float]:
    """Regression quality of scores in [0, 1] against labels in [0, 1], plus mismatch AUROC.

    Keys: ``mse``, ``r2`` (1 - SS_res/SS_tot), ``pearson``, ``spearman``, ``accuracy@0.1`` (share with
    |prediction - label| <= 0.1, the card's "accuracy"), ``n``; with ``mismatch_predictions`` (scores of
    clips paired with ANOTHER clip's transcript) also ``mismatch_auroc``: how often a true pair outscores a
    shuffled one. True-pair scores are ``matched_predictions`` when given (e.g. each clip with its reference),
    else ``predictions``.
    """
    pred = np.asarray(predictions, dtype=np.float64).ravel()
    true = np.asarray(labels, dtype=np.float64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"got {pred.size} predictions but {true.size} labels")
    if pred.size == 0:
        raise ValueError("no predictions to evaluate")
    error = pred - true
    ss_tot = float(((true - true.mean()) ** 2).sum())
    metrics = {
        "mse": float(np.mean(error**2)),
        "r2": float(1.0 - (error**2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
        "pearson": _correlation("pearson", pred, true),
        "spearman": _correlation("spearman", pred, true),
        f"accuracy@{ACCURACY_TOLERANCE:g}": float(np.mean(np.abs(error) <= ACCURACY_TOLERANCE + 1e-12)),
        "n": int(pred.size),
    }
    if mismatch_predictions is not None:
        positives = pred if matched_predictions is None else np.asarray(matched_predictions, dtype=np.float64)
        metrics["mismatch_auroc"] = auroc(positives, mismatch_predictions)
    return metrics


def compute_metrics(eval_prediction: Any) -> dict[str, float]:
    """`Trainer(compute_metrics=...)` adapter: ``EvalPrediction(predictions, label_ids)`` -> reward metrics."""
    predictions = eval_prediction.predictions
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    return compute_reward_metrics(predictions, eval_prediction.label_ids)
