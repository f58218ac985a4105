"""Training curves from a Trainer's ``log_history``: reward and WER side by side, written next to checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EVAL_KEYS = ("eval_wer", "eval_cer", "eval_watch_wer")  # watch: rlnf.trainers.wer_guard, during training


def training_curves_figure(
    log_history: list[dict[str, Any]], reward_key: str = "reward", why_no_wer: str | None = None
) -> Any:
    """A matplotlib figure: mean reward per logged step (and each named reward) left, eval WER/CER per
    evaluation right (with the watched WER of a reference-free run, to read beside the reward). An empty right panel says why (``why_no_wer``, or that no evaluation was logged)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    reward_keys = sorted(
        {k for row in log_history for k in row if k == reward_key or (k.startswith("rewards/") and k.endswith("/mean"))}
    )
    for key in reward_keys:
        points = [(row["step"], row[key]) for row in log_history if row.get(key) is not None and "step" in row]
        if points:
            left.plot(*zip(*points), label=key, marker="." if len(points) < 30 else None)
    left.set(title="reward during training", xlabel="step", ylabel="reward")
    for key in EVAL_KEYS:
        points = [(row["step"], row[key]) for row in log_history if row.get(key) is not None and "step" in row]
        if points:
            right.plot(*zip(*points), label=key, marker="o")
    right.set(title="held-out error rate (greedy)", xlabel="step", ylabel="rate")
    if not right.get_lines():
        reason = why_no_wer or "no eval_wer / eval_cer in the log (evaluation off, or no reference transcripts)"
        right.text(0.5, 0.5, f"no held-out WER/CER:\n{reason}", ha="center", va="center", wrap=True,
                   transform=right.transAxes, fontsize=9)  # fmt: skip
    if not left.get_lines():
        left.text(0.5, 0.5, "no reward logged (no training step reached logging_steps)", ha="center", va="center",
                  wrap=True, transform=left.transAxes, fontsize=9)  # fmt: skip
    for axis in (left, right):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_training_curves(
    log_history: list[dict[str, Any]], path: str | Path, reward_key: str = "reward", why_no_wer: str | None = None
) -> Path:
    """`training_curves_figure` saved as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    figure = training_curves_figure(log_history, reward_key, why_no_wer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
