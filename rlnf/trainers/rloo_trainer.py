"""``ASRRLOOTrainer``: TRL's ``RLOOTrainer`` (REINFORCE leave-one-out) for speech-to-text policies.

Built exactly like ``ASRGRPOTrainer``: TRL keeps the algorithm (leave-one-out baselines, the sequence-level KL
penalty in the reward, the clipped sequence ratio, logging, checkpoints); the audio goes through
`rlnf.trainers.speech.SpeechTrainerMixin` and the policy family of `rlnf.policies.base.policy_for`. This file
maps TRL 1.16's private RLOO methods onto them (pinned; ``tests/test_rloo.py`` runs the subclass):

* ``_generate_and_score_completions``: the batch's unique clips, then TRL, then per-row clip views in the batch;
* ``_tokenize_prompts``: every row's prompt is the policy's ``prompt_ids``;
* ``_generate_single_turn``: G completions per clip, the encoder ONCE per unique clip;
* ``_get_per_token_logps_and_entropies``: the policy's log-prob pass, the encoder ONCE per unique clip;
* ``compute_loss``: the step's clips rebuilt from the per-row views;
* ``_calculate_rewards``: TRL's reward loop with guarded reward functions.

When to prefer it to GRPO: RLOO's baseline is unbiased (the others' mean, no std scaling) and its ratio is one
per sequence; GRPO's token-level loss types and KL-in-the-loss give more knobs.
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
from trl import RLOOTrainer
from trl.trainer import rloo_trainer as _trl_rloo

from ..policies.base import CLIPS_KEY
from .rloo_config import ASRRLOOConfig
from .speech import SpeechTrainerMixin, resolve_reward_names


class ASRRLOOTrainer(SpeechTrainerMixin, RLOOTrainer):
    """RLOO for speech-to-text policies: audio in, sampled transcripts out, TRL for everything else.

    Arguments as `ASRGRPOTrainer` (a policy or its path, ``reward_funcs`` as callables or registry names,
    an `ASRRLOOConfig`, datasets with ``audio_column``/``reference_column``, the policy's processor, an optional
    ``peft.LoraConfig`` without ``task_type``).
    """

    _tag_names = ["trl", "rloo", "rlnf", "asr"]

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: Any,
        args: ASRRLOOConfig | None = None,
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
            args = ASRRLOOConfig(output_dir=f"{str(name).rstrip('/').split('/')[-1]}-ASR-RLOO")
        if not isinstance(args, ASRRLOOConfig):
            raise TypeError(f"args must be an ASRRLOOConfig (it adds the audio fields), got {type(args).__name__}")
        if args.use_vllm:
            raise NotImplementedError("ASRRLOOTrainer generates with transformers only (vLLM has no speech path here)")
        if train_dataset is None:
            raise ValueError("ASRRLOOTrainer needs a train_dataset with an audio column")
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

    @contextmanager
    def _reference_by_copy(self) -> Iterator[None]:
        """With full fine-tuning and beta > 0, TRL reloads the reference from ``config._name_or_path``, which an
        in-memory policy does not have: hand TRL a frozen copy of the policy instead (same weights)."""

        def frozen_copy(*_args: Any, **_kwargs: Any) -> PreTrainedModel:
            reference = copy.deepcopy(self.model)
            reference.requires_grad_(False)
            return reference.eval()

        with mock.patch.object(_trl_rloo, "create_model_from_path", frozen_copy):
            yield

    # ---- TRL overrides ---------------------------------------------------------------------------

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict]:
        return [list(self.policy.prompt_ids) for _ in prompts], None, {}

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        rows, clips, bad_rows = self._collect_clips(inputs)
        self._clip_batch, self._bad_rows = clips, bad_rows
        try:
            output = super()._generate_and_score_completions(rows)
        finally:
            self._clip_batch = self._bad_rows = None
        output[CLIPS_KEY] = clips.row_views()  # TRL shuffles and splits these per-row views with the rest
        if self.args.skip_undecodable_audio:
            keep = (~torch.tensor(bad_rows, device=self.accelerator.device)).int().unsqueeze(1)
            output["completion_mask"] = output["completion_mask"] * keep
        return output

    def _generate_single_turn(self, prompt_ids: list, images: Any, multimodal_fields: dict) -> list[list[int]]:
        if self._clip_batch is None:
            raise RuntimeError("_generate_single_turn called outside _generate_and_score_completions")
        return self._sample_completions(self._clip_batch, self._bad_rows)

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
            rewards[bad] = torch.nan  # unscorable: TRL leaves them out of the baselines, zero advantage
        return rewards


__all__ = ["ASRRLOOTrainer"]
