"""``ASRRLOOConfig``: TRL's ``RLOOConfig`` plus the speech fields, with the same speech defaults as GRPO.

Every field carries ``metadata["help"]`` so ``TrlParser`` turns the config into a CLI and YAML schema. Defaults
that differ from TRL (see ``grpo_config.py`` for the reasons): ``max_completion_length=128``,
``num_generations=8`` (TRL: 2; the same completions per clip as the GRPO demo, so the two compare at equal cost),
``bf16=None`` (on only where CUDA supports it), ``gradient_checkpointing=False``. ``beta`` keeps TRL's 0.05: in
RLOO the KL is a sequence-level penalty folded into the reward (``reward - beta * sum_t log pi/pi_ref``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import RLOOConfig

from .grpo_config import _bf16_available
from .speech_config import SpeechConfigMixin


@dataclass
class ASRRLOOConfig(SpeechConfigMixin, RLOOConfig):
    r"""Configuration for [`ASRRLOOTrainer`]: REINFORCE leave-one-out for speech-to-text policies.

    The speech fields come from `SpeechConfigMixin` (shared with `ASRGRPOConfig` and `ASRPPOConfig`).
    """

    max_completion_length: int | None = field(
        default=128,
        metadata={
            "help": "Maximum number of sampled tokens per transcript (after the decoder prefix). Prefix + "
            "this must fit in the decoder (Whisper: max_target_positions = 448)."
        },
    )
    num_generations: int | None = field(
        default=8,
        metadata={
            "help": "Transcripts sampled per clip (at least 2: each one's baseline is the mean reward of the "
            "others). per_device_train_batch_size x processes x steps_per_generation must be a multiple of it."
        },
    )
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision. None (default): on only where a CUDA device supports bf16."},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass to save memory (TRL's default is True)."},
    )

    def __post_init__(self) -> None:
        self._check_speech_fields()
        if self.bf16 is None:
            self.bf16 = _bf16_available() and not self.fp16 and not self.use_cpu
        super().__post_init__()


__all__ = ["ASRRLOOConfig"]
