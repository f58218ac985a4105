"""``ASRRLOOTrainer``: TRL's ``RLOOTrainer`` (REINFORCE leave-one-out) for speech-to-text policies.

Built exactly like ``ASRGRPOTrainer``: TRL keeps the algorithm (leave-one-out baselines, the sequence-level KL
penalty in the reward, the clipped sequence ratio, logging, checkpoints); the audio goes through
`rlnf.trainers.speech.SpeechTrainerMixin` and the policy family of `rlnf.policies.base.policy_for`. TRL
1.16's private RLOO methods are mapped onto them in `rlnf.trainers.trl_speech.TRLSpeechTrainerMixin` (shared
with GRPO; the list and its checks in `rlnf.trainers.trl_compat`); this file keeps RLOO's config and its
``_generate_single_turn`` signature.

When to prefer it to GRPO: RLOO's baseline is unbiased (the others' mean, no std scaling) and its ratio is one
per sequence; GRPO's token-level loss types and KL-in-the-loss give more knobs.
"""

from __future__ import annotations

from typing import Any

from trl import RLOOTrainer

from .rloo_config import ASRRLOOConfig
from .trl_compat import trl_rloo_module
from .trl_speech import TRLSpeechTrainerMixin


class ASRRLOOTrainer(TRLSpeechTrainerMixin, RLOOTrainer):
    """RLOO for speech-to-text policies: audio in, sampled transcripts out, TRL for everything else.

    Arguments as `ASRGRPOTrainer` (a policy or its path, ``reward_funcs`` as callables or registry names,
    an `ASRRLOOConfig`, datasets with ``audio_column``/``reference_column``, the policy's processor, an optional
    ``peft.LoraConfig`` without ``task_type``).
    """

    _tag_names = ["trl", "rloo", "rlnf", "asr"]
    _trl_module = trl_rloo_module
    _config_class = ASRRLOOConfig
    _algorithm = "RLOO"
    _trainer_name = "ASRRLOOTrainer"

    def _check_generation(self, args: Any) -> None:
        """Generation is transformers-only here."""
        if args.use_vllm:
            raise NotImplementedError("ASRRLOOTrainer generates with transformers only (vLLM has no speech path here)")

    # ---- TRL overrides that differ from GRPO's (the shared ones: `TRLSpeechTrainerMixin`) -------------

    def _generate_single_turn(self, prompt_ids: list, images: Any, multimodal_fields: dict) -> list[list[int]]:
        return self._sample_current_batch()


__all__ = ["ASRRLOOTrainer"]
