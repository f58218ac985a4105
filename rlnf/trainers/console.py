"""What a speech RL run prints while it trains: one short line per log, and warnings about data too small to learn
from or to measure on.

transformers prints every log as a dict: for GRPO about 1,000 characters every ``logging_steps``, which breaks
the progress bar and hides the four numbers one watches. `CompactProgressCallback` (and `CompactPrinterCallback`
under ``disable_tqdm``) print ``step 5/750 | loss 0.0123 | reward 0.512 | kl 0.0004 | wer 0.55`` instead; the
full dict stays in ``trainer.state.log_history`` (``trainer_state.json`` in every checkpoint), in the report_to
integrations (TensorBoard ...) and at DEBUG level in the ``rlnf.trainers.console`` logger.

`RepetitionWarning` says once, when training begins, that a run will pass over its training clips more than
`MAX_EPOCHS` times (11 clips, 750 steps of 4 clips x 8 completions: 273 epochs; the policy memorises them).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

logger = logging.getLogger(__name__)

MAX_EPOCHS = 50  # more passes over the RL clips than this: warned at the start of training
# (label, keys in order of preference): GRPO/RLOO log `reward` and `kl`, PPO `objective/scores` and `objective/kl`
_TRAIN_FIELDS = (
    ("loss", ("loss",)),
    ("reward", ("reward", "objective/scores")),
    ("kl", ("kl", "objective/kl")),
)
_EVAL_FIELDS = (
    ("wer", ("eval_wer",)),
    ("cer", ("eval_cer",)),
    ("watch wer", ("eval_watch_wer",)),
    ("eval reward", ("eval_reward",)),
)
_SUMMARY_FIELDS = (("train_loss", ("train_loss",)), ("runtime", ("train_runtime",)))


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _bookkeeping(key: str) -> bool:
    """Timing and counters every log carries: not worth a line of their own."""
    return key in ("epoch", "total_flos", "step") or key.endswith(("_runtime", "_per_second"))


def compact_line(logs: Mapping[str, Any], step: int, max_steps: int | None = None) -> str | None:
    """``step 5/750 | loss 0.0123 | reward 0.512 | kl 0.0004 | wer 0.55``: the numbers of one log worth reading
    every step (missing ones are left out); a log with none of them shows its first four other numbers, and a
    log of timings only (an evaluation with nothing to measure) gives None: nothing to print."""
    parts = [f"step {step}/{max_steps}" if max_steps and max_steps > 0 else f"step {step}"]
    for label, keys in (*_TRAIN_FIELDS, *_EVAL_FIELDS, *_SUMMARY_FIELDS):
        key = next((k for k in keys if logs.get(k) is not None), None)
        if key is not None:
            value = _number(logs[key]) + ("s" if key == "train_runtime" else "")
            parts.append(f"{label} {value}")
    if len(parts) == 1:  # a log of other numbers (a custom callback's): a few of them, not the whole dict
        shown = [(k, v) for k, v in logs.items() if isinstance(v, (int, float)) and not _bookkeeping(k)][:4]
        parts += [f"{k} {_number(v)}" for k, v in shown]
    return " | ".join(parts) if len(parts) > 1 else None


class CompactProgressCallback(ProgressCallback):
    """transformers' progress bar, with `compact_line` written above it instead of the whole log dict."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or logs is None:
            return
        logger.debug("step %d: %s", state.global_step, logs)
        line = compact_line(logs, state.global_step, state.max_steps)
        if line is None:
            return
        if self.training_bar is not None:
            self.training_bar.write(line)
        else:  # evaluation outside training (the recipes' before/after): no bar to write above
            print(line, flush=True)


class CompactPrinterCallback(PrinterCallback):
    """``disable_tqdm``: `compact_line` printed instead of the whole log dict."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if state.is_local_process_zero and logs is not None:
            logger.debug("step %d: %s", state.global_step, logs)
            if (line := compact_line(logs, state.global_step, state.max_steps)) is not None:
                print(line, flush=True)


def use_compact_console(trainer: Any) -> None:
    """Swap transformers' default console callback (progress bar or printer) for its compact version."""
    for default, compact in ((ProgressCallback, CompactProgressCallback), (PrinterCallback, CompactPrinterCallback)):
        present = [c for c in trainer.callback_handler.callbacks if type(c) is default]
        for callback in present:
            trainer.remove_callback(callback)
            trainer.add_callback(compact)


def clips_per_step(args: Any) -> float:
    """Clips drawn per optimizer step: its completions (per device x processes x accumulation) over the ones a
    drawn clip gives (``num_generations``, each trained on ``num_iterations`` / PPO's ``num_ppo_epochs`` times).
    Not transformers' epoch: TRL's sampler drops each epoch's incomplete batch of clips (11 clips in batches of
    4: an "epoch" of 8), which counted 375 epochs where the clips come back 273 times."""
    completions = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    reuse = getattr(args, "num_iterations", None) or getattr(args, "num_ppo_epochs", None) or 1
    return completions / ((getattr(args, "num_generations", None) or 1) * reuse)


class RepetitionWarning(TrainerCallback):
    """Warns once at the start of training when the run passes over its ``clips`` training clips more than
    ``max_epochs`` times (default `MAX_EPOCHS`): ``max_steps x clips_per_step / clips`` epochs (passes)."""

    def __init__(self, clips: int, max_epochs: int | None = None):
        self.clips, self.max_epochs = clips, max_epochs

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        limit = MAX_EPOCHS if self.max_epochs is None else self.max_epochs
        if not state.is_world_process_zero or self.clips < 1 or state.max_steps < 1:
            return
        per_step = clips_per_step(args)
        passes = state.max_steps * per_step / self.clips
        if passes <= limit:
            return
        logger.warning(
            "%d epochs over %d training clips (%d steps): each step draws %g clips, so each clip comes back about "
            "%d times and the policy can memorise these clips; the reward then stops telling anything about other "
            "audio. Add clips or lower --max_steps (more than %d epochs is warned).",
            round(passes), self.clips, state.max_steps, per_step, round(passes), limit,
        )  # fmt: skip


__all__ = [
    "MAX_EPOCHS",
    "CompactPrinterCallback",
    "CompactProgressCallback",
    "RepetitionWarning",
    "clips_per_step",
    "compact_line",
    "use_compact_console",
]
