"""``TRLSpeechTrainerMixin``: TRL 1.16's private GRPO/RLOO methods mapped onto the speech seam, written once.

``GRPOTrainer`` and ``RLOOTrainer`` share these private methods (same names, same calls), so
``ASRGRPOTrainer`` and ``ASRRLOOTrainer`` take them from here and keep only what differs (their config,
``_generate_single_turn``'s signature, GRPO's token count). The list of TRL internals and the checks that
they are where rlnf expects them live in `rlnf.trainers.trl_compat`.

* ``_generate_and_score_completions``: collect the batch's unique clips, call TRL, put per-row views of the
  clips in TRL's batch dict (so TRL shuffles and splits them with the rest);
* ``_tokenize_prompts``: every row's prompt is the policy's ``prompt_ids`` (Whisper's decoder prefix);
* ``_get_per_token_logps_and_entropies``: the policy's log-prob pass, the encoder ONCE per unique clip;
* ``compute_loss``: rebuild the step's clips from the per-row views;
* ``_calculate_rewards``: TRL's reward loop with guarded reward functions;
* ``__init__`` / ``_reference_by_copy``: the shared construction around TRL's ``__init__``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, ClassVar

import torch
from accelerate.utils import gather
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import PreTrainedModel

from ..policies.base import CLIPS_KEY
from .speech import SpeechTrainerMixin, resolve_reward_names
from .trl_compat import check_trl_internals, reference_model_by

logger = logging.getLogger(__name__)


class TRLSpeechTrainerMixin(SpeechTrainerMixin):
    """Speech overrides of the private methods TRL's GRPO and RLOO trainers share; put before the TRL class.

    A trainer sets the class attributes below and keeps only what differs (``_check_generation``,
    ``_generate_single_turn``'s signature ...)."""

    _trl_module: ClassVar[ModuleType]  # the TRL module whose create_model_from_path builds the reference
    _config_class: ClassVar[type]  # the trainer's config (ASRGRPOConfig ...)
    _algorithm: ClassVar[str]  # "GRPO" / "RLOO": the default output_dir's suffix
    _trainer_name: ClassVar[str]  # named in error messages

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs: Any,
        args: Any = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset | IterableDataset | dict[str, Dataset | IterableDataset] | None = None,
        processing_class: Any = None,
        reward_processing_classes: Any = None,
        callbacks: list | None = None,
        optimizers: tuple = (None, None),
        peft_config: Any = None,
    ):
        check_trl_internals()
        args = self._default_args(model, args, self._config_class, self._algorithm, " (it adds the audio fields)")
        self._check_generation(args)
        if train_dataset is None:
            raise ValueError(f"{self._trainer_name} needs a train_dataset with an audio column")
        model, processing_class, train_dataset, eval_dataset = self._speech_datasets(
            model, processing_class, args, peft_config, train_dataset, eval_dataset
        )
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

    def _check_generation(self, args: Any) -> None:
        """Refuse generation back ends without a speech path (checked before anything is loaded)."""

    @contextmanager
    def _reference_by_copy(self) -> Iterator[None]:
        """With full fine-tuning and beta > 0, TRL reloads the reference from ``config._name_or_path``, which
        an in-memory policy does not have: hand TRL a frozen copy of the policy instead (same weights)."""

        def frozen_copy(*_args: Any, **_kwargs: Any) -> PreTrainedModel:
            reference = copy.deepcopy(self.model)
            reference.requires_grad_(False)
            return reference.eval()

        with reference_model_by(self._trl_module, frozen_copy):
            yield

    def _sample_current_batch(self) -> list[list[int]]:
        """``_generate_single_turn``'s work: G completions per clip of the batch being scored."""
        if self._clip_batch is None:
            raise RuntimeError("_generate_single_turn called outside _generate_and_score_completions")
        return self._sample_completions(self._clip_batch, self._bad_rows)

    # ---- TRL overrides ---------------------------------------------------------------------------

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
        if self.args.skip_undecodable_audio:
            keep = (~torch.tensor(bad_rows, device=self.accelerator.device)).int().unsqueeze(1)
            output["completion_mask"] = output["completion_mask"] * keep
        return output

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

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL prints (and writes to ``completions/``) the completions table at every log call: an empty table for
        an evaluation without sampled rewards (the recipes' "before", at step 0) and the last step's table again
        with the end-of-training summary. Here the table goes out once per logged training step."""
        fresh = self.model.training and "loss" in logs and self.state.global_step != self._completions_logged_at
        if not self.log_completions or fresh:
            if self.log_completions:
                self._completions_logged_at = self.state.global_step
            super().log(logs, start_time)
            return
        self.log_completions = False
        try:
            super().log(logs, start_time)
        finally:
            self.log_completions = True

    _completions_logged_at: int | None = None  # the global step whose completions table went out last

    def _calculate_rewards(self, inputs: list, prompts: list, completions: list, completion_ids_list: list) -> Any:
        """TRL's reward loop; errors name the reward and step; skipped clips never reach a reward function."""
        skipping = self.args.skip_undecodable_audio and self._bad_rows is not None and any(self._bad_rows)
        with self._guarded_rewards(len(prompts)), _without_all_none_warning(self._trl_module, skipping):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.args.skip_undecodable_audio and self._bad_rows is not None:
            bad = gather(torch.tensor(self._bad_rows, device=rewards.device))
            unrewarded = torch.isnan(rewards).all(dim=1) & ~bad
            if skipping and unrewarded.any():  # TRL's warning was held back for the skipped clips: not for these
                logger.warning("%d completions of clips that decoded got no reward from any reward function",
                               int(unrewarded.sum()))  # fmt: skip
            rewards[bad] = torch.nan  # unscorable (nn.Module rewards too): TRL gives them zero advantage
        return rewards


class _AllNoneFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "All reward functions returned None" not in record.getMessage()  # accelerate prefixes "[RANK n]"


@contextmanager
def _without_all_none_warning(module: ModuleType, active: bool) -> Iterator[None]:
    """Hold back TRL's "All reward functions returned None" (once per step, with the whole row) while a skipped
    clip's rows get None on purpose: the skip was already said when the clip failed to decode."""
    if not active:
        yield
        return
    trl_logger, quiet = logging.getLogger(module.__name__), _AllNoneFilter()
    trl_logger.addFilter(quiet)
    try:
        yield
    finally:
        trl_logger.removeFilter(quiet)


__all__ = ["TRLSpeechTrainerMixin"]
