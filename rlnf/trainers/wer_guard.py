"""A guard against reward hacking: watch held-out WER while the reward climbs, stop when they part ways.

A learned reward can be gamed: the policy finds transcripts the reward model likes that are not better. With a
small labelled watch split (``--wer_watch_split`` or ``--wer_watch_clips``), the trainer evaluates its greedy
WER every ``eval_steps`` (``eval_watch_wer``); `WERWatch` compares it with the mean training reward logged
since the previous evaluation, and with ``--stop_when_wer_rises K`` stops the run when the watch WER rose K
evaluations in a row while the reward rose over the same evaluations. The best checkpoint (lowest watch WER) is
the one kept and loaded at the end: transformers' own ``load_best_model_at_end`` with
``metric_for_best_model="eval_watch_wer"``, set up by `configure_wer_watch`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

WATCH = "watch"  # the eval_dataset name: metrics are logged as eval_watch_wer, eval_watch_cer
WATCH_WER = f"eval_{WATCH}_wer"
_REWARD_KEYS = ("reward", "objective/scores")  # GRPO/RLOO, PPO


def configure_wer_watch(args: Any) -> None:
    """Set the evaluation/saving schedule a watch needs, before ``TrainingArguments.__post_init__`` checks it.

    A watch evaluates every ``eval_steps`` (default: ``save_steps``); stopping keeps the best checkpoint, so
    checkpoints are saved at every evaluation and the best is loaded at the end."""
    watching = args.wer_watch_split is not None or args.wer_watch_clips > 0
    if args.stop_when_wer_rises < 0 or args.wer_watch_clips < 0:
        raise ValueError(
            f"stop_when_wer_rises and wer_watch_clips must be >= 0, got {args.stop_when_wer_rises} and "
            f"{args.wer_watch_clips}"
        )
    if args.wer_watch_split is not None and args.wer_watch_clips > 0:
        raise ValueError("give either wer_watch_split (a labelled split) or wer_watch_clips (carved out), not both")
    if args.stop_when_wer_rises and not watching:
        raise ValueError(
            f"stop_when_wer_rises={args.stop_when_wer_rises} needs a labelled watch set: --wer_watch_split NAME (a "
            "split with reference transcripts, never trained on) or --wer_watch_clips N (N clips carved out of the "
            "training split, by clip, and never trained on)"
        )
    if watching and args.eval_reference_column is None:
        raise ValueError("a WER watch needs references: eval_reference_column is None")
    if not watching:
        return
    if str(args.eval_strategy) in ("no", "IntervalStrategy.NO"):
        args.eval_strategy = "steps"
        args.eval_steps = args.eval_steps or args.save_steps
    if args.stop_when_wer_rises:
        args.save_strategy = "steps"
        args.save_steps = args.eval_steps
        args.load_best_model_at_end = True
        args.metric_for_best_model = WATCH_WER
        args.greater_is_better = False


def reference_free_notice(args: Any, watching: bool, wer_off_said: bool = False) -> str | None:
    """What a reference-free run (a learned reward alone) must be told at start-up about watching its WER;
    ``wer_off_said``: the data loading already said that the held-out split has no transcripts (said once)."""
    if args.reference_column is not None or watching or wer_off_said:
        return None
    if args.eval_reference_column is None:
        return (
            "reference-free run without labelled data: no held-out WER can be watched, so nothing tells whether the "
            "learned reward's rise means better transcripts"
        )
    return (
        "reference-free run: held-out WER is measured before and after training only; to watch it during training "
        "(and stop when it rises while the reward rises) add --wer_watch_clips N or --wer_watch_split NAME and "
        "--stop_when_wer_rises K"
    )


class WERWatch(TrainerCallback):
    """Logs each watch WER beside the mean reward since the previous watch, and stops training when the WER
    rose ``patience`` evaluations in a row while the reward rose (``patience`` 0: watch and log only)."""

    def __init__(self, patience: int = 0) -> None:
        self.patience = patience
        self.history: list[dict[str, float]] = []  # one row per watch: step, wer, reward (mean since last)
        self.stopped = False
        self._rewards: list[float] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        for key in _REWARD_KEYS:
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._rewards.append(float(value))
                return

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs):
        wer = (metrics or {}).get(WATCH_WER)
        if wer is None:
            return
        reward = sum(self._rewards) / len(self._rewards) if self._rewards else math.nan
        self._rewards = []
        self.history.append({"step": state.global_step, "wer": float(wer), "reward": reward})
        logger.info("step %d: watch WER %.4f, mean reward since the last watch %.4f", state.global_step, wer, reward)
        if self.patience and self.hacking():
            first, last = self.history[-1 - self.patience], self.history[-1]
            logger.warning(
                "watch WER rose %d evaluations in a row (%.4f at step %d -> %.4f at step %d) while the reward rose "
                "(%.4f -> %.4f): the policy is gaming the reward. Stopping; the checkpoint with the lowest watch WER "
                "is kept.",
                self.patience, first["wer"], first["step"], last["wer"], last["step"], first["reward"], last["reward"],
            )  # fmt: skip
            control.should_training_stop = self.stopped = True

    def hacking(self) -> bool:
        """WER rose at each of the last ``patience`` watches and the reward rose over them (a watch with no
        reward logged before it counts as no rise)."""
        if len(self.history) <= self.patience:
            return False
        window = self.history[-1 - self.patience :]
        wer_rises = all(b["wer"] > a["wer"] for a, b in zip(window, window[1:]))
        reward_rose = window[-1]["reward"] > window[0]["reward"]  # False when either is NaN
        return wer_rises and reward_rose


__all__ = ["WATCH", "WATCH_WER", "WERWatch", "configure_wer_watch", "reference_free_notice"]
