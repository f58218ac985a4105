"""Training curves from a Trainer's ``log_history``, written next to checkpoints: reward, held-out WER, loss and KL.

What each trainer logs: GRPO and RLOO ``reward``, ``rewards/<name>/mean``, ``loss`` and ``kl`` (0 or absent with
``beta`` 0); PPO ``objective/scores`` (the reward), ``loss/policy``, ``loss/value`` and ``objective/kl`` (with
transformers' ``loss`` too). A panel without data says why instead of staying blank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EVAL_KEYS = ("eval_wer", "eval_cer", "eval_watch_wer")  # watch: rlnf.trainers.wer_guard, during training
REWARD_KEYS = ("reward", "objective/scores")  # GRPO/RLOO, PPO
LOSS_KEYS = ("loss", "loss/policy", "loss/value")
KL_KEYS = ("kl", "objective/kl")


def _points(log_history: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    return [(row["step"], row[key]) for row in log_history if row.get(key) is not None and "step" in row]


def _plot(axis: Any, log_history: list[dict[str, Any]], keys: list[str] | tuple[str, ...], marker: str | None) -> None:
    for key in keys:
        points = _points(log_history, key)
        if points:
            axis.plot(*zip(*points), label=key, marker=marker if marker or len(points) < 30 else None)


def _say(axis: Any, text: str) -> None:
    axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=axis.transAxes, fontsize=9)


def training_curves_figure(
    log_history: list[dict[str, Any]], reward_key: str = "reward", why_no_wer: str | None = None
) -> Any:
    """A matplotlib figure of four panels: mean reward per logged step (and each named reward), held-out
    WER/CER per evaluation (with the watched WER of a reference-free run, to read beside the reward), the
    training loss and the KL to the reference policy. An empty panel says why (the WER panel: ``why_no_wer``,
    or that no evaluation was logged)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (reward, wer), (loss, kl) = axes
    logged = {key for row in log_history for key in row}
    named = sorted(k for k in logged if k.startswith("rewards/") and k.endswith("/mean"))
    _plot(reward, log_history, [k for k in dict.fromkeys((reward_key, *REWARD_KEYS)) if k in logged] + named, None)
    reward.set(title="reward during training", xlabel="step", ylabel="reward")
    _plot(wer, log_history, EVAL_KEYS, "o")
    wer.set(title="held-out error rate (greedy)", xlabel="step", ylabel="rate")
    _plot(loss, log_history, LOSS_KEYS, None)
    loss.set(title="training loss", xlabel="step", ylabel="loss")
    _plot(kl, log_history, KL_KEYS, None)
    kl.set(title="KL to the reference policy", xlabel="step", ylabel="KL")
    if not wer.get_lines():
        reason = why_no_wer or "no eval_wer / eval_cer in the log (evaluation off, or no reference transcripts)"
        _say(wer, f"no held-out WER/CER:\n{reason}")
    if not reward.get_lines():
        _say(reward, "no reward logged (no training step reached logging_steps)")
    if not loss.get_lines():
        _say(loss, "no training loss logged (no training step reached logging_steps)")
    if not kl.get_lines():
        _say(kl, "no KL logged (beta = 0: no reference policy, or no training step reached logging_steps)")
    for axis in axes.flat:
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
