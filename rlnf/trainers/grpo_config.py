"""``ASRGRPOConfig``: TRL's ``GRPOConfig`` plus the speech fields, with defaults for speech recognition.

Every field carries ``metadata["help"]`` so ``TrlParser`` turns the config into a CLI and YAML schema.
Defaults that differ from TRL, and why:

* ``max_completion_length=128``: transcripts are short (Whisper's decoder holds 448 positions in all).
* ``beta=0.04``: GRPO for ASR in the literature kept a KL term at 0.04 (safe); a KL anchor also limits reward
  hacking of a learned reward. ``beta=0`` skips the reference model.
* ``bf16=None`` -> on only where a CUDA device supports it. TRL turns bf16 on everywhere; on CPU it is slower
  for small models and its rounding blurs the log-probability ratios of a short test run.
* ``gradient_checkpointing=False``: TRL turns it on; speech policies with short transcripts fit without it and
  it costs an extra forward of encoder and decoder per step. Turn it on for large checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from .speech_config import SpeechConfigMixin


@dataclass
class ASRGRPOConfig(SpeechConfigMixin, GRPOConfig):
    r"""Configuration for [`ASRGRPOTrainer`]: GRPO for speech-to-text policies (Whisper first).

    The speech fields (``audio_column``, ``reference_column``, ``eval_reference_column``, ``sampling_rate``, the
    decoder prefix, ``pad_features_to``, ``freeze_encoder``, ``skip_undecodable_audio``, evaluation) come from
    `SpeechConfigMixin`, shared with the other speech trainers; the defaults below differ from TRL's.
    """

    # ---- TRL defaults changed for speech recognition ---------------------------------------------
    max_completion_length: int | None = field(
        default=128,
        metadata={
            "help": "Maximum number of sampled tokens per transcript (after the decoder prefix). Prefix + "
            "this must fit in the decoder (Whisper: max_target_positions = 448)."
        },
    )
    temperature: float = field(
        default=1.0,
        metadata={
            "help": "Sampling temperature. Whisper samples greedily unless a temperature is set, so it is "
            "always passed to generation."
        },
    )
    beta: float = field(
        default=0.04,
        metadata={
            "help": "KL coefficient to the reference policy (0.04 was safe for ASR; 0 skips the reference model)."
        },
    )
    num_generations: int | None = field(
        default=8,
        metadata={
            "help": "Transcripts sampled per clip (G). per_device_train_batch_size x processes x "
            "steps_per_generation must be a multiple of it."
        },
    )
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 mixed precision. None (default): on only where a CUDA device supports bf16 (TRL "
            "would turn it on everywhere, CPU included)."
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={
            "help": "Recompute activations in the backward pass to save memory (TRL's default is True; off "
            "here because short transcripts rarely need it and it costs a forward pass)."
        },
    )

    def __post_init__(self) -> None:
        self._check_speech_fields()
        if self.bf16 is None:
            self.bf16 = _bf16_available() and not self.fp16 and not self.use_cpu
        try:
            super().__post_init__()
        except ValueError as error:
            if "generations" not in str(error) or "divisible" not in str(error):  # e.g. num_generations < 2
                raise
            raise ValueError(
                f"{error} Each clip is sampled num_generations={self.num_generations} times and a batch must hold "
                f"whole groups: make per_device_train_batch_size ({self.per_device_train_batch_size}) x number of "
                f"processes x steps_per_generation (or per_device_eval_batch_size x processes for evaluation) a "
                f"multiple of num_generations."
            ) from error


def _bf16_available() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
