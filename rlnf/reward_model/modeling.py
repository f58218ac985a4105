"""`RewardModel`: scores how well a transcript matches a clip, in [0, 1].

The parameter names are the original package's, so the published `model.safetensors` loads with no missing
or unexpected keys. Unlike the original, padded frames never reach the conv/BatchNorm stack, so a pair scores
the same alone or in any batch. The pieces are public (`encode_audio`, `encode_text`, `score`) so a caller
can encode a clip once and score many transcripts against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput

from .configuration import RewardConfig


@dataclass
class _Encoding(ModelOutput):
    pooled: torch.Tensor | None = None
    states: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> _Encoding:
        """Rows ``index`` of every tensor: repeat one clip's encoding for each transcript scored against it."""
        return type(self)(**{key: value.index_select(0, index) for key, value in self.items()})


@dataclass
class RewardAudioEncoding(_Encoding):
    """Audio side: ``pooled`` [B, C] (masked mean), ``states`` [B, T, C] per frame, ``mask`` [B, T]."""


@dataclass
class RewardTextEncoding(_Encoding):
    """Text side: ``pooled`` [B, 2H] (masked mean of BiLSTM outputs), ``states`` [B, L, 2H], ``mask`` [B, L]."""


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``states`` [B, T, D] where ``mask`` [B, T] is 1."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics come from real frames only (same parameters and buffers)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or mask is None:
            return super().forward(x)
        weights = mask.to(x.dtype).unsqueeze(1)  # [B, 1, T]
        count = weights.sum().clamp_min(2.0)
        mean = (x * weights).sum((0, 2)) / count
        var = (((x - mean[None, :, None]) ** 2) * weights).sum((0, 2)) / count
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1), momentum)
        normed = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + self.eps)
        return normed * self.weight[None, :, None] + self.bias[None, :, None]


class CrossAttentionFusion(nn.Module):
    """Text tokens attend over audio frames: per-word evidence that a late fusion of pooled vectors lacks."""

    def __init__(self, config: RewardConfig) -> None:
        super().__init__()
        text_dim = 2 * config.lstm_hidden
        self.attention = nn.MultiheadAttention(
            text_dim, config.num_attention_heads, kdim=config.audio_conv_channels,
            vdim=config.audio_conv_channels, batch_first=True,
        )
        self.norm = nn.LayerNorm(text_dim)

    def forward(self, audio: RewardAudioEncoding, text: RewardTextEncoding) -> torch.Tensor:
        attended, _ = self.attention(
            text.states, audio.states, audio.states, key_padding_mask=~audio.mask.bool(), need_weights=False
        )
        attended = self.norm(attended)
        match = attended * text.states
        return torch.cat([masked_mean(attended, text.mask), masked_mean(match, text.mask)], dim=-1)


class RewardPreTrainedModel(PreTrainedModel):
    config_class = RewardConfig
    base_model_prefix = "reward_model"
    main_input_name = "audio"
    _no_split_modules: list[str] = []

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.kaiming_uniform_(module.weight, a=5**0.5)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=1.0)


class RewardModel(RewardPreTrainedModel):
    """Audio encoder (Conv1d+BN+ReLU stack) and text encoder (embedding + BiLSTM) fused by an MLP + sigmoid."""

    # forward() takes **kwargs but computes its own mean loss: Trainer must still scale it for accumulation.
    accepts_loss_kwargs = False

    def __init__(self, config: RewardConfig) -> None:
        super().__init__(config)
        layers: list[nn.Module] = []
        channels = config.n_mel
        for _ in range(config.audio_conv_layers):
            layers += [
                nn.Conv1d(channels, config.audio_conv_channels, config.kernel_size, config.stride, config.padding),
                MaskedBatchNorm1d(config.audio_conv_channels),
                nn.ReLU(),
            ]
            channels = config.audio_conv_channels
        self.audio_encoder = nn.Sequential(*layers)
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=config.pad_token_id)
        self.lstm = nn.LSTM(
            config.embed_dim, config.lstm_hidden, num_layers=config.lstm_layers, batch_first=True,
            bidirectional=True,
        )
        text_dim = 2 * config.lstm_hidden
        head_in = config.audio_conv_channels + text_dim
        if config.fusion_type == "cross_attention":
            self.fusion = CrossAttentionFusion(config)
            head_in += 2 * text_dim
        self.head = nn.Sequential(
            nn.Linear(head_in, config.head_hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, config.head_hidden), nn.ReLU(),
            nn.Linear(config.head_hidden, 1), nn.Sigmoid(),
        )
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any) -> Any:
        """Load from ``"demo"`` (the shipped demo reward model), a local folder or a hub id, strictly.

        Unlike plain transformers, a checkpoint that does not fit its config is an error
        (`rlnf.reward_model.checkpoint.CheckpointError` naming the tensors), never a model with random
        weights: missing, unexpected and wrongly shaped tensors all fail. ``strict=False`` restores transformers'
        behaviour. Only safetensors weights load: a folder with only ``pytorch_model.bin`` is refused (unpickling
        can run code), with the one-line conversion in the message. A missing local folder, or a hub id while
        offline and not cached, fails at once with what to do.
        """
        from .checkpoint import check_loading_info, resolve_checkpoint

        strict = kwargs.pop("strict", True)
        want_info = kwargs.pop("output_loading_info", False)
        allow_mismatched = kwargs.pop("ignore_mismatched_sizes", False)
        source = resolve_checkpoint(pretrained_model_name_or_path, "model")
        kwargs.setdefault("use_safetensors", True)
        model, info = super().from_pretrained(
            source, *model_args, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
        if strict:
            check_loading_info(info, os.fspath(pretrained_model_name_or_path), allow_mismatched=allow_mismatched)
        return (model, info) if want_info else model

    def encode_audio(self, audio: torch.Tensor, audio_attention_mask: torch.Tensor) -> RewardAudioEncoding:
        """Log-mel features [B, n_mel, T] -> per-frame states and their masked mean.

        Padded frames are zeroed before every convolution, which is exactly the conv's own zero padding of an
        unpadded clip: a clip's encoding does not depend on how long its batch-mates are.
        """
        if audio.dim() != 3 or audio.shape[1] != self.config.n_mel:
            raise ValueError(f"audio must be [batch, {self.config.n_mel}, frames], got {tuple(audio.shape)}")
        mask = audio_attention_mask.to(audio.device)
        frame_weights = mask.to(audio.dtype).unsqueeze(1)
        hidden = audio
        for layer in self.audio_encoder:
            if isinstance(layer, nn.Conv1d):
                hidden = layer(hidden * frame_weights)
            elif isinstance(layer, MaskedBatchNorm1d):
                hidden = layer(hidden, mask)
            else:
                hidden = layer(hidden)
        states = hidden.transpose(1, 2)
        return RewardAudioEncoding(pooled=masked_mean(states, mask), states=states, mask=mask)

    def encode_text(self, text: torch.Tensor, text_attention_mask: torch.Tensor) -> RewardTextEncoding:
        """Token ids [B, L] -> BiLSTM outputs (packed, so padding never enters) and their masked mean."""
        if text.dim() != 2:
            raise ValueError(f"text must be [batch, tokens], got {tuple(text.shape)}")
        if text.numel() and int(text.max()) >= self.config.vocab_size:
            raise ValueError(
                f"text ids go up to {int(text.max())} but the embedding has {self.config.vocab_size} rows: "
                "the tokenizer does not match this model"
            )
        mask = text_attention_mask.to(text.device)
        lengths = mask.sum(1)
        if bool((lengths == 0).any()):
            raise ValueError("every text needs at least one token (the tokenizer appends </s>)")
        packed = pack_padded_sequence(self.embedding(text), lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        states, _ = pad_packed_sequence(output, batch_first=True, total_length=text.shape[1])
        return RewardTextEncoding(pooled=masked_mean(states, mask), states=states, mask=mask)

    def score(self, audio: RewardAudioEncoding, text: RewardTextEncoding) -> torch.Tensor:
        """Scores [B] in [0, 1] for row-aligned audio and text encodings."""
        features = [audio.pooled, text.pooled]
        if self.config.fusion_type == "cross_attention":
            features.append(self.fusion(audio, text))
        return self.head(torch.cat(features, dim=-1)).squeeze(-1)

    def forward(
        self,
        audio: torch.Tensor,
        audio_attention_mask: torch.Tensor,
        text: torch.Tensor,
        text_attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        if audio.shape[0] != text.shape[0]:
            raise ValueError(f"got {audio.shape[0]} audios but {text.shape[0]} texts")
        scores = self.score(self.encode_audio(audio, audio_attention_mask), self.encode_text(text, text_attention_mask))
        loss = None
        if labels is not None:
            loss = nn.functional.mse_loss(scores, labels.to(scores.dtype).view_as(scores))
        return SequenceClassifierOutput(loss=loss, logits=scores)
