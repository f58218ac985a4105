"""Training curves from a Trainer's ``log_history``: reward and WER side by side, written next to checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_training_curves(log_history: list[dict[str, Any]], path: str | Path, reward_key: str = "reward") -> Path:
    """Plot mean reward per logged step (and each named reward) and eval WER/CER per evaluation to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    reward_keys = sorted({k for row in log_history for k in row if k == reward_key or (k.startswith("rewards/") and k.endswith("/mean"))})
    for key in reward_keys:
        points = [(row["step"], row[key]) for row in log_history if key in row and "step" in row]
        if points:
            left.plot(*zip(*points), label=key, marker="." if len(points) < 30 else None)
    left.set(title="reward during training", xlabel="step", ylabel="reward")
    for key in ("eval_wer", "eval_cer"):
        points = [(row["step"], row[key]) for row in log_history if key in row and "step" in row]
        if points:
            right.plot(*zip(*points), label=key, marker="o")
    right.set(title="held-out error rate (greedy)", xlabel="step", ylabel="rate")
    for axis in (left, right):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
