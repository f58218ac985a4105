"""`RewardConfig`: the single source of truth for the reward model's architecture and audio features."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

FUSION_TYPES = ("late", "cross_attention", "alignment")


class RewardConfig(PretrainedConfig):
    """Configuration of [`RewardModel`], with the published `RobotsMali/reward-model` values as defaults.

    Field names are the original package's, so its nested ``pretrained_config`` dict maps one to one. The
    original ignored saved values on load; here saved values count and ``override`` wins over them.

    Not to be confused with ``trl.RewardConfig``, TRL's *training* arguments for its text reward trainer: this
    is a *model* config (architecture, like ``WhisperConfig``), kept under the original package's name because
    users import it as ``from rlnf import RewardConfig``. rlnf's reward-model training arguments are
    ``RewardModelTrainingArguments`` (``recipes/train_reward_model.py``).

    Args:
        n_mel: mel bins of the audio features.
        vocab_size: rows of the text embedding (tokenizer ids must stay below it).
        sample_rate, n_fft, hop_length, chunk_length, padding_value, dither: log-mel feature parameters.
        embed_dim, lstm_hidden, lstm_layers: text encoder (embedding + BiLSTM).
        audio_conv_channels, audio_conv_layers, kernel_size, stride, padding: audio encoder (Conv1d+BN+ReLU).
        head_hidden, dropout: regression head.
        pad_token_id: the embedding's ``padding_idx`` (kept for weight compatibility; padding is masked anyway).
        max_audio_seconds: clips longer than this are truncated with a warning (training data had <= 30 s).
        fusion_type: "late" (published: concatenate pooled vectors), "cross_attention" (text tokens attend
            over audio frames, so the head sees which words match which sounds) or "alignment" (a soft
            alignment read per token and per frame, with a diagonal position prior: the demo reward model v2).
        num_attention_heads: heads of the cross-attention and alignment fusions.
        alignment_dim, alignment_context_layers, alignment_position_features: the "alignment" fusion (a soft
            token-frame alignment read both ways, see `AlignmentFusion`): its width, dilated context convs over
            the audio frames, and relative-position frequencies of its diagonal prior.
        ctc_loss_weight: the alignment fusion's frames also predict the transcript by CTC; in training, rows
            labelled 1 (exact transcripts) add this weight x their CTC loss to the MSE (0 switches it off).
    """

    model_type = "reward-model"

    def __init__(
        self,
        n_mel: int = 80,
        vocab_size: int = 2048,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        embed_dim: int = 128,
        lstm_hidden: int = 128,
        lstm_layers: int = 1,
        audio_conv_channels: int = 128,
        audio_conv_layers: int = 3,
        kernel_size: int = 5,
        stride: int = 1,
        padding: int = 2,
        head_hidden: int = 256,
        dropout: float = 0.3,
        pad_token_id: int = 1,
        chunk_length: int = 30,
        padding_value: float = 0.0,
        dither: float = 0.0,
        return_attention_mask: bool = True,
        max_audio_seconds: float = 30.0,
        fusion_type: str = "late",
        num_attention_heads: int = 4,
        alignment_dim: int = 128,
        alignment_context_layers: int = 3,
        alignment_position_features: int = 8,
        ctc_loss_weight: float = 1.0,
        pretrained_config: dict[str, Any] | None = None,
        override: dict[str, Any] | None = None,
        tokenizer_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        values = dict(
            n_mel=n_mel,
            vocab_size=vocab_size,
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            embed_dim=embed_dim,
            lstm_hidden=lstm_hidden,
            lstm_layers=lstm_layers,
            audio_conv_channels=audio_conv_channels,
            audio_conv_layers=audio_conv_layers,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            head_hidden=head_hidden,
            dropout=dropout,
            pad_token_id=pad_token_id,
            chunk_length=chunk_length,
            padding_value=padding_value,
            dither=dither,
            return_attention_mask=return_attention_mask,
            max_audio_seconds=max_audio_seconds,
            fusion_type=fusion_type,
            num_attention_heads=num_attention_heads,
            alignment_dim=alignment_dim,
            alignment_context_layers=alignment_context_layers,
            alignment_position_features=alignment_position_features,
            ctc_loss_weight=ctc_loss_weight,
        )
        # The original format: {"pretrained_config": {...saved...}, "override": {...}}. Saved values, then
        # override, replace the defaults; unknown keys are kept as plain attributes.
        for nested in (pretrained_config, override):
            for key, value in (nested or {}).items():
                if key in values:
                    values[key] = value
                else:
                    kwargs.setdefault(key, value)
        pad = values.pop("pad_token_id")
        for key, value in values.items():
            setattr(self, key, value)
        self.tokenizer_path = tokenizer_path
        super().__init__(pad_token_id=pad, **kwargs)
        self.validate_architecture()

    def validate_architecture(self) -> None:
        """Fail at construction, not deep in torch, when the values cannot build a model."""
        positive = (
            "n_mel",
            "vocab_size",
            "sample_rate",
            "n_fft",
            "hop_length",
            "embed_dim",
            "lstm_hidden",
            "lstm_layers",
            "audio_conv_channels",
            "audio_conv_layers",
            "kernel_size",
            "stride",
            "head_hidden",
            "num_attention_heads",
            "alignment_dim",
            "alignment_position_features",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"RewardConfig.{name} must be a positive int, got {value!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"RewardConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.fusion_type not in FUSION_TYPES:
            raise ValueError(f"RewardConfig.fusion_type must be one of {FUSION_TYPES}, got {self.fusion_type!r}")
        if self.stride != 1 or 2 * self.padding != self.kernel_size - 1:
            raise ValueError(
                "RewardConfig: the audio encoder keeps one output frame per input frame (masking relies on it): "
                f"need stride 1 and padding (kernel_size-1)/2, got stride {self.stride}, padding {self.padding}, "
                f"kernel_size {self.kernel_size}"
            )
        if self.fusion_type == "cross_attention" and (2 * self.lstm_hidden) % self.num_attention_heads:
            raise ValueError("RewardConfig: 2 * lstm_hidden must be divisible by num_attention_heads")
        if self.fusion_type == "alignment" and self.alignment_dim % self.num_attention_heads:
            raise ValueError("RewardConfig: alignment_dim must be divisible by num_attention_heads")
        if not float(self.ctc_loss_weight) >= 0.0:
            raise ValueError(f"RewardConfig.ctc_loss_weight must be >= 0, got {self.ctc_loss_weight!r}")
        layers = self.alignment_context_layers
        if not isinstance(layers, int) or isinstance(layers, bool) or layers < 0:
            raise ValueError(f"RewardConfig.alignment_context_layers must be an int >= 0, got {layers!r}")
