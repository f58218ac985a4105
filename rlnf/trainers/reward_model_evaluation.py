"""Evaluating a reward model: how well its scores track human/synthetic scores, and whether it notices a
transcript that belongs to another clip.

Two passes over the split: every (clip, transcript) row against its score (MSE, R2, Pearson, Spearman,
accuracy@0.1), and each clip with its own transcript vs. another clip's (mismatch AUROC). The metrics are
`rlnf.trainers.reward_model_metrics.compute_reward_metrics`, the same function the training recipe reports with.
The command line, ``rlnf eval-reward``, is in `rlnf.cli`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..data.scorer_data import (
    ScorerDatasetError,
    clip_keys,
    score_range_for_scale,
    undecoded_audio,
    validate_scorer_dataset,
)
from .reward_model_metrics import compute_reward_metrics

if TYPE_CHECKING:
    import datasets

    from ..reward_model.modeling import RewardModel
    from ..reward_model.processing import RewardModelProcessor

logger = logging.getLogger(__name__)

__all__ = [
    "evaluate_reward_model",
    "mismatch_pairs",
    "plot_reward_evaluation",
    "predict_scores",
    "report_splits",
    "write_metrics_json",
]


@torch.inference_mode()
def predict_scores(
    model: RewardModel,
    processor: RewardModelProcessor,
    audios: Sequence[Any],
    texts: Sequence[str] | Sequence[Sequence[str]],
    *,
    batch_size: int = 32,
    sampling_rate: int | None = None,
) -> np.ndarray:
    """Scores in [0, 1] of ``audios[i]`` with ``texts[i]`` ([n]), or with each of ``texts[i]`` ([n, k]).

    With several texts per clip, each clip's features and audio encoding are computed once (how a GRPO reward
    scores G completions of one prompt), so the mismatch pass costs little more than the text encoder.
    """
    if len(audios) != len(texts):
        raise ValueError(f"got {len(audios)} audios but {len(texts)} texts")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    several = len(texts) > 0 and not isinstance(texts[0], str)
    per_clip = [list(t) for t in texts] if several else [[t] for t in texts]
    k = len(per_clip[0]) if per_clip else 1
    if any(len(t) != k for t in per_clip):
        raise ValueError("every clip needs the same number of texts")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores = np.zeros((len(audios), k), dtype=np.float64)
    try:
        for start in range(0, len(audios), batch_size):
            chunk = slice(start, start + batch_size)
            features = processor.extract_audio(list(audios[chunk]), sampling_rate=sampling_rate)
            audio = model.encode_audio(features["audio"].to(device), features["audio_attention_mask"].to(device))
            rows = len(features["audio"])
            flat = [text for clip_texts in per_clip[chunk] for text in clip_texts]
            tokens = processor.tokenize(flat)
            text = model.encode_text(tokens["text"].to(device), tokens["text_attention_mask"].to(device))
            index = torch.arange(rows, device=device).repeat_interleave(k)
            scores[chunk] = model.score(audio.select(index), text).float().cpu().numpy().reshape(rows, k)
    finally:
        model.train(was_training)
    return scores if several else scores[:, 0]


def mismatch_pairs(
    dataset: datasets.Dataset,
    *,
    audio_column: str = "audio",
    text_column: str = "text",
    score_column: str = "score",
    clip_column: str | None = None,
    reference_column: str | None = "reference",
    seed: int = 0,
) -> tuple[list[Any], list[str], list[str]]:
    """One entry per clip: (audio, its own transcript, a transcript of another clip with different text).

    A clip's own transcript is its ``reference`` when the dataset has one, else its best-scored row's text
    (rows hold ASR hypotheses of varying quality; only the best stands for "the right transcript"). The other
    transcript is drawn from a seeded shuffle of the clips, skipping clips that say the same sentence.
    """
    keys = clip_keys(dataset, clip_column=clip_column, audio_column=audio_column)
    use_reference = reference_column is not None and reference_column in dataset.column_names
    columns = [audio_column, text_column, score_column] + ([reference_column] if use_reference else [])
    view = dataset.select_columns(columns)
    best: dict[Any, tuple[float, int]] = {}
    for i, (key, score) in enumerate(zip(keys, view[score_column], strict=True)):
        if key not in best or float(score) > best[key][0]:
            best[key] = (float(score), i)
    rows = [index for _, index in best.values()]
    picked = view.select(rows)
    audios = list(picked[audio_column])
    own = [
        ref if use_reference and isinstance(ref, str) and ref.strip() else text
        for ref, text in zip(
            picked[reference_column] if use_reference else picked[text_column], picked[text_column], strict=True
        )
    ]
    order = np.random.default_rng(seed).permutation(len(own))
    shuffled: list[str] = []
    normalised = [" ".join(t.split()).lower() for t in own]
    for position, clip in enumerate(order):
        for step in range(1, len(order)):
            other = order[(position + step) % len(order)]
            if normalised[other] != normalised[clip]:
                break
        else:
            raise ScorerDatasetError("mismatch pairs need at least two clips with different transcripts")
        shuffled.append((clip, own[other]))
    others = dict(shuffled)
    return audios, own, [others[i] for i in range(len(own))]


def evaluate_reward_model(
    model: RewardModel,
    processor: RewardModelProcessor,
    dataset: datasets.Dataset,
    *,
    score_scale: float = 100.0,
    audio_column: str = "audio",
    text_column: str = "text",
    score_column: str = "score",
    clip_column: str | None = None,
    reference_column: str | None = "reference",
    batch_size: int = 32,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metrics of ``model`` on ``dataset`` and the arrays behind them (for plots): ``predictions``,
    ``labels``, ``matched`` and ``mismatched`` (one per clip).

    A split too small for shuffled pairs (one clip, or one transcript for every clip) reports
    ``mismatch_auroc`` None (NaN) with a warning instead of failing: a small held-out split must not crash a
    run after training."""
    validate_scorer_dataset(
        dataset,
        audio_column=audio_column,
        text_column=text_column,
        score_column=score_column,
        score_range=score_range_for_scale(score_scale),
    )
    dataset = undecoded_audio(dataset, audio_column)
    start = time.perf_counter()
    predictions = predict_scores(
        model, processor, list(dataset[audio_column]), list(dataset[text_column]), batch_size=batch_size
    )
    labels = np.asarray(dataset[score_column], dtype=np.float64) / float(score_scale)
    try:
        audios, own, others = mismatch_pairs(
            dataset, audio_column=audio_column, text_column=text_column, score_column=score_column,
            clip_column=clip_column, reference_column=reference_column, seed=seed,
        )  # fmt: skip
    except ScorerDatasetError as error:
        logger.warning("no mismatch AUROC on these %d rows: %s", len(dataset), error)
        audios, own, others = [], [], []
    pair_scores = np.zeros((0, 2))
    if audios:
        pair_scores = predict_scores(
            model, processor, audios, [[a, b] for a, b in zip(own, others, strict=True)], batch_size=batch_size
        )
    metrics = compute_reward_metrics(
        predictions, labels, matched_predictions=pair_scores[:, 0], mismatch_predictions=pair_scores[:, 1]
    )
    metrics["mismatch_clips"] = len(audios)
    metrics["eval_seconds"] = round(time.perf_counter() - start, 2)
    details = {
        "predictions": predictions,
        "labels": labels,
        "matched": pair_scores[:, 0],
        "mismatched": pair_scores[:, 1],
    }
    return metrics, details


def report_splits(
    model: RewardModel, processor: RewardModelProcessor, splits: dict[str, Any], args: Any, output_dir: Path
) -> dict[str, Any]:
    """Evaluate each held-out split once (``test`` first), write ``test_metrics.json`` (keys ``<split>_<metric>``)
    and one plot per split; the shuffled pairs use seed 0, as `rlnf eval-reward` does by default."""
    report: dict[str, Any] = {}
    for name, dataset in splits.items():
        metrics, details = evaluate_reward_model(
            model, processor, dataset, score_scale=args.score_scale, audio_column=args.audio_column,
            text_column=args.text_column, score_column=args.score_column, clip_column=args.clip_column,
            reference_column=args.reference_column, batch_size=args.per_device_eval_batch_size, seed=0,
        )  # fmt: skip
        report.update({f"{name}_{key}": value for key, value in metrics.items()})
        if "kind" in dataset.column_names:  # demo rows: also the policy samples alone, all and per policy
            report.update({f"{name}_{key}": value for key, value in _policy_metrics(dataset["kind"], details).items()})
        plot_reward_evaluation(details, metrics, output_dir / f"{name}_plot.png",
                               title=f"{model.config.fusion_type} fusion, {name} split")  # fmt: skip
    write_metrics_json(report, output_dir / "test_metrics.json")
    return report


def _policy_metrics(kinds: list[str], details: dict[str, np.ndarray]) -> dict[str, Any]:
    """Metrics of the policy samples alone (``policy_*``) and of each policy's (kind ``policy:<name>`` ->
    ``policy_<name>_*``): how well the model ranks the errors a given policy family makes."""
    kinds_array = np.asarray(kinds, dtype=object)
    groups = {"policy": np.asarray([str(k).startswith("policy") for k in kinds])}
    for kind in sorted({str(k) for k in kinds if str(k).startswith("policy:")}):
        groups[f"policy_{kind.split(':', 1)[1]}"] = kinds_array == kind
    report: dict[str, Any] = {}
    for prefix, rows in groups.items():
        if rows.sum() >= 2:
            alone = compute_reward_metrics(details["predictions"][rows], details["labels"][rows])
            report.update({f"{prefix}_{key}": value for key, value in alone.items()})
    return report


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics_json(metrics: dict[str, Any], path: str | os.PathLike) -> Path:
    """Strict JSON (NaN -> null, which other tools can read), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({k: _finite_or_none(v) for k, v in metrics.items()}, indent=2) + "\n")
    tmp.replace(path)
    return path


def plot_reward_evaluation(
    details: dict[str, np.ndarray], metrics: dict[str, Any], path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Scatter (prediction vs. label), calibration (mean label per prediction decile) and the matched vs.
    shuffled score histograms, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictions, labels = details["predictions"], details["labels"]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    ax.scatter(labels, predictions, s=8, alpha=0.4)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        xlabel="label (score / scale)",
        ylabel="predicted score",
        title=f"Pearson {metrics.get('pearson', float('nan')):.3f}, MSE {metrics.get('mse', float('nan')):.4f}",
    )
    ax = axes[1]
    edges = np.linspace(0.0, 1.0, 11)
    which = np.clip(np.digitize(predictions, edges) - 1, 0, 9)
    centers, means, counts = [], [], []
    for b in range(10):
        selected = which == b
        if selected.any():
            centers.append(predictions[selected].mean())
            means.append(labels[selected].mean())
            counts.append(int(selected.sum()))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(centers, means, "o-")
    for x, y, n in zip(centers, means, counts, strict=True):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean predicted score (per bin)",
        ylabel="mean label",
        title="calibration (points: rows per bin)",
    )
    ax = axes[2]
    if "matched" in details and len(details["matched"]):
        bins = np.linspace(0, 1, 26)
        ax.hist(details["matched"], bins=bins, alpha=0.6, label="own transcript")
        ax.hist(details["mismatched"], bins=bins, alpha=0.6, label="another clip's transcript")
        ax.legend()
    ax.set(
        xlabel="predicted score",
        ylabel="clips",
        title=f"mismatch AUROC {metrics.get('mismatch_auroc', float('nan')):.3f}",
    )
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
