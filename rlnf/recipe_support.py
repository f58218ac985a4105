"""What the recipe scripts share, so that they stay thin: argument dataclasses, flags on top of a base YAML,
held-out splits, the run's "before" evaluation kept in the output folder, and launch sanity checks.

* Flags override the base YAML (the demo's unless ``--config`` names another), they do not replace it: TrlParser
  reads ``--config`` as defaults and the flags on top, so the base is put in front when none is given.
* The split flags are TRL's (``--dataset_train_split``, ``--dataset_test_split``) in every recipe; a missing
  held-out split is carved out of the training split by clip (``--eval_split_size``).
* LoRA from flags: TRL's ``lora_task_type`` defaults to ``CAUSAL_LM``, which breaks Whisper's forward; the
  speech default is no task type.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, ScriptArguments

from .audio import clip_file_name
from .data.loading import check_columns, choose_train_split, load_asr_dataset, train_eval_splits

logger = logging.getLogger(__name__)
BEFORE_FILE = "eval_before.json"
_NONE = ("none", "null", "")


@dataclass
class ASRScriptArguments(ScriptArguments):
    """TRL's data arguments (same split flag names in every rlnf recipe) plus held-out carving."""

    dataset_name: str | None = field(
        default="demo",
        metadata={"help": "'demo' (Bambara demo corpus), a hub id, a save_to_disk folder, an audiofolder or a "
                  "CSV/JSONL/Parquet file of audio paths (relative to the file) and transcripts"},
    )  # fmt: skip
    eval_split_size: str = field(
        default="0.1",
        metadata={"help": "When --dataset_test_split is not in the data: the held-out share of the training clips "
                  "(a fraction < 1) or their number (>= 1), chosen by clip with the training seed"},
    )  # fmt: skip
    max_eval_samples: int | None = field(default=None, metadata={"help": "cap the held-out split (faster runs)"})


@dataclass
class ASRModelConfig(ModelConfig):
    """TRL's ``ModelConfig`` with speech defaults: the demo policy, and LoRA without a task type."""

    model_name_or_path: str | None = field(
        default="demo", metadata={"help": "policy folder or hub id ('demo': the shipped demo policy)"}
    )
    lora_task_type: str | None = field(
        default=None,
        metadata={"help": "PEFT task type. None (default) for speech encoder-decoders: PEFT's task wrappers break "
                  "Whisper's forward"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.lora_task_type, str) and self.lora_task_type.strip().lower() in _NONE:
            self.lora_task_type = None
        super().__post_init__()


def with_base_config(argv: Sequence[str], base: str | os.PathLike) -> list[str]:
    """``argv`` with ``--config base`` in front unless it names a config itself (``--config X`` or ``=X``)."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return [*argv[:i], "--config", arg.split("=", 1)[1], *argv[i + 1 :]]
        if arg == "--config":
            return argv
    return ["--config", os.fspath(base), *argv]


def given_flags(argv: Sequence[str]) -> frozenset[str]:
    """The fields the command line sets (``--name value`` or ``--name=value``), as opposed to the base YAML's."""
    return frozenset(arg[2:].split("=", 1)[0].replace("-", "_") for arg in argv if arg.startswith("--"))


def resume_argument(value: str | bool | None) -> str | bool | None:
    """``--resume_from_checkpoint true`` -> True (the last checkpoint in output_dir), ``false``/``none`` -> None,
    anything else is a checkpoint folder. TrlParser gives the string; Trainer would read "true" as a path."""
    if value is None or isinstance(value, bool):
        return value or None
    text = str(value).strip()
    if text.lower() in ("true", "yes", "1", "last"):
        return True
    if text.lower() in (*_NONE, "false", "no", "0"):
        return None
    if not Path(text).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {text}: no such checkpoint folder (or pass `true` for the "
                                "last checkpoint in --output_dir)")  # fmt: skip
    return text


MIN_HELD_OUT = 20  # fewer held-out clips than this: their WER is noise, warned
REFERENCE_FREE_HINT = (
    "Audio without transcripts: pass --reference_free (RL from the reward model alone, with the repetition and "
    "empty penalties); or name the transcript column with --reference_column NAME"
)
_SAME = object()


def load_train_eval(
    script_args: ASRScriptArguments,
    *,
    audio_column: str,
    text_column: str | None,
    seed: int,
    eval_text_column: str | None | object = _SAME,
    missing_text_hint: str | None = None,
    named: Collection[str] = (),
) -> tuple[Any, Any, str]:
    """(train, held_out, held_out_name) from the script arguments: the named splits, or a held-out split carved
    out of the training split by clip when the data has none (its name then says so, for the model card),
    capped by ``max_eval_samples``. ``named``: the flags the user gave (`given_flags`): a split name given there
    must be in the data, while the base YAML's names adapt to it (`rlnf.data.loading.train_eval_splits`).

    Columns are checked in the two splits used (``text_column`` in the training split, ``eval_text_column``,
    by default the same, in the held-out one; None: not needed), naming the flag and ``missing_text_hint``.
    ``script_args.dataset_train_split`` becomes the split trained on (data of one split trains on it whatever
    the demo YAML's name), so cards and results name it. A held-out split under `MIN_HELD_OUT` clips is warned.
    """
    data = load_asr_dataset(script_args.dataset_name, script_args.dataset_config, audio_column=audio_column,
                            text_column=None)  # fmt: skip
    # the split trained on (the YAML's name may fall back to the data's own, said once), for cards and results
    script_args.dataset_train_split = choose_train_split(data, script_args.dataset_train_split, named)
    train, held_out = train_eval_splits(
        data, script_args.dataset_train_split, script_args.dataset_test_split,
        eval_size=script_args.eval_split_size, seed=seed, audio_column=audio_column, named=named,
    )  # fmt: skip
    where = f"dataset {script_args.dataset_name!r} split {script_args.dataset_train_split!r}"
    check_columns(train, {text_column: "--reference_column"}, where=where, hint=missing_text_hint)
    name = script_args.dataset_test_split
    if name not in data or name == script_args.dataset_train_split:
        name = f"{_clips(len(held_out))} held out of the training split (seed {seed})"
    if script_args.max_eval_samples is not None and script_args.max_eval_samples < len(held_out):
        held_out = held_out.select(range(script_args.max_eval_samples))
        name = f"{name}, first {script_args.max_eval_samples} rows"
    if eval_text_column is not None:
        column = text_column if eval_text_column is _SAME else eval_text_column
        flag = "--reference_column" if eval_text_column is _SAME else "--eval_reference_column"
        check_columns(held_out, {column: flag}, where=f"held-out split ({name})", hint=missing_text_hint)
    if len(held_out) < MIN_HELD_OUT:
        logger.warning(
            "the held-out split (%s) has %s: a WER on so few clips is noise (one clip more or less right moves "
            "it a lot). Hold out more (--eval_split_size 50) or name a labelled split with --dataset_test_split.",
            name, _clips(len(held_out)),
        )  # fmt: skip
    return train, held_out, name


def _clips(count: int) -> str:
    return f"{count} clip" if count == 1 else f"{count} clips"


def apply_reference_free(script_args: Any, args: Any, *, main: bool = True) -> None:
    """``--reference_free`` (``args.reference_free``): one flag for RL on audio without transcripts. The config
    already set ``reference_column`` None; here the reward list drops the rewards that need a transcript (their
    weights too) and gains the repetition and empty penalties (`rlnf.rewards.registry.reference_free_rewards`),
    said in one line, so the card and ``rlnf_run.json`` list only rewards that apply. Call it before
    ``check_reference_free``; `load_rl_train_eval` then handles a held-out split without transcripts."""
    if not getattr(args, "reference_free", False):
        return
    from .rewards.registry import reference_free_rewards

    names, weights, dropped = reference_free_rewards(script_args.reward_funcs, args.reward_weights)
    script_args.reward_funcs, args.reward_weights = names, weights
    if main:
        rewards = ", ".join(f"{n} ({w:g})" for n, w in zip(names, weights))
        without = f"; {', '.join(dropped)} dropped (they need transcripts)" if dropped else ""
        logger.warning("--reference_free: training on the audio alone, rewards %s%s", rewards, without)


def load_rl_train_eval(script_args: Any, args: Any, named: Collection[str] = ()) -> tuple[Any, Any, str]:
    """`load_train_eval` for the RL recipes, with the columns of their speech config (``args``): transcripts
    are needed in the training split only for reference-based rewards, and in the held-out split for the WER.
    With ``--reference_free``, a held-out split without transcripts (audio-only data) gives no WER: said once,
    here, and ``args.eval_reference_column`` becomes None; without it, the error suggests the flags."""
    train, held_out, name = load_train_eval(
        script_args, audio_column=args.audio_column, text_column=args.reference_column, seed=args.seed,
        eval_text_column=None, missing_text_hint=REFERENCE_FREE_HINT, named=named,
    )  # fmt: skip
    column = args.eval_reference_column
    columns = getattr(held_out, "column_names", None)
    if column is None or columns is None or column in columns:
        return train, held_out, name
    if not args.reference_free:
        hint = (
            "No transcripts to measure WER on: pass --eval_reference_column none (no WER), or --reference_free for "
            "audio-only data, or name a labelled split with --dataset_test_split"
        )
        check_columns(held_out, {column: "--eval_reference_column"}, where=f"held-out split ({name})", hint=hint)
    if args.process_index == 0:
        logger.warning(
            "--reference_free: the held-out split (%s) has no %r column, so no held-out WER/CER is measured, before, "
            "during or after training: nothing tells whether the learned reward's rise means better transcripts. To "
            "measure it, name a labelled split: --dataset_test_split NAME (or --wer_watch_split NAME to watch it "
            "during training).",
            name, column,
        )  # fmt: skip
    args.eval_reference_column = None
    return train, held_out, name


def clip_id(item: Any, index: int) -> str:
    """A short name for a clip: its file name when it has a path, else its row number."""
    return clip_file_name(item) or f"row {index}"


def with_clip_ids(dataset: Any, audio_column: str) -> Any:
    """``dataset`` with a ``prompt`` column naming each row's clip, unless it has one: the ASR trainers' prompt is
    the decoder prefix and a dataset prompt only reaches the rewards, so TRL's completions table
    (``log_completions``) then shows which clip each transcript is of."""
    if not dataset.column_names or "prompt" in dataset.column_names:  # a stream without features: left alone
        return dataset
    names = [clip_id(item, i) for i, item in enumerate(dataset[audio_column])]
    return dataset.add_column("prompt", names)


def run_before(output_dir: str | os.PathLike, evaluate: Callable[[], dict], *, resuming: bool, main: bool) -> dict:
    """The run's evaluation before training: computed and kept in ``output_dir`` on a fresh run, read back from
    there when resuming (the policy then is the checkpoint's, not the run's starting point)."""
    path = Path(output_dir) / BEFORE_FILE
    if resuming and path.exists():
        return json.loads(path.read_text())
    if resuming:
        logger.warning("resuming, but %s is missing: 'before' is measured on the policy as loaded now", path)
    before = evaluate()
    if main:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(before, indent=2) + "\n")
    return before


def log_into_output_dir(trainer: Any) -> None:
    """Point TensorBoard at ``output_dir/runs/`` before the first evaluation: transformers' callback picks its folder
    when training begins, so the recipes' evaluation before training would otherwise open a writer in the
    current directory, which then receives the whole run's training curves."""
    from transformers.integrations.integration_utils import TensorBoardCallback, default_logdir

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = os.path.join(trainer.args.output_dir, default_logdir())


def finish_run(trainer: Any, output_dir: str | os.PathLike, results: dict[str, Any], results_name: str) -> None:
    """The end of every recipe: the main process writes ``results_name`` (JSON, atomically: a reader never sees
    half a file) and prints it; then every rank waits for it and ends the run (without the barrier about one
    run in four aborted at interpreter exit while rank 0 still wrote)."""
    if trainer.is_world_process_zero():
        path = Path(output_dir) / results_name
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(partial, path)
        print(json.dumps(results))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


__all__ = [
    "MIN_HELD_OUT",
    "REFERENCE_FREE_HINT",
    "apply_reference_free",
    "finish_run",
    "given_flags",
    "ASRModelConfig",
    "ASRScriptArguments",
    "clip_id",
    "load_rl_train_eval",
    "load_train_eval",
    "log_into_output_dir",
    "resume_argument",
    "run_before",
    "with_clip_ids",
    "with_base_config",
]
