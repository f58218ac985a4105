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


@dataclass
class ASRGRPOConfig(GRPOConfig):
    r"""Configuration for [`ASRGRPOTrainer`]: GRPO for speech-to-text policies (Whisper first).

    Speech parameters:
        audio_column (`str`, defaults to `"audio"`): dataset column with the clip.
        reference_column (`str` or `None`, defaults to `"text"`): dataset column with the reference transcript.
        sampling_rate (`int`, defaults to `16000`): rate the policy's feature extractor works at.
        language / task / predict_timestamps: the decoder prefix (no language token by default).
        pad_features_to (`str`, defaults to `"model"`): feature window, see the field's help.
        freeze_encoder (`bool`, defaults to `False`): train the decoder only.
        skip_undecodable_audio (`bool`, defaults to `False`): skip clips that fail to decode instead of raising.
        eval_normalizer / eval_max_new_tokens / eval_sampled_rewards: greedy WER/CER evaluation.
    """

    # ---- data ------------------------------------------------------------------------------------
    audio_column: str = field(
        default="audio",
        metadata={"help": "Dataset column holding the audio: a path, bytes, an array, a {'array', 'sampling_rate'} "
                  "or {'path'/'bytes'} dict, or a datasets AudioDecoder (anything rlnf.audio.load_audio reads)."},
    )
    reference_column: str | None = field(
        default="text",
        metadata={"help": "Dataset column holding the reference transcript (for reference-based rewards and the "
                  "eval WER/CER). Set to None for reference-free training on unlabelled audio."},
    )
    sampling_rate: int = field(
        default=16000,
        metadata={"help": "Sampling rate of the policy's feature extractor. Every clip is resampled to it; bare "
                  "arrays without a rate are taken to be at this rate."},
    )
    skip_undecodable_audio: bool = field(
        default=False,
        metadata={"help": "If True, a clip that cannot be decoded is skipped with a warning (its completions get "
                  "no reward and no loss); if False (default), training stops with an error naming the row."},
    )

    # ---- decoder prefix --------------------------------------------------------------------------
    language: str | None = field(
        default=None,
        metadata={"help": "Language token of the decoder prefix: a code ('fr'), a name ('french') or a literal "
                  "token ('<|bm|>'). None (default) puts no language token: Whisper has no Bambara token."},
    )
    task: str | None = field(
        default="transcribe",
        metadata={"help": "Task token of the decoder prefix: 'transcribe', 'translate' or None (no task token)."},
    )
    predict_timestamps: bool = field(
        default=False,
        metadata={"help": "If False (default), the prefix ends with <|notimestamps|> and timestamp tokens are "
                  "never sampled."},
    )

    # ---- features and encoder --------------------------------------------------------------------
    pad_features_to: str = field(
        default="model",
        metadata={"help": "Feature window. 'model' (default): what the encoder expects (Whisper: exactly 2 x "
                  "max_source_positions frames, i.e. 30 s for pretrained checkpoints and less for policies built "
                  "for short inputs). 'longest': pad to the longest clip (encoders without a fixed window). A "
                  "duration such as '30s' fixes the window; it must match a Whisper encoder."},
    )
    freeze_encoder: bool = field(
        default=False,
        metadata={"help": "Freeze the audio encoder and train the decoder only (as GRPO-for-ASR papers did). The "
                  "encoder then runs once per clip per generation batch, shared by every pass."},
    )

    # ---- evaluation ------------------------------------------------------------------------------
    eval_normalizer: str | None = field(
        default="bambara",
        metadata={"help": "Text normalisation before the eval WER/CER: 'bambara' (default), 'basic' or 'none'."},
    )
    eval_max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Token budget of greedy eval transcripts. None: max_completion_length."},
    )
    eval_sampled_rewards: bool = field(
        default=True,
        metadata={"help": "Also run TRL's sampled evaluation (rewards and loss over num_generations_eval samples "
                  "per clip) next to the greedy WER/CER. Set False to report only eval_wer and eval_cer."},
    )

    # ---- TRL defaults changed for speech recognition ---------------------------------------------
    max_completion_length: int | None = field(
        default=128,
        metadata={"help": "Maximum number of sampled tokens per transcript (after the decoder prefix). Prefix + "
                  "this must fit in the decoder (Whisper: max_target_positions = 448)."},
    )
    temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature. Whisper samples greedily unless a temperature is set, so it is "
                  "always passed to generation."},
    )
    beta: float = field(
        default=0.04,
        metadata={"help": "KL coefficient to the reference policy (0.04 was safe for ASR; 0 skips the reference "
                  "model)."},
    )
    num_generations: int | None = field(
        default=8,
        metadata={"help": "Transcripts sampled per clip (G). per_device_train_batch_size x processes x "
                  "steps_per_generation must be a multiple of it."},
    )
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision. None (default): on only where a CUDA device supports bf16 (TRL "
                  "would turn it on everywhere, CPU included)."},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass to save memory (TRL's default is True; off "
                  "here because short transcripts rarely need it and it costs a forward pass)."},
    )

    def __post_init__(self) -> None:
        for name in ("reference_column", "language", "task", "eval_normalizer"):  # the CLI gives strings
            if isinstance(getattr(self, name), str) and getattr(self, name).lower() in ("none", "null", ""):
                setattr(self, name, None)
        if self.bf16 is None:
            self.bf16 = _bf16_available() and not self.fp16 and not self.use_cpu
        if self.pad_features_to not in ("model", "longest") and not str(self.pad_features_to).endswith("s"):
            raise ValueError(f"pad_features_to must be 'model', 'longest' or a duration like '30s', got "
                             f"{self.pad_features_to!r}")
        if self.task not in ("transcribe", "translate", None):
            raise ValueError(f"task must be 'transcribe', 'translate' or None, got {self.task!r}")
        try:
            super().__post_init__()
        except ValueError as error:
            if "generations" not in str(error):
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
