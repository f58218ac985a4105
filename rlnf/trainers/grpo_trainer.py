"""``ASRGRPOTrainer``: TRL's ``GRPOTrainer`` for speech-to-text policies (Whisper; any family of `rlnf.policies`).

TRL keeps everything that is not about audio: sampling groups, reward gathering, advantages, loss types,
clipping, KL, entropy, importance sampling, logging, checkpoints. The audio goes through two seams:

* `rlnf.trainers.speech.SpeechTrainerMixin`: clips of a batch decoded and featurised once, reward guards,
  greedy WER/CER evaluation, saving the processor (shared with the RLOO and PPO trainers);
* `rlnf.policies.base.SpeechPolicy` (picked by ``policy_for``): how the policy family samples, scores and
  decodes (Whisper: decoder prefix as prompt, generation from encoder states, decoder log-probs).

This file only maps TRL 1.16's private methods onto them (pinned; ``tests/test_grpo_trainer.py`` checks the
signatures):

* ``_generate_and_score_completions``: collect the batch's unique clips, call TRL, put per-row views of the
  clips in TRL's batch dict (so TRL shuffles and splits them with the rest);
* ``_tokenize_prompts``: every row's prompt is the policy's ``prompt_ids`` (Whisper's decoder prefix);
* ``_generate_single_turn``: the policy samples G completions per clip, the encoder ONCE per unique clip;
* ``_get_per_token_logps_and_entropies``: the policy's log-prob pass, the encoder ONCE per unique clip;
* ``compute_loss``: rebuild the step's clips from the per-row views;
* ``_calculate_rewards``: TRL's reward loop with guarded reward functions.

Work that depends only on the clip is done once per clip, never once per sample: that is the project's main
performance idea. With G samples per clip, Whisper's encoder and cross-attention key/value projections
(together most of its compute on 30 s windows) do 1/G of the work of TRL's text path.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import torch
from accelerate.utils import gather
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import PreTrainedModel
from trl import GRPOTrainer
from trl.trainer import grpo_trainer as _trl_grpo

from ..policies.base import CLIPS_KEY, ClipBatch
from .grpo_config import ASRGRPOConfig
from .speech import (
    ROW_ID_COLUMN,
    RewardFunctionError,
    SpeechTrainerMixin,
    UndecodableAudioError,
    resolve_reward_names,
)


class ASRGRPOTrainer(SpeechTrainerMixin, GRPOTrainer):
    """GRPO for speech-to-text policies: audio in, sampled transcripts out, TRL for everything else.

    Args:
        model: a speech policy (``WhisperForConditionalGeneration`` ...) or a path / hub id, loaded with its
            family's Auto class and ``args.model_init_kwargs``.
        reward_funcs: TRL reward functions (each gets ``completions`` plus every dataset column, the audio
            column included: decoded, one shared ``{"array", "sampling_rate"}`` object per clip), or names from
            ``rlnf.rewards.registry`` (``"wer"``, ``"cer"`` ...; an unknown name is an error).
        args: an ``ASRGRPOConfig``.
        train_dataset / eval_dataset: rows with ``args.audio_column`` and ``args.reference_column`` (train;
            ``None``: reference-free, the split's transcripts are dropped) / ``args.eval_reference_column``
            (eval). A ``prompt`` column is optional (it only reaches the rewards).
        processing_class: the policy's processor (feature extractor + tokenizer, e.g. ``WhisperProcessor``);
            loaded from the model's folder when omitted (an in-memory model must be given one).
        peft_config: a ``peft.LoraConfig``; for Whisper WITHOUT ``task_type`` and not targeting ``proj_out``.
            The reference policy is then the base model.
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
            raise NotImplementedError(
                "ASRGRPOTrainer generates with transformers only (vLLM/continuous batching have no speech path here)"
            )
        if train_dataset is None:
            raise ValueError("ASRGRPOTrainer needs a train_dataset with an audio column")
        model, processing_class = self._setup_speech(model, processing_class, args, peft_config)
        train_dataset = self._prepare_dataset(train_dataset, "train_dataset", args, train=True)
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._prepare_dataset(v, f"eval_dataset[{k!r}]", args) for k, v in eval_dataset.items()}
        else:
            eval_dataset = self._prepare_dataset(eval_dataset, "eval_dataset", args)
        reward_funcs = resolve_reward_names(reward_funcs, args)

        init_kwargs, args.model_init_kwargs = args.model_init_kwargs, None  # the model is already built here
        try:
            with self._reference_by_copy():
                super().__init__(
                    model=model,
                    reward_funcs=reward_funcs,
                    args=args,
                    train_dataset=train_dataset,
                    eval_dataset=eval_dataset,
                    processing_class=self.policy.tokenizer,  # a processor would be taken for a vision one
                    reward_processing_classes=reward_processing_classes,
                    callbacks=callbacks,
                    optimizers=optimizers,
                    peft_config=peft_config,
                )
        finally:
            args.model_init_kwargs = init_kwargs
        self._finish_speech_setup(processing_class)
        self.policy.configure_sampling(self.generation_kwargs, args.generation_kwargs)
        self.generation_kwargs = getattr(self.policy, "generation_kwargs", self.generation_kwargs)
        self.generation_config = getattr(self.policy, "sampling_config", self.generation_config)

    @property
    def decoder_prefix(self) -> list[int]:
        """The prompt ids every row gets (Whisper's decoder prefix)."""
        return list(self.policy.prompt_ids)

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

    # ------------------------------------------------------------------------------------------------
    # TRL overrides
    # ------------------------------------------------------------------------------------------------

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict]:
        # The policy's "prompt" is fixed (Whisper's decoder prefix); the dataset prompt (if any) only reaches rewards.
        return [list(self.policy.prompt_ids) for _ in prompts], None, {}

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        rows, clips, bad_rows = self._collect_clips(inputs)
        self._clip_batch, self._bad_rows = clips, bad_rows
        try:
            output = super()._generate_and_score_completions(rows)
        finally:
            self._clip_batch = self._bad_rows = None
        output[CLIPS_KEY] = clips.row_views()  # TRL shuffles and splits these per-row views with the rest
        if self.args.skip_undecodable_audio:  # same branch on every rank: the gather below is collective
            keep = (~torch.tensor(bad_rows, device=self.accelerator.device)).int().unsqueeze(1)
            output["completion_mask"] = output["completion_mask"] * keep
            mask = output["completion_mask"] * output.get("tool_mask", 1)
            output["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        return output

    def _generate_single_turn(
        self,
        prompt_ids: list,
        images: Any,
        multimodal_fields: dict,
        num_generations: int,
        has_tool_images: bool = False,
    ) -> tuple[list[list[int]], None]:
        if self._clip_batch is None:
            raise RuntimeError("_generate_single_turn called outside _generate_and_score_completions")
        return self._sample_completions(self._clip_batch, self._bad_rows), None

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
        """Log-probs of the completions given the audio; the encoder once per unique clip per pass."""
        if compute_aux_loss:
            raise NotImplementedError("router aux loss is not supported for speech policies")
        logps, entropies = self._clip_log_probs(
            model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy
        )
        return logps, entropies, None

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> torch.Tensor:
        with self._clips_from(inputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _calculate_rewards(self, inputs: list, prompts: list, completions: list, completion_ids_list: list) -> Any:
        """TRL's reward loop; errors name the reward and step; skipped clips never reach a reward function."""
        with self._guarded_rewards(len(prompts)):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.args.skip_undecodable_audio and self._bad_rows is not None:
            bad = gather(torch.tensor(self._bad_rows, device=rewards.device))
            rewards[bad] = torch.nan  # unscorable (nn.Module rewards too): TRL gives them zero advantage
        return rewards


__all__ = ["ASRGRPOTrainer", "ClipBatch", "ROW_ID_COLUMN", "RewardFunctionError", "UndecodableAudioError"]
