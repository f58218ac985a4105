"""``SpeechConfigMixin``: the fields every rlnf speech trainer config adds to its TRL config (GRPO, RLOO, PPO).

``class ASRGRPOConfig(SpeechConfigMixin, GRPOConfig)``: the mixin's fields come after TRL's in the CLI/YAML
schema, each with ``metadata["help"]`` for ``TrlParser``. Call ``self._check_speech_fields()`` at the start of
``__post_init__`` (CLI strings "None" become None; bad values fail here, not at step 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .wer_guard import configure_wer_watch

_NULLABLE = ("reference_column", "eval_reference_column", "language", "task", "eval_normalizer", "wer_watch_split")


@dataclass
class SpeechConfigMixin:
    r"""Speech fields shared by `ASRGRPOConfig` and the other speech trainer configs.

    Parameters:
        audio_column (`str`, defaults to `"audio"`): dataset column with the clip.
        reference_column (`str` or `None`, defaults to `"text"`): training split's reference transcript column
            (None: reference-free training; the training split's transcripts are never read).
        eval_reference_column (`str` or `None`, defaults to `"text"`): evaluation split's reference column for
            the greedy WER/CER (None: no WER/CER).
        sampling_rate (`int`, defaults to `16000`): rate the policy's feature extractor works at.
        language / task / predict_timestamps: the decoder prefix (no language token by default).
        pad_features_to (`str`, defaults to `"model"`): feature window, see the field's help.
        freeze_encoder (`bool`, defaults to `False`): train the decoder (head) only.
        freeze_feature_encoder (`bool`, defaults to `True`): CTC policies: keep the conv feature encoder frozen.
        skip_undecodable_audio (`bool`, defaults to `False`): skip clips that fail to decode instead of raising.
        eval_normalizer / eval_max_new_tokens / eval_sampled_rewards: greedy WER/CER evaluation.
    """

    # ---- data ------------------------------------------------------------------------------------
    audio_column: str = field(
        default="audio",
        metadata={
            "help": "Dataset column holding the audio: a path, bytes, an array, a {'array', 'sampling_rate'} "
            "or {'path'/'bytes'} dict, or a datasets AudioDecoder (anything rlnf.audio.load_audio reads)."
        },
    )
    reference_column: str | None = field(
        default="text",
        metadata={
            "help": "Training split's column with the reference transcript (for reference-based rewards such "
            "as wer/cer). None: reference-free training on unlabelled audio; a column named "
            "eval_reference_column in the training split is then dropped, never read."
        },
    )
    eval_reference_column: str | None = field(
        default="text",
        metadata={
            "help": "Evaluation split's column with the reference transcript, for the greedy eval WER/CER "
            "(independent of reference_column, so reference-free runs still report WER). None: no WER/CER."
        },
    )
    sampling_rate: int = field(
        default=16000,
        metadata={
            "help": "Sampling rate of the policy's feature extractor. Every clip is resampled to it; bare "
            "arrays without a rate are taken to be at this rate."
        },
    )
    skip_undecodable_audio: bool = field(
        default=False,
        metadata={
            "help": "If True, a clip that cannot be decoded is skipped with a warning (it is not sampled, its "
            "completions get no reward and no loss); if False (default), training stops with an error naming "
            "the row."
        },
    )

    # ---- decoder prefix --------------------------------------------------------------------------
    language: str | None = field(
        default=None,
        metadata={
            "help": "Language token of the decoder prefix: a code ('fr'), a name ('french') or a literal "
            "token ('<|bm|>'). None (default) puts no language token: Whisper has no Bambara token."
        },
    )
    task: str | None = field(
        default="transcribe",
        metadata={"help": "Task token of the decoder prefix: 'transcribe', 'translate' or None (no task token)."},
    )
    predict_timestamps: bool = field(
        default=False,
        metadata={
            "help": "If False (default), the prefix ends with <|notimestamps|> and timestamp tokens are never sampled."
        },
    )

    # ---- features and encoder --------------------------------------------------------------------
    pad_features_to: str = field(
        default="model",
        metadata={
            "help": "Feature window. 'model' (default): what the encoder expects (Whisper: exactly 2 x "
            "max_source_positions frames, i.e. 30 s for pretrained checkpoints and less for policies built "
            "for short inputs). 'longest': pad to the longest clip (encoders without a fixed window). A "
            "duration such as '30s' fixes the window; it must match a Whisper encoder."
        },
    )
    freeze_encoder: bool = field(
        default=False,
        metadata={
            "help": "Freeze the audio encoder and train the decoder only (as GRPO-for-ASR papers did). The "
            "encoder then runs once per clip per generation batch, shared by every pass."
        },
    )
    freeze_feature_encoder: bool = field(
        default=True,
        metadata={
            "help": "CTC policies (wav2vec2, HuBERT, WavLM, MMS, Parakeet): keep the convolutional feature encoder "
            "(front end) frozen, as CTC fine-tuning does. For CTC policies freeze_encoder=True trains the CTC head "
            "(and MMS attention adapters) only. Whisper ignores this field."
        },
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
    disable_dropout: bool = field(
        default=True,
        metadata={
            "help": "Dropout off in every pass (TRL's GRPO/RLOO default is False). RL compares log-probs of the "
            "same weights across passes: with dropout (or BatchNorm batch statistics, which rlnf always "
            "replaces with the running ones) the ratio is not 1 and the KL not 0 at unchanged weights. "
            "False is refused."
        },
    )
    eval_sampled_rewards: bool = field(
        default=True,
        metadata={
            "help": "Also run TRL's sampled evaluation (rewards and loss over sampled completions) next to "
            "the greedy WER/CER. Set False to report only eval_wer and eval_cer."
        },
    )

    # ---- watching held-out WER (a guard against reward hacking: rlnf.trainers.wer_guard) ------------
    wer_watch_split: str | None = field(
        default=None,
        metadata={
            "help": "A labelled split of the dataset (never trained on) whose greedy WER is evaluated every "
            "eval_steps during training and logged beside the reward (eval_watch_wer). Use it in reference-free "
            "runs: a learned reward can rise while the transcripts get worse."
        },
    )
    wer_watch_clips: int = field(
        default=0,
        metadata={
            "help": "Or carve this many clips (by clip) out of the training split as the watch set: they are "
            "never trained on, and their transcripts are read for the watch only. 0: no carving."
        },
    )
    stop_when_wer_rises: int = field(
        default=0,
        metadata={
            "help": "K > 0: stop training when the watch WER rose K evaluations in a row while the reward rose, "
            "and keep (and load at the end) the checkpoint with the lowest watch WER. Needs a watch set. 0: off."
        },
    )

    # ---- audio without transcripts, in one flag (rlnf.recipe_support.apply_reference_free) -----------
    reference_free: bool = field(
        default=False,
        metadata={
            "help": "Train on audio without transcripts, from the learned reward: sets reference_column None. The "
            "recipes also drop wer/cer from reward_funcs (adding repetition_penalty and empty_penalty), and "
            "measure held-out WER only where the held-out split has transcripts (saying so at start otherwise)."
        },
    )

    def _check_speech_fields(self) -> None:
        for name in _NULLABLE:  # the CLI gives strings
            value = getattr(self, name)
            if isinstance(value, str) and value.lower() in ("none", "null", ""):
                setattr(self, name, None)
        if self.reference_free:
            self.reference_column = None
        if self.pad_features_to not in ("model", "longest") and not str(self.pad_features_to).endswith("s"):
            raise ValueError(
                f"pad_features_to must be 'model', 'longest' or a duration like '30s', got {self.pad_features_to!r}"
            )
        if self.task not in ("transcribe", "translate", None):
            raise ValueError(f"task must be 'transcribe', 'translate' or None, got {self.task!r}")
        if not self.disable_dropout:
            raise ValueError(
                "disable_dropout=False is not supported by rlnf's speech trainers: dropout makes the sampling, "
                "old-policy, reference and loss passes different functions of the same weights (ratio != 1, "
                "KL != 0 at unchanged weights). Leave disable_dropout at True."
            )
        if not isinstance(self.sampling_rate, int) or self.sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be a positive int, got {self.sampling_rate!r}")
        configure_wer_watch(self)


__all__ = ["SpeechConfigMixin"]
