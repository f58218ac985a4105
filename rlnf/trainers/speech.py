"""The audio seam every rlnf speech trainer shares (GRPO, RLOO, PPO): clips once per batch, rewards, evaluation.

`SpeechTrainerMixin` goes in front of a TRL trainer class (``class ASRGRPOTrainer(SpeechTrainerMixin,
GRPOTrainer)``). It owns what is about audio and not about the RL algorithm:

* construction: the policy family (`rlnf.policies.base.policy_for`), the processor, column checks, reward
  names through the registry, dataset checks (empty, too small, reference-free splits);
* ``_collect_clips``: decode each UNIQUE clip of a batch once (clips are identified by what they are,
  `rlnf.audio.audio_key`), make its model inputs once, and build the `ClipBatch`;
* ``_sample_completions``: the policy samples G completions per clip, encoder once per clip, under the same
  autocast as the scoring passes; undecodable clips (``skip_undecodable_audio``) are not sampled at all;
* ``_clip_log_probs``: the policy's log-prob pass over the current `ClipBatch`;
* ``training_step``: hooks of the loss pass live until backward is done (checkpointed layers recompute);
* ``_guarded_rewards``: reward errors name the function and step; skipped clips never reach a reward;
* greedy corpus WER/CER evaluation from ``eval_reference_column``, also in reference-free runs.

The algorithm's subclass overrides TRL's private methods and calls these.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object
from datasets import Dataset, IterableDataset
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoProcessor
from transformers.trainer_utils import EvalLoopOutput
from trl.models import unwrap_model_for_generation

from ..audio import audio_key, clip_file_name, group_by_clip, load_audio
from ..data.loading import check_columns as shared_check
from ..errors import RlnfUserError
from ..policies.base import CLIPS_KEY, ClipBatch, SpeechPolicy, load_policy_model, policy_for
from ..policies.same_function import use_fixed_statistics_and_no_dropout
from .asr_eval import error_rates
from .console import RepetitionWarning, use_compact_console
from .trl_compat import distributed_backend, is_async_callable, profiling_context
from .wer_guard import WATCH, WERWatch

ROW_ID_COLUMN = "__rlnf_row__"  # map-style datasets: the row index, only to name rows in error messages
DECODE_ERRORS = (ValueError, OSError, RuntimeError, TypeError, EOFError)


class UndecodableAudioError(RlnfUserError, ValueError):
    """An audio item that cannot be decoded; the message names the dataset row."""


class RewardFunctionError(RuntimeError):
    """A reward function raised; the message names the function and the global step."""


class RewardInputError(RlnfUserError, ValueError):
    """A reward function refused its input (e.g. a clip too short to score): the message says which clip and
    what to change, so it ends the run with one line, not a traceback."""


# ----------------------------------------------------------------------------------------------------
# Checks and helpers shared by every speech trainer
# ----------------------------------------------------------------------------------------------------


def check_columns(
    columns: Any,
    name: str,
    audio_column: str,
    reference_column: str | None,
    reference_field: str = "reference_column",
) -> None:
    """The audio column, and the reference column unless it is None, must be there (`rlnf.data.loading.check_columns`,
    the one column check: the message names the option and lists the columns)."""
    check = dict(where=name, hidden=(ROW_ID_COLUMN,))
    shared_check(columns, {audio_column: "audio_column"}, **check)
    shared_check(columns, {reference_column: reference_field}, hint=_MISSING_REFERENCE_HINTS[reference_field], **check)


_MISSING_REFERENCE_HINTS = {
    "reference_column": "Set reference_column=None for reference-free training on audio without transcripts (or "
    "reference_free=True; in the recipes --reference_free, which also picks rewards that need no transcript), or "
    "name the transcript column with reference_column",
    "eval_reference_column": "Set eval_reference_column=None for no WER/CER on a split without transcripts (in the "
    "recipes --eval_reference_column none; --reference_free does it for such a split), or name the transcript "
    "column with eval_reference_column",
}


def check_report_to(args: Any) -> None:
    """``report_to`` TensorBoard without its package: transformers says "install tensorboardX" deep in the
    Trainer; say what to install before anything is loaded."""
    report_to = args.report_to if isinstance(args.report_to, (list, tuple)) else [args.report_to]
    if "tensorboard" not in report_to and "all" not in report_to:
        return
    for module in ("tensorboard", "tensorboardX"):
        try:
            importlib.import_module(module)
            return
        except ImportError:
            continue
    if "all" in report_to:  # transformers' "all" means the installed integrations only
        return
    raise ImportError(
        "report_to tensorboard needs the tensorboard package: `pip install tensorboard` (or choose another "
        "--report_to: none, trackio, wandb ...)"
    )


def resolve_reward_names(reward_funcs: Any, args: Any) -> Any:
    """Names from rlnf's reward registry ("wer", "cer" ...) become reward callables (TRL would read a string as
    the hub id of a text classifier); an unknown name is an error listing the known ones."""
    funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
    names = [f for f in funcs if isinstance(f, str)]
    if not names:
        return reward_funcs
    from rlnf.rewards.registry import check_reference_free, get_reward_funcs

    check_reference_free(names, args.reference_column)
    options = {"reference_column": args.reference_column, "audio_column": args.audio_column}
    resolved, _ = get_reward_funcs(funcs, **{k: v for k, v in options.items() if v is not None})
    return resolved


def guard_reward(func: Callable, name: str, step: int, keep: list[int] | None = None, rows: int = 0) -> Callable:
    """``func`` with errors naming it and the global step; with ``keep``, it sees only those rows (of ``rows``) and
    the others get ``None`` (TRL: "does not apply"), so a skipped clip never reaches a reward."""

    def fail(error: Exception) -> RewardFunctionError | RewardInputError:
        if isinstance(error, RlnfUserError):  # its message is all the user needs
            return RewardInputError(f"reward function {name!r} at global step {step}: {error}")
        return RewardFunctionError(
            f"reward function {name!r} raised {type(error).__name__} at global step {step}: {error}"
        )

    def scatter(values: Sequence[Any]) -> list[Any]:
        full: list[Any] = [None] * rows
        for index, value in zip(keep, values, strict=True):
            full[index] = value
        return full

    def select(kwargs: dict[str, Any]) -> dict[str, Any]:
        if keep is None:
            return kwargs
        out = {}
        for key, value in kwargs.items():
            if isinstance(value, list) and len(value) == rows:
                out[key] = [value[i] for i in keep]
            elif key == "log_extra" and callable(value):
                out[key] = lambda column, values, _log=value: _log(column, scatter(values))
            else:
                out[key] = value
        return out

    def finish(result: Any) -> Any:
        if keep is None:
            return result
        result = list(result)
        if len(result) != len(keep):
            raise fail(ValueError(f"returned {len(result)} rewards for {len(keep)} completions"))
        return scatter(result)

    if is_async_callable(func):

        async def guarded_async(**kwargs: Any) -> Any:
            if keep is not None and not keep:
                return [None] * rows
            try:
                return finish(await func(**select(kwargs)))
            except RewardFunctionError:
                raise
            except Exception as error:
                raise fail(error) from error

        return guarded_async

    def guarded(**kwargs: Any) -> Any:
        if keep is not None and not keep:
            return [None] * rows
        try:
            return finish(func(**select(kwargs)))
        except RewardFunctionError:
            raise
        except Exception as error:
            raise fail(error) from error

    return guarded


# ----------------------------------------------------------------------------------------------------
# The mixin
# ----------------------------------------------------------------------------------------------------


class SpeechTrainerMixin:
    """Audio plumbing for a TRL trainer subclass; see the module docstring. Needs ``self.policy`` (set by
    ``_setup_speech``) and the usual TRL attributes (``accelerator``, ``args``, ``model``, ``state``)."""

    policy: SpeechPolicy

    # ---- construction (before TRL's __init__) ----------------------------------------------------

    @staticmethod
    def _default_args(model: Any, args: Any, config_class: type, algorithm: str, why: str = "") -> Any:
        """``args``, or a default ``config_class`` named after the model (``<name>-ASR-<algorithm>``); a config
        of another class is a TypeError (``why`` says what the class adds)."""
        if args is None:
            name = model if isinstance(model, str) else type(model).__name__
            args = config_class(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-ASR-{algorithm}")
        if not isinstance(args, config_class):
            raise TypeError(f"args must be an {config_class.__name__}{why}, got {type(args).__name__}")
        return args

    def _speech_datasets(
        self, model: Any, processing_class: Any, args: Any, peft_config: Any, train_dataset: Any, eval_dataset: Any
    ) -> tuple[Any, Any, Any, Any]:
        """`_setup_speech`, then the train and eval datasets (a dict of them too) checked and prepared:
        ``(model, processor, train_dataset, eval_dataset)``."""
        model, processing_class = self._setup_speech(model, processing_class, args, peft_config)
        train_dataset = self._prepare_dataset(train_dataset, "train_dataset", args, train=True)
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._prepare_dataset(v, f"eval_dataset[{k!r}]", args) for k, v in eval_dataset.items()}
        else:
            eval_dataset = self._prepare_dataset(eval_dataset, "eval_dataset", args)
        return model, processing_class, train_dataset, eval_dataset

    def _setup_speech(self, model: Any, processing_class: Any, args: Any, peft_config: Any) -> tuple[Any, Any]:
        """Load the model if it is a path, pick its policy family, check options: ``(model, processor)``."""
        check_report_to(args)
        name = model if isinstance(model, str) else None
        if isinstance(model, str):
            kwargs = dict(args.model_init_kwargs or {})
            dtype = kwargs.get("dtype", "float32")
            if isinstance(dtype, str) and dtype != "auto":
                kwargs["dtype"] = getattr(torch, dtype)
            model = load_policy_model(model, **kwargs)
        if processing_class is None:
            processing_class = _load_processor(model, name)
        self.policy = policy_for(model, processing_class, args)
        self.policy.check_args(args)
        self.policy.complete_peft_config(peft_config)
        self.policy.check_peft_config(peft_config)
        return model, processing_class

    def _prepare_dataset(self, dataset: Any, name: str, args: Any, train: bool = False) -> Any:
        """Check columns and size now (not at step 1); reference-free training drops the transcripts."""
        if dataset is None:
            return None
        columns = getattr(dataset, "column_names", None)
        if train:
            reference = args.reference_column
            if reference is None and args.eval_reference_column is not None:
                # Reference-free: the training split's transcripts (if any) must never reach the rewards.
                if columns is not None and args.eval_reference_column in columns:
                    dataset = dataset.remove_columns([args.eval_reference_column])
                    columns = dataset.column_names
                elif columns is None and isinstance(dataset, IterableDataset):
                    dataset = dataset.remove_columns([args.eval_reference_column])
            if columns is not None:
                check_columns(columns, name, args.audio_column, reference)
        elif columns is not None:
            check_columns(columns, name, args.audio_column, args.eval_reference_column, "eval_reference_column")
        if isinstance(dataset, Dataset):
            _check_size(dataset, name, args, train)
            if ROW_ID_COLUMN not in dataset.column_names:
                dataset = dataset.add_column(ROW_ID_COLUMN, list(range(len(dataset))))
        return dataset

    def _finish_speech_setup(self, processing_class: Any) -> None:
        """After TRL's __init__: the model TRL trains is known (PEFT wrapped or not)."""
        self.asr_processor = processing_class
        self.feature_extractor = self.policy.feature_extractor
        self._clip_batch: ClipBatch | None = None
        self._bad_rows: list[bool] | None = None
        self._asr_eval_dataset: Any = None
        self._deferred_hooks: list | None = None
        self.policy.prepare_model(self.model)
        use_compact_console(self)  # one short line per log, not the whole dict over the progress bar
        if isinstance(self.train_dataset, Dataset):
            self.add_callback(RepetitionWarning(len(self.train_dataset)))
        for model in (self.model, getattr(self, "ref_model", None), getattr(self, "value_model", None)):
            if model is not None:
                use_fixed_statistics_and_no_dropout(model)
        if distributed_backend(self).is_fsdp and self.eval_dataset is not None and self.args.eval_strategy != "no":
            raise NotImplementedError(_FSDP_EVAL)
        if self.args.wer_watch_split is not None or self.args.wer_watch_clips > 0:
            if not isinstance(self.eval_dataset, dict) or WATCH not in self.eval_dataset:
                raise ValueError(
                    f"a WER watch is configured but eval_dataset has no {WATCH!r} entry: pass "
                    f"eval_dataset={{{WATCH!r}: labelled_clips}} (recipes/grpo_asr.py builds it from wer_watch_split "
                    "or wer_watch_clips)"
                )
            self.add_callback(WERWatch(self.args.stop_when_wer_rises))

    def _set_signature_columns_if_needed(self) -> None:
        # With remove_unused_columns=True, keep what this trainer reads (TRL keeps only prompt/image columns).
        if self._signature_columns is None:
            keep = ["prompt", self.args.audio_column, ROW_ID_COLUMN]
            refs = {self.args.reference_column, self.args.eval_reference_column} - {None}
            self._signature_columns = keep + sorted(refs)

    # ---- audio: each unique clip decoded and featurised once ------------------------------------

    def _clip_key(self, row: dict[str, Any], position: int) -> Any:
        """Rows of the same clip share a key: what the audio is (path, bytes or content hash), never a row index
        (indices restart per shard in a streamed dataset). The benchmark's naive subclass overrides this."""
        return audio_key(row[self.args.audio_column])

    def _row_name(self, row: dict[str, Any], position: int) -> str:
        """The clip's file name where it has one (row numbers count the rows left after a held-out split was
        carved out, which is not the user's file), else its row."""
        if name := clip_file_name(row.get(self.args.audio_column)):
            return f"clip {name!r}"
        if row.get(ROW_ID_COLUMN) is not None:
            return f"dataset row {row[ROW_ID_COLUMN]}"
        return f"batch row {position}"

    def _load_clip(self, item: Any, where: str | int) -> np.ndarray | None:
        """Decode one clip at the policy's rate; ``None`` when it fails and the config says skip."""
        rate = self.args.sampling_rate
        where = f"dataset row {where}" if isinstance(where, int) else where
        try:
            return load_audio(item, rate, index=None, target_sampling_rate=rate)
        except DECODE_ERRORS as error:
            message = (
                f"{where}: the '{self.args.audio_column}' item cannot be decoded ({type(error).__name__}: {error})"
            )
            if not self.args.skip_undecodable_audio:
                raise UndecodableAudioError(
                    f"{message}. Pass --skip_undecodable_audio (skip_undecodable_audio=True) to skip such rows"
                ) from error
            warnings.warn(f"{message}; skipped (not sampled, no reward, no loss)", stacklevel=3)
            return None

    def _collect_clips(self, inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], ClipBatch, list[bool]]:
        """Rows for TRL (audio decoded, one shared object per clip) and the batch's unique clips with their model
        inputs; the third item says which rows are skipped (undecodable) clips."""
        check_columns(list(inputs[0]), "a batch", self.args.audio_column, None)
        rate = self.args.sampling_rate
        firsts, clip_of_row = group_by_clip(inputs, self._clip_key)
        waveforms: list[np.ndarray] = []
        bad_clips: list[bool] = []
        for position in firsts:
            row = inputs[position]
            waveform = self._load_clip(row[self.args.audio_column], self._row_name(row, position))
            bad_clips.append(waveform is None)
            # an undecodable clip gets a placeholder: never sampled nor rewarded
            waveforms.append(np.zeros(rate // 10, dtype=np.float32) if waveform is None else waveform)
        decoded = [{"array": waveform, "sampling_rate": rate} for waveform in waveforms]
        rows = []
        for row, clip in zip(inputs, clip_of_row, strict=True):
            row = {k: v for k, v in row.items() if k != ROW_ID_COLUMN}
            row[self.args.audio_column] = decoded[clip]  # one object per clip: rewards can dedupe by identity
            row.setdefault("prompt", "")
            rows.append(row)
        device = self.accelerator.device
        with profiling_context(self, "feature_extraction"):
            inputs_per_clip = self.policy.clip_inputs(waveforms, device, self.policy.input_dtype(self.model))
        clips = ClipBatch(inputs_per_clip, torch.tensor(clip_of_row, dtype=torch.long, device=device))
        return rows, clips, [bad_clips[c] for c in clip_of_row]

    # ---- sampling and scoring through the policy ---------------------------------------------------

    def _sample_completions(self, clips: ClipBatch, bad_rows: Sequence[bool] | None = None) -> list[list[int]]:
        """G completions per clip from the policy, encoder once per clip, in the scoring passes' autocast.
        Rows of skipped clips get an empty completion (EOS only; masked out of the loss)."""
        good = [i for i, bad in enumerate(bad_rows or []) if not bad] if bad_rows and any(bad_rows) else None
        with (
            profiling_context(self, "transformers.generate"),
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=getattr(self, "generation_kwargs", None),
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped,
            torch.no_grad(),
            distributed_backend(self).summon_full_params(self.model_wrapped, recurse=False),
            self.accelerator.autocast(),  # the same precision as the log-prob passes that score these samples
        ):
            if good is None:
                return self.policy.sample(unwrapped, clips)
            completions = [[self.policy.eos_token_ids[0]] for _ in range(clips.clip_of_row.numel())]
            if good:
                subset, clip_ids = clips.subset(torch.tensor(good, device=clips.clip_of_row.device))
                for row, ids in zip(good, self.policy.sample(unwrapped, subset), strict=True):
                    completions[row] = ids
                if subset.encoder_states is not None:
                    states = subset.encoder_states.new_zeros((clips.num_clips, *subset.encoder_states.shape[1:]))
                    clips.encoder_states = states.index_copy(0, clip_ids, subset.encoder_states)
            return completions

    def _clip_log_probs(
        self,
        model: nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None,
        compute_entropy: bool,
    ) -> tuple:
        clips = self._clip_batch
        if clips is None:
            raise RuntimeError("no audio for this log-prob pass (called outside a generation or loss step)")
        with self.accelerator.autocast():
            return self.policy.log_probs(
                model,
                clips,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                hook_sink=self._deferred_hooks,
            )

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        # Backward may re-run checkpointed layers (whether args or the model itself turned checkpointing on): the
        # loss pass's per-clip hooks stay until backward is done.
        self._deferred_hooks = []
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            for hooks in self._deferred_hooks:
                hooks.remove()
            self._deferred_hooks = None

    @contextmanager
    def _clips_from(self, inputs: dict[str, Any]) -> Iterator[None]:
        """The loss pass's clips, rebuilt from the per-row views TRL shuffled and split."""
        if CLIPS_KEY not in inputs:
            raise RuntimeError(f"the batch has no '{CLIPS_KEY}': it was not built by an rlnf speech trainer")
        self._clip_batch = ClipBatch.from_row_views(inputs[CLIPS_KEY], self.accelerator.device)
        try:
            yield
        finally:
            self._clip_batch = None

    # ---- rewards ------------------------------------------------------------------------------------

    @contextmanager
    def _guarded_rewards(self, rows: int) -> Iterator[None]:
        """Reward functions that name themselves in errors and never see rows of skipped clips."""
        bad = self._bad_rows if self.args.skip_undecodable_audio else None
        keep = [i for i, b in enumerate(bad) if not b] if bad and any(bad) else None
        original = self.reward_funcs
        self.reward_funcs = [
            f if isinstance(f, nn.Module) else guard_reward(f, name, self.state.global_step, keep, rows)
            for f, name in zip(original, self.reward_func_names, strict=True)
        ]
        try:
            yield
        finally:
            self.reward_funcs = original

    # ---- evaluation: greedy corpus WER/CER next to (or instead of) TRL's sampled rewards ------------

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        target = eval_dataset if eval_dataset is not None else self.eval_dataset
        if isinstance(target, dict):  # Trainer calls back here once per named dataset
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if isinstance(target, str):
            target = self.eval_dataset[target]
        elif eval_dataset is not None:
            eval_dataset = target = self._prepare_dataset(eval_dataset, "eval_dataset", self.args)
        self._asr_eval_dataset = target
        try:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        finally:
            self._asr_eval_dataset = None

    def evaluation_loop(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> EvalLoopOutput:
        dataset = self._asr_eval_dataset
        if dataset is None or self.args.eval_sampled_rewards:
            output = super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
        else:
            output = EvalLoopOutput(predictions=None, label_ids=None, metrics={}, num_samples=0)
        if dataset is not None and self.args.eval_reference_column:
            self.model.eval()  # TRL's log() names metrics after the model's mode
            rates = self.greedy_error_rates(dataset)
            output.metrics.update({f"{metric_key_prefix}_{k}": v for k, v in rates.items() if k != "num_samples"})
            if not self.args.eval_sampled_rewards:
                output = EvalLoopOutput(None, None, output.metrics, num_samples=rates["num_samples"])
        return output

    def greedy_error_rates(self, dataset: Any) -> dict[str, float]:
        """Corpus WER/CER of greedy transcripts of ``dataset`` against ``eval_reference_column`` (rows split
        across processes, then gathered). Rows whose reference is None are left out, with a warning."""
        if distributed_backend(self).is_fsdp:
            raise NotImplementedError(_FSDP_EVAL)
        if distributed_backend(self).is_zero3 and not self.args.ds3_gather_for_generation:
            raise NotImplementedError(
                "greedy evaluation under ZeRO-3 needs ds3_gather_for_generation=True (each "
                "rank decodes its own rows with the gathered weights)"
            )
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        audio_col, ref_col = self.args.audio_column, self.args.eval_reference_column
        batch = self.args.per_device_eval_batch_size
        mine = [(position, row) for position, row in enumerate(dataset) if position % world == rank]
        waveforms, references, hypotheses, missing = [], [], [], []
        # decoded and transcribed batch by batch (the same batches as one call would make), under a progress bar:
        # the recipes' evaluations before and after training take minutes on CPU
        bar = tqdm(total=len(mine), desc="greedy WER/CER", unit="clip", leave=False, disable=self._no_progress_bar())
        with (
            unwrap_model_for_generation(
                self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation
            ) as unwrapped,
            self.accelerator.autocast(),
        ):
            for done, (position, row) in enumerate(mine, start=1):
                if row[ref_col] is None:
                    missing.append(row.get(ROW_ID_COLUMN, position))
                elif (waveform := self._load_clip(row[audio_col], self._row_name(row, position))) is not None:
                    waveforms.append(waveform)
                    references.append(row[ref_col])
                if len(waveforms) == batch or (done == len(mine) and waveforms):
                    hypotheses += self.policy.transcribe(
                        unwrapped,
                        waveforms,
                        batch_size=batch,
                        max_new_tokens=self.args.eval_max_new_tokens or self.args.max_completion_length,
                    )
                    waveforms = []
                bar.update(1)
        bar.close()
        pairs = gather_object(list(zip(references, hypotheses, strict=True)))
        missing = gather_object(missing)
        if missing:
            warnings.warn(
                f"{len(missing)} evaluation rows have no reference ({ref_col!r} is None; rows "
                f"{sorted(missing)[:10]}): left out of eval WER/CER",
                stacklevel=2,
            )
        rates = error_rates([r for r, _ in pairs], [h for _, h in pairs], self.args.eval_normalizer)
        return {**rates, "num_samples": len(pairs)}

    def _no_progress_bar(self) -> bool:
        return bool(self.args.disable_tqdm) or not self.accelerator.is_main_process

    # ---- saving: the full processor (feature extractor too), so a checkpoint reloads ---------------

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """Resuming: a tied weight (Whisper's ``proj_out.weight`` is the token embedding) is not in the checkpoint
        because saving drops the copy; transformers would warn it "missing". Only keys that are not tied are."""
        missing = list(load_result.missing_keys)
        tied = _tied_parameter_names(self.model)
        untied = [key for key in missing if key not in tied]
        if len(untied) < len(missing):
            self.model.tie_weights()
            load_result = type(load_result)(missing_keys=untied, unexpected_keys=list(load_result.unexpected_keys))
        super()._issue_warnings_after_load(load_result)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save and hasattr(self.asr_processor, "save_pretrained"):
            self.asr_processor.save_pretrained(output_dir if output_dir is not None else self.args.output_dir)


_FSDP_EVAL = (
    "greedy WER/CER evaluation is not supported under FSDP: decoding calls the encoder and generate() outside the "
    "sharded root module's forward, so parameters are not gathered and ranks can run different numbers of "
    "generate() calls (a hang). Train with eval_strategy='no' and evaluate the saved policy in one process, or "
    "use DDP / DeepSpeed ZeRO-2 / ZeRO-3 (see docs/scaling.md)."
)


def _tied_parameter_names(model: nn.Module) -> set[str]:
    """Names of parameters that are one tensor under several names (tied weights), every name of each."""
    names: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), []).append(name)
    return {name for group in names.values() if len(group) > 1 for name in group}


def _load_processor(model: Any, name: str | None) -> Any:
    """The processor saved next to the model; an in-memory model without a folder must be given one."""
    source = name or getattr(getattr(model, "config", None), "name_or_path", None)
    if not source:
        raise ValueError(
            f"processing_class is required: the policy {type(model).__name__} was passed in memory and "
            "has no folder to load its processor from (config.name_or_path is empty). Pass e.g. "
            "processing_class=WhisperProcessor.from_pretrained(...)."
        )
    try:
        return AutoProcessor.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"processing_class was not given and no processor could be loaded from {source!r} "
            f"({type(error).__name__}: {error}); pass processing_class"
        ) from error


def _check_size(dataset: Dataset, name: str, args: Any, train: bool) -> None:
    if len(dataset) == 0:
        raise ValueError(f"{name} is empty")
    if not train:
        return
    generations = args.num_generations or 1
    needed = max(1, (args.generation_batch_size or generations) // generations)
    if len(dataset) < needed:
        raise ValueError(
            f"{name} has {len(dataset)} rows, fewer than the {needed} clips of one generation batch "
            f"(generation_batch_size={args.generation_batch_size} completions = {needed} clips x "
            f"num_generations={generations}): no training step could run. Add rows or lower "
            f"per_device_train_batch_size / steps_per_generation."
        )


__all__ = [
    "DECODE_ERRORS",
    "ROW_ID_COLUMN",
    "RewardFunctionError",
    "SpeechTrainerMixin",
    "UndecodableAudioError",
    "check_columns",
    "check_report_to",
    "guard_reward",
    "resolve_reward_names",
]
