"""``ASRGRPOTrainer``: TRL's ``GRPOTrainer`` for speech-to-text policies (Whisper; any family of `rlnf.policies`).

TRL keeps everything that is not about audio: sampling groups, reward gathering, advantages, loss types,
clipping, KL, entropy, importance sampling, logging, checkpoints. The audio goes through two seams:

* `rlnf.trainers.speech.SpeechTrainerMixin`: clips of a batch decoded and featurised once, reward guards,
  greedy WER/CER evaluation, saving the processor (shared with the RLOO and PPO trainers);
* `rlnf.policies.base.SpeechPolicy` (picked by ``policy_for``): how the policy family samples, scores and
  decodes (Whisper: decoder prefix as prompt, generation from encoder states, decoder log-probs).

TRL 1.16's private methods are mapped onto them in `rlnf.trainers.trl_speech.TRLSpeechTrainerMixin` (shared
with ``ASRRLOOTrainer``; the list, and the checks that TRL still has them, in `rlnf.trainers.trl_compat`). This
file keeps GRPO's config, its ``_generate_single_turn`` signature and its token count (skipped clips' tokens
leave ``num_items_in_batch``).

Work that depends only on the clip is done once per clip, never once per sample: that is the project's main
performance idea. With G samples per clip, Whisper's encoder and cross-attention key/value projections
(together most of its compute on 30 s windows) do 1/G of the work of TRL's text path.
"""

from __future__ import annotations

from typing import Any

from trl import GRPOTrainer

from ..policies.base import ClipBatch
from .grpo_config import ASRGRPOConfig
from .speech import (
    ROW_ID_COLUMN,
    RewardFunctionError,
    UndecodableAudioError,
)
from .trl_compat import trl_grpo_module
from .trl_speech import TRLSpeechTrainerMixin


class ASRGRPOTrainer(TRLSpeechTrainerMixin, GRPOTrainer):
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
    _trl_module = trl_grpo_module
    _config_class = ASRGRPOConfig
    _algorithm = "GRPO"
    _trainer_name = "ASRGRPOTrainer"

    def _check_generation(self, args: Any) -> None:
        """Generation is transformers-only here."""
        if args.use_vllm or args.use_transformers_continuous_batching:
            raise NotImplementedError(
                "ASRGRPOTrainer generates with transformers only (vLLM/continuous batching have no speech path here)"
            )

    # ---- TRL overrides that differ from RLOO's (the shared ones: `TRLSpeechTrainerMixin`) -------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        if self.args.skip_undecodable_audio:  # same branch on every rank: the gather below is collective
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
        return self._sample_current_batch(), None


__all__ = ["ASRGRPOTrainer", "ClipBatch", "ROW_ID_COLUMN", "RewardFunctionError", "UndecodableAudioError"]
