"""``ASRGRPOTrainer``: TRL's ``GRPOTrainer`` for speech-to-text policies (``AutoModelForSpeechSeq2Seq``, Whisper first).

TRL keeps everything that is not about audio: sampling groups, reward gathering, advantages, loss types,
clipping, KL, entropy, importance sampling, logging, checkpoints. This subclass changes only where audio
enters, through overrides of TRL 1.16 private methods (pinned; ``tests/test_grpo_trainer.py`` checks their
signatures):

* ``_generate_and_score_completions``: decode each UNIQUE clip of the batch once, compute its features once,
  and put per-row references to them in TRL's batch dict (so TRL shuffles and splits them with the rest).
* ``_tokenize_prompts``: the "prompt" is Whisper's decoder prefix (``<|startoftranscript|> ... <|notimestamps|>``).
* ``_generate_single_turn``: run the encoder once per unique clip, expand its states to the clip's G rows and
  sample with plain ``GenerationMixin.generate`` (the prefix stays in the output).
* ``_get_per_token_logps_and_entropies``: the decoder pass of the old/reference/current policies, with the
  encoder run once per unique clip inside the model's own forward (so gradients reach a trainable encoder and
  DDP/FSDP see one ordinary forward).
* ``compute_loss`` / ``training_step``: make the step's clips available to that pass (and keep its hooks until
  backward when gradient checkpointing recomputes layers).
* ``_calculate_rewards``: errors that name the reward function and step; skipped clips left unscored.
* ``evaluate`` / ``evaluation_loop``: greedy corpus WER/CER (``eval_wer``, ``eval_cer``).

Work that depends only on the clip is done once per clip, never once per sample: that is the project's main
performance idea (`ClipHooks`). With G samples per clip, the encoder and the decoder's cross-attention
key/value projections (together most of Whisper's compute on 30 s windows) do 1/G of the work of TRL's text
path. With ``freeze_encoder=True`` the encoder states computed for generation serve every later pass.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
import torch
from accelerate.utils import gather, gather_object
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, GenerationConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput
from transformers.trainer_utils import EvalLoopOutput
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation
from trl.trainer import grpo_trainer as _trl_grpo
from trl.trainer.utils import is_async_callable

from rlnf.audio import audio_key, load_audio

from ..policies.whisper import (
    completion_ids,
    decoder_prefix_ids,
    extract_features,
    feature_frames,
    generate_from_encoder,
    generation_model,
    suppressed_tokens,
    transcribe,
)
from .asr_eval import error_rates
from .grpo_config import ASRGRPOConfig

ROW_ID_COLUMN = "__rlnf_row__"  # dataset row index added at init: dedupes clips and names rows in errors
FEATURES_KEY = "audio_features"  # per-row references to each clip's features in TRL's batch dict
STATES_KEY = "audio_encoder_states"  # per-row references to a frozen encoder's output
DECODE_ERRORS = (ValueError, OSError, RuntimeError, TypeError, EOFError)


class UndecodableAudioError(ValueError):
    """An audio item that cannot be decoded; the message names the dataset row."""


class RewardFunctionError(RuntimeError):
    """A reward function raised; the message names the function and the global step."""


@dataclass
class ClipBatch:
    """The audio of the rows being scored: each unique clip once, and which clip each row is."""

    features: torch.Tensor  # [clips, n_mels, frames]
    clip_of_row: torch.Tensor  # [rows] long, index into the clips
    encoder_states: torch.Tensor | None = None  # [clips, T, D]: a frozen encoder's output, reusable

    def row_views(self) -> dict[str, list[torch.Tensor]]:
        """Per-row references (one tensor object per clip, no copies) for TRL's batch dict."""
        rows = self.clip_of_row.tolist()
        views = self.features.unbind(0)
        out = {FEATURES_KEY: [views[c] for c in rows]}
        if self.encoder_states is not None:
            states = self.encoder_states.unbind(0)
            out[STATES_KEY] = [states[c] for c in rows]
        return out

    @classmethod
    def from_row_views(cls, inputs: dict[str, Any], device: torch.device) -> ClipBatch:
        """Rebuild the clips of a (shuffled, split) batch: rows that hold the same tensor object are one clip."""
        features = inputs.get(FEATURES_KEY)
        if features is None:
            raise RuntimeError(f"the batch has no '{FEATURES_KEY}': it was not built by ASRGRPOTrainer")
        states = inputs.get(STATES_KEY)
        order: dict[int, int] = {}
        unique: list[int] = []
        clip_of_row = []
        for row, tensor in enumerate(features):
            if id(tensor) not in order:
                order[id(tensor)] = len(unique)
                unique.append(row)
            clip_of_row.append(order[id(tensor)])
        return cls(
            features=torch.stack([features[r] for r in unique]).to(device),
            clip_of_row=torch.tensor(clip_of_row, dtype=torch.long, device=device),
            encoder_states=None if states is None else torch.stack([states[r] for r in unique]).to(device),
        )


class ClipHooks:
    """Forward hooks that make a decoder pass over G rows per clip do the clip-only work once per clip.

    * encoder (``encoder=True``): the model's own forward runs the encoder on the unique clips; a hook expands
      its output to the rows, so gradients still reach a trainable encoder and DDP/FSDP see one forward.
    * cross-attention keys/values: they depend on the clip only, yet the decoder projects the encoder states
      of every row. A pre-hook on each ``encoder_attn.k_proj``/``v_proj`` keeps one row per clip and a hook
      expands the projection back; the gradient reaching the (expanded) encoder states sums to the same
      per-clip total. For Whisper-tiny on 30 s this projection costs about as much as the encoder itself
      when G = 8. Inactive when every row is its own clip.
    """

    def __init__(self, model: nn.Module, clip_of_row: torch.Tensor, *, encoder: bool):
        self.clip_of_row = clip_of_row
        self.rows = clip_of_row.numel()
        first: dict[int, int] = {}
        for row, clip in enumerate(clip_of_row.tolist()):
            first.setdefault(clip, row)
        self.first_rows = torch.tensor(list(first.values()), dtype=torch.long, device=clip_of_row.device)
        position = {clip: i for i, clip in enumerate(first)}  # clip -> its row among the kept rows
        self.kept_of_row = torch.tensor([position[c] for c in clip_of_row.tolist()], device=clip_of_row.device)
        self.handles: list[Any] = []
        self._active: set[int] = set()
        if encoder:
            self.handles.append(model.get_encoder().register_forward_hook(self._expand_encoder))
        if len(first) < self.rows:
            for name, module in model.get_decoder().named_modules():
                if name.endswith(("encoder_attn.k_proj", "encoder_attn.v_proj")):
                    self.handles.append(module.register_forward_pre_hook(self._keep_one_row_per_clip))
                    self.handles.append(module.register_forward_hook(self._expand_projection))

    def _expand_encoder(self, _module: nn.Module, _args: Any, output: Any) -> BaseModelOutput:
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        return BaseModelOutput(last_hidden_state=hidden.index_select(0, self.clip_of_row.to(hidden.device)))

    def _keep_one_row_per_clip(self, module: nn.Module, args: tuple) -> tuple | None:
        states = args[0]
        if states.shape[0] != self.rows:  # not this pass's rows: leave it alone
            return None
        self._active.add(id(module))
        return (states.index_select(0, self.first_rows.to(states.device)), *args[1:])

    def _expand_projection(self, module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if id(module) not in self._active:
            return None
        self._active.discard(id(module))
        return output.index_select(0, self.kept_of_row.to(output.device))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _has_adapters(module: nn.Module) -> bool:
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return False
    return any(isinstance(m, BaseTunerLayer) for m in module.modules())


class ASRGRPOTrainer(GRPOTrainer):
    """GRPO for speech-to-text policies: audio in, sampled transcripts out, TRL for everything else.

    Args:
        model: a speech encoder-decoder (``WhisperForConditionalGeneration`` ...) or a path / hub id loaded
            with ``AutoModelForSpeechSeq2Seq`` and ``args.model_init_kwargs``.
        reward_funcs: TRL reward functions (each gets ``completions`` plus every dataset column, the audio
            column included: decoded, one shared ``{"array", "sampling_rate"}`` object per clip), or names from
            ``rlnf.rewards.registry`` (``"wer"``, ``"cer"`` ...).
        args: an ``ASRGRPOConfig``.
        train_dataset / eval_dataset: rows with ``args.audio_column`` and (unless ``reference_column=None``)
            ``args.reference_column``; a ``prompt`` column is optional (it only reaches the rewards).
        processing_class: the policy's processor (feature extractor + tokenizer, e.g. ``WhisperProcessor``);
            loaded from the model's folder when omitted.
        peft_config: a ``peft.LoraConfig`` WITHOUT ``task_type`` (Whisper's forward breaks with
            ``SEQ_2_SEQ_LM``), not targeting ``proj_out``. The reference policy is then the base model.
    """

    _tag_names = ["trl", "grpo", "rlnf", "asr"]

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: Any,
        args: ASRGRPOConfig | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset | IterableDataset | dict[str, Dataset | IterableDataset] | None = None,
        processing_class: Any = None,
        reward_processing_classes: Any = None,
        callbacks: list | None = None,
        optimizers: tuple = (None, None),
        peft_config: Any = None,
    ):
        if args is None:
            name = model if isinstance(model, str) else type(model).__name__
            args = ASRGRPOConfig(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-ASR-GRPO")
        if not isinstance(args, ASRGRPOConfig):
            raise TypeError(f"args must be an ASRGRPOConfig (it adds the audio fields), got {type(args).__name__}")
        if args.use_vllm or args.use_transformers_continuous_batching:
            raise NotImplementedError("ASRGRPOTrainer generates with transformers only (vLLM/continuous batching "
                                      "have no speech encoder-decoder path here)")
        if train_dataset is None:
            raise ValueError("ASRGRPOTrainer needs a train_dataset with an audio column")
        model = self._load_policy(model, args)
        _check_policy(model)
        if processing_class is None:
            processing_class = AutoProcessor.from_pretrained(model.config._name_or_path)
        tokenizer, feature_extractor = _split_processor(processing_class)
        if int(getattr(feature_extractor, "sampling_rate", args.sampling_rate)) != args.sampling_rate:
            raise ValueError(f"the feature extractor works at {feature_extractor.sampling_rate} Hz but "
                             f"args.sampling_rate is {args.sampling_rate}")
        _check_peft_config(peft_config)
        prefix = decoder_prefix_ids(tokenizer, args.language, args.task, args.predict_timestamps)
        _check_completion_length(model, prefix, args)
        frames = feature_frames(model.config, feature_extractor, args.pad_features_to)
        train_dataset = self._prepare_dataset(train_dataset, "train_dataset", args)
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._prepare_dataset(v, f"eval_dataset[{k!r}]", args) for k, v in eval_dataset.items()}
        elif eval_dataset is not None:
            eval_dataset = self._prepare_dataset(eval_dataset, "eval_dataset", args)
        reward_funcs = _resolve_reward_names(reward_funcs, args)

        init_kwargs, args.model_init_kwargs = args.model_init_kwargs, None  # the model is already built here
        try:
            with self._reference_by_copy():
                super().__init__(
                    model=model,
                    reward_funcs=reward_funcs,
                    args=args,
                    train_dataset=train_dataset,
                    eval_dataset=eval_dataset,
                    processing_class=tokenizer,  # a processor would be taken for a vision one
                    reward_processing_classes=reward_processing_classes,
                    callbacks=callbacks,
                    optimizers=optimizers,
                    peft_config=peft_config,
                )
        finally:
            args.model_init_kwargs = init_kwargs

        self.asr_processor = processing_class
        self.feature_extractor = feature_extractor
        self.decoder_prefix = prefix
        self.feature_frames = frames
        self._clip_batch: ClipBatch | None = None
        self._bad_rows: torch.Tensor | None = None
        self._asr_eval_dataset: Any = None
        self._deferred_hooks: list[ClipHooks] | None = None
        encoder = generation_model(self.model).get_encoder()
        if args.freeze_encoder:
            encoder.requires_grad_(False)
        # A frozen encoder without adapters gives the same states for policy, old policy and reference:
        # compute them once per clip at generation time and reuse them in every pass.
        self.share_encoder_states = args.freeze_encoder and not _has_adapters(encoder)
        self._set_generation_config(args)

    # ------------------------------------------------------------------------------------------------
    # Construction helpers
    # ------------------------------------------------------------------------------------------------

    @staticmethod
    def _load_policy(model: str | PreTrainedModel, args: ASRGRPOConfig) -> PreTrainedModel:
        if not isinstance(model, str):
            return model
        kwargs = dict(args.model_init_kwargs or {})
        dtype = kwargs.get("dtype", "float32")
        if isinstance(dtype, str) and dtype != "auto":
            kwargs["dtype"] = getattr(torch, dtype)
        return AutoModelForSpeechSeq2Seq.from_pretrained(model, **kwargs)

    @contextmanager
    def _reference_by_copy(self) -> Iterator[None]:
        """With full fine-tuning and beta > 0, TRL reloads the reference from ``config._name_or_path``, which
        an in-memory policy does not have: hand TRL a frozen copy of the policy instead (same weights)."""

        def frozen_copy(*_args: Any, **_kwargs: Any) -> PreTrainedModel:
            reference = copy.deepcopy(self.model)
            reference.requires_grad_(False)
            return reference.eval()

        with mock.patch.object(_trl_grpo, "create_model_from_path", frozen_copy):
            yield

    def _prepare_dataset(self, dataset: Any, name: str, args: ASRGRPOConfig) -> Any:
        """Check the columns now (not at step 1) and add the row index used to dedupe clips."""
        columns = getattr(dataset, "column_names", None)
        if columns is not None:
            _check_columns(columns, name, args)
        if isinstance(dataset, Dataset) and ROW_ID_COLUMN not in dataset.column_names:
            dataset = dataset.add_column(ROW_ID_COLUMN, list(range(len(dataset))))
        elif isinstance(dataset, IterableDataset) and ROW_ID_COLUMN not in (columns or []):
            dataset = dataset.map(lambda _, i: {ROW_ID_COLUMN: i}, with_indices=True)
        return dataset

    def _set_generation_config(self, args: ASRGRPOConfig) -> None:
        """Sampling settings from TRL plus what Whisper needs: the decoder start and the checkpoint's
        suppressed tokens (timestamps too, unless predicted); ``args.generation_kwargs`` still wins."""
        suppress, begin_suppress = suppressed_tokens(
            generation_model(self.model), self._tokenizer, args.predict_timestamps
        )
        extra = {
            "decoder_start_token_id": self.decoder_prefix[0],
            "suppress_tokens": suppress or None,
            "begin_suppress_tokens": begin_suppress or None,
            # The prefix has a fixed length: a total length says the same as max_new_tokens without clashing
            # with the checkpoint's own max_length (transformers warns on every call otherwise).
            "max_new_tokens": None,
            "max_length": len(self.decoder_prefix) + self.max_completion_length,
        }
        self.generation_kwargs = {**self.generation_kwargs, **extra, **(args.generation_kwargs or {})}
        self.generation_config = GenerationConfig(**self.generation_kwargs, disable_compile=True)

    def _set_signature_columns_if_needed(self) -> None:
        # With remove_unused_columns=True, keep what this trainer reads (TRL keeps only prompt/image columns).
        if self._signature_columns is None:
            keep = ["prompt", self.args.audio_column, ROW_ID_COLUMN]
            self._signature_columns = keep + ([self.args.reference_column] if self.args.reference_column else [])

    # ------------------------------------------------------------------------------------------------
    # Audio: each unique clip decoded and featurised once
    # ------------------------------------------------------------------------------------------------

    def _clip_key(self, row: dict[str, Any], position: int) -> Any:
        """Rows of the same clip share a key: the dataset row index, else a cheap identity of the audio.

        The benchmark's naive subclass overrides this to treat every row as its own clip.
        """
        if row.get(ROW_ID_COLUMN) is not None:
            return ("row", row[ROW_ID_COLUMN])
        return audio_key(row[self.args.audio_column])

    def _load_clip(self, item: Any, row: int) -> np.ndarray | None:
        """Decode one clip at the policy's rate; ``None`` when it fails and the config says skip."""
        rate = self.args.sampling_rate
        try:
            return load_audio(item, rate, index=row, target_sampling_rate=rate)
        except DECODE_ERRORS as error:
            message = (f"dataset row {row}: the '{self.args.audio_column}' item cannot be decoded "
                       f"({type(error).__name__}: {error})")
            if not self.args.skip_undecodable_audio:
                raise UndecodableAudioError(f"{message}. Set skip_undecodable_audio=True to skip such rows.") from error
            warnings.warn(f"{message}; skipped (no reward, no loss)", stacklevel=3)
            return None

    def _collect_clips(self, inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], ClipBatch, list[bool]]:
        """Rows for TRL (audio decoded, shared per clip) and the batch's unique clips with their features."""
        _check_columns(list(inputs[0]), "a batch", self.args, reference=False)
        rate = self.args.sampling_rate
        index: dict[Any, int] = {}
        waveforms: list[np.ndarray] = []
        decoded: list[dict[str, Any]] = []
        bad_clips: list[bool] = []
        clip_of_row: list[int] = []
        for position, row in enumerate(inputs):
            key = self._clip_key(row, position)
            if key not in index:
                row_id = row.get(ROW_ID_COLUMN, position)
                waveform = self._load_clip(row[self.args.audio_column], row_id)
                bad_clips.append(waveform is None)
                if waveform is None:
                    waveform = np.zeros(rate // 10, dtype=np.float32)  # placeholder, masked out below
                index[key] = len(waveforms)
                waveforms.append(waveform)
                decoded.append({"array": waveform, "sampling_rate": rate})
            clip_of_row.append(index[key])
        rows = []
        for row, clip in zip(inputs, clip_of_row, strict=True):
            row = {k: v for k, v in row.items() if k != ROW_ID_COLUMN}
            row[self.args.audio_column] = decoded[clip]  # one object per clip: rewards can dedupe by identity
            row.setdefault("prompt", "")
            rows.append(row)
        device = self.accelerator.device
        dtype = next(generation_model(self.model).get_encoder().parameters()).dtype
        with profiling_context(self, "feature_extraction"):
            features = extract_features(self.feature_extractor, waveforms, self.feature_frames).to(device, dtype)
        clips = ClipBatch(features, torch.tensor(clip_of_row, dtype=torch.long, device=device))
        return rows, clips, [bad_clips[c] for c in clip_of_row]

    def _encode(self, model: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """THE encoder call of generation: once per unique clip."""
        return generation_model(model).get_encoder()(input_features=features).last_hidden_state

    @contextmanager
    def _per_clip(self, model: nn.Module, clip_of_row: torch.Tensor, *, encoder: bool) -> Iterator[None]:
        """Inside ``model``'s own forward, do the clip-only work once per clip (see `ClipHooks`).

        Hooks of a loss pass stay until its backward is done when gradient checkpointing recomputes layers.
        """
        hooks = ClipHooks(generation_model(self.accelerator.unwrap_model(model)), clip_of_row, encoder=encoder)
        try:
            yield
        finally:
            if self._deferred_hooks is not None and torch.is_grad_enabled():
                self._deferred_hooks.append(hooks)
            else:
                hooks.remove()

    # ------------------------------------------------------------------------------------------------
    # TRL overrides
    # ------------------------------------------------------------------------------------------------

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict]:
        # The policy's "prompt" is Whisper's decoder prefix; the dataset prompt (if any) only reaches rewards.
        return [list(self.decoder_prefix) for _ in prompts], None, {}

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        rows, clips, bad_rows = self._collect_clips(inputs)
        self._clip_batch = clips
        self._bad_rows = torch.tensor(bad_rows, device=self.accelerator.device)
        try:
            output = super()._generate_and_score_completions(rows)
        finally:
            self._clip_batch, bad = None, self._bad_rows
            self._bad_rows = None
        output.update(clips.row_views())  # TRL shuffles and splits these per-row references with the rest
        if self.args.skip_undecodable_audio:  # same branch on every rank: the gather below is collective
            keep = (~bad).int().unsqueeze(1)
            output["completion_mask"] = output["completion_mask"] * keep
            mask = output["completion_mask"] * output.get("tool_mask", 1)
            output["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        return output

    def _generate_single_turn(
        self, prompt_ids: list, images: Any, multimodal_fields: dict, num_generations: int, has_tool_images: bool = False
    ) -> tuple[list[list[int]], None]:
        clips = self._clip_batch
        if clips is None:
            raise RuntimeError("_generate_single_turn called outside _generate_and_score_completions")
        with (
            profiling_context(self, "transformers.generate"),
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            states = self._encode(unwrapped, clips.features)  # encoder: once per unique clip ...
            if self.share_encoder_states:
                clips.encoder_states = states
            hidden = states.index_select(0, clips.clip_of_row)  # ... expanded to its G samples
            with self._per_clip(unwrapped, clips.clip_of_row, encoder=False):  # cross-attention K/V per clip
                sequences = generate_from_encoder(unwrapped, hidden, prompt_ids[0], self.generation_config)
        return completion_ids(sequences, len(prompt_ids[0]), self.eos_token_ids), None

    def _get_per_token_logps_and_entropies(
        self,
        model: nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **_multimodal: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Decoder log-probs of the completions given the audio; encoder once per unique clip per pass."""
        clips = self._clip_batch
        if clips is None:
            raise RuntimeError("no audio for this log-prob pass (called outside a generation or loss step)")
        parts: list[tuple[torch.Tensor, Any]] = []
        for rows in _clip_chunks(clips.clip_of_row, batch_size or input_ids.size(0)):
            ids, mask = input_ids[rows], attention_mask[rows]
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100
            clip_ids, local = torch.unique(clips.clip_of_row[rows], return_inverse=True)
            kwargs: dict[str, Any] = {"decoder_input_ids": ids, "decoder_attention_mask": mask, "labels": labels}
            if compute_aux_loss:
                kwargs["output_router_logits"] = True
            shared = clips.encoder_states is not None  # frozen encoder: reuse the states from generation
            with self.accelerator.autocast(), self._per_clip(model, local, encoder=not shared):
                if shared:
                    hidden = clips.encoder_states.index_select(0, clip_ids).index_select(0, local)
                    outputs = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), fused_lm_head=True,
                                    **kwargs)
                else:  # the encoder runs once per unique clip inside the forward; ClipHooks expands its output
                    outputs = model(input_features=clips.features[clip_ids], fused_lm_head=True, **kwargs)
            parts.append((rows, outputs))
        order = torch.cat([rows for rows, _ in parts]).argsort()
        logps = torch.cat([out.log_probs[:, -logits_to_keep:] for _, out in parts])[order]
        entropies = None
        if compute_entropy:
            entropies = torch.cat([out.entropy[:, -logits_to_keep:] for _, out in parts])[order]
        aux = torch.stack([out.aux_loss for _, out in parts]).mean() if compute_aux_loss else None
        return logps, entropies, aux

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        # With gradient checkpointing, backward re-runs decoder layers: the per-clip hooks must still be there.
        self._deferred_hooks = [] if self.args.gradient_checkpointing else None
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            for hooks in self._deferred_hooks or []:
                hooks.remove()
            self._deferred_hooks = None

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor:
        self._clip_batch = ClipBatch.from_row_views(inputs, self.accelerator.device)
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self._clip_batch = None

    def _calculate_rewards(self, inputs: list, prompts: list, completions: list, completion_ids_list: list) -> Any:
        """TRL's reward loop, with errors that name the reward and step, and skipped clips left unscored."""
        original = self.reward_funcs
        self.reward_funcs = [
            f if isinstance(f, nn.Module) else _guard(f, name, self.state.global_step)
            for f, name in zip(original, self.reward_func_names, strict=True)
        ]
        try:
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        finally:
            self.reward_funcs = original
        if self.args.skip_undecodable_audio and self._bad_rows is not None:
            bad = gather(self._bad_rows)
            rewards[bad] = torch.nan  # unscorable: TRL gives these completions zero advantage
        return rewards

    # ------------------------------------------------------------------------------------------------
    # Evaluation: greedy corpus WER/CER next to (or instead of) TRL's sampled rewards
    # ------------------------------------------------------------------------------------------------

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
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

    def evaluation_loop(self, dataloader: Any, description: str, prediction_loss_only: bool | None = None,
                        ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval") -> EvalLoopOutput:
        dataset = self._asr_eval_dataset
        if dataset is None or self.args.eval_sampled_rewards:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                             metric_key_prefix)
        else:
            output = EvalLoopOutput(predictions=None, label_ids=None, metrics={}, num_samples=0)
        if dataset is not None and self.args.reference_column:
            self.model.eval()  # TRL's log() names metrics after the model's mode
            rates = self.greedy_error_rates(dataset)
            output.metrics.update({f"{metric_key_prefix}_{k}": v for k, v in rates.items() if k != "num_samples"})
            if not self.args.eval_sampled_rewards:
                output = EvalLoopOutput(None, None, output.metrics, num_samples=rates["num_samples"])
        return output

    def greedy_error_rates(self, dataset: Any) -> dict[str, float]:
        """Corpus WER/CER of greedy transcripts of ``dataset`` (rows split across processes, then gathered)."""
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        audio_col, ref_col = self.args.audio_column, self.args.reference_column
        waveforms, references = [], []
        for position, row in enumerate(dataset):
            if position % world != rank:
                continue
            waveform = self._load_clip(row[audio_col], row.get(ROW_ID_COLUMN, position))
            if waveform is not None:
                waveforms.append(waveform)
                references.append(row[ref_col])
        with unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation
        ) as unwrapped:
            hypotheses = transcribe(
                unwrapped,
                _Processor(self._tokenizer, self.feature_extractor),
                waveforms,
                batch_size=self.args.per_device_eval_batch_size,
                max_new_tokens=self.args.eval_max_new_tokens or self.args.max_completion_length,
                language=self.args.language,
                task=self.args.task,
                predict_timestamps=self.args.predict_timestamps,
                pad_features_to=self.args.pad_features_to,
                sampling_rate=self.args.sampling_rate,
            )
        pairs = gather_object(list(zip(references, hypotheses, strict=True)))
        rates = error_rates([r for r, _ in pairs], [h for _, h in pairs], self.args.eval_normalizer)
        return {**rates, "num_samples": len(pairs)}

    # ------------------------------------------------------------------------------------------------
    # Saving: the full processor (feature extractor too), so a checkpoint reloads as a Whisper processor
    # ------------------------------------------------------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save and hasattr(self.asr_processor, "save_pretrained"):
            self.asr_processor.save_pretrained(output_dir if output_dir is not None else self.args.output_dir)


# ----------------------------------------------------------------------------------------------------
# Module helpers
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Processor:
    tokenizer: Any
    feature_extractor: Any


def _clip_chunks(clip_of_row: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Row indices in chunks of whole clips (at most ``batch_size`` rows unless one clip has more), so no
    clip's encoder runs twice in one pass."""
    rows_of: dict[int, list[int]] = {}
    for row, clip in enumerate(clip_of_row.tolist()):
        rows_of.setdefault(clip, []).append(row)
    chunk: list[int] = []
    for rows in rows_of.values():
        if chunk and len(chunk) + len(rows) > batch_size:
            yield torch.tensor(chunk, dtype=torch.long, device=clip_of_row.device)
            chunk = []
        chunk.extend(rows)
    if chunk:
        yield torch.tensor(chunk, dtype=torch.long, device=clip_of_row.device)


def _guard(func: Callable, name: str, step: int) -> Callable:
    """Re-raise a reward function's error with its name and the global step (TRL's traceback has neither)."""

    def fail(error: Exception) -> RewardFunctionError:
        return RewardFunctionError(f"reward function {name!r} raised {type(error).__name__} at global step {step}: "
                                   f"{error}")

    if is_async_callable(func):

        async def guarded_async(**kwargs: Any) -> Any:
            try:
                return await func(**kwargs)
            except Exception as error:
                raise fail(error) from error

        return guarded_async

    def guarded(**kwargs: Any) -> Any:
        try:
            return func(**kwargs)
        except Exception as error:
            raise fail(error) from error

    return guarded


def _check_policy(model: Any) -> None:
    config = getattr(model, "config", None)
    if (
        not getattr(config, "is_encoder_decoder", False)
        or not hasattr(model, "get_encoder")
        or getattr(model, "main_input_name", None) != "input_features"
    ):
        raise TypeError(
            f"ASRGRPOTrainer trains speech encoder-decoder policies (AutoModelForSpeechSeq2Seq, e.g. Whisper) that "
            f"take input_features; got {type(model).__name__}. For text policies use trl.GRPOTrainer."
        )


def _split_processor(processor: Any) -> tuple[Any, Any]:
    tokenizer = getattr(processor, "tokenizer", None)
    feature_extractor = getattr(processor, "feature_extractor", None)
    if tokenizer is None or feature_extractor is None:
        raise TypeError(
            f"processing_class must be the policy's processor with a feature extractor and a tokenizer (e.g. "
            f"WhisperProcessor), got {type(processor).__name__}"
        )
    return tokenizer, feature_extractor


def _check_peft_config(peft_config: Any) -> None:
    if peft_config is None:
        return
    if getattr(peft_config, "task_type", None) is not None:
        raise ValueError(
            f"peft_config.task_type={peft_config.task_type!r}: PEFT's task wrappers break the Whisper forward "
            "(duplicate input_ids). Use a LoraConfig without task_type."
        )
    targets = getattr(peft_config, "target_modules", None) or []
    if "proj_out" in (targets if not isinstance(targets, str) else [targets]):
        raise ValueError("LoRA on proj_out is not supported: the log-probs read proj_out.weight directly, so the "
                         "adapter would never train. Remove 'proj_out' from target_modules.")


def _check_completion_length(model: Any, prefix: Sequence[int], args: ASRGRPOConfig) -> None:
    limit = getattr(model.config, "max_target_positions", None)
    if limit is not None and args.max_completion_length is not None and len(prefix) + args.max_completion_length > limit:
        raise ValueError(
            f"max_completion_length={args.max_completion_length} plus the {len(prefix)}-token decoder prefix exceeds "
            f"the decoder's max_target_positions={limit}; set max_completion_length <= {limit - len(prefix)}"
        )


def _check_columns(columns: Sequence[str], name: str, args: ASRGRPOConfig, reference: bool = True) -> None:
    if args.audio_column not in columns:
        raise ValueError(f"{name} has no audio column {args.audio_column!r} (ASRGRPOConfig.audio_column); its "
                         f"columns are {sorted(c for c in columns if c != ROW_ID_COLUMN)}")
    if reference and args.reference_column is not None and args.reference_column not in columns:
        raise ValueError(
            f"{name} has no reference column {args.reference_column!r} (ASRGRPOConfig.reference_column); its "
            f"columns are {sorted(c for c in columns if c != ROW_ID_COLUMN)}. Set reference_column=None for "
            "reference-free training."
        )


def _resolve_reward_names(reward_funcs: Any, args: ASRGRPOConfig) -> Any:
    """Names from rlnf's reward registry ("wer", "cer" ...) become reward callables; TRL would read a string as
    the hub id of a text classifier."""
    funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
    if not any(isinstance(f, str) for f in funcs):
        return reward_funcs
    from rlnf.rewards.registry import REWARD_FUNCS

    options = {"reference_column": args.reference_column, "audio_column": args.audio_column}
    resolved = []
    for func in funcs:
        if isinstance(func, str) and func in REWARD_FUNCS:
            factory = REWARD_FUNCS[func]
            accepted = set(inspect.signature(factory).parameters)
            func = factory(**{k: v for k, v in options.items() if k in accepted and v is not None})
        resolved.append(func)
    return resolved


__all__ = ["ASRGRPOTrainer", "ClipBatch", "RewardFunctionError", "UndecodableAudioError"]
