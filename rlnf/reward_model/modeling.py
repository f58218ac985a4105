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
    """Audio side: ``pooled`` [B, C] (masked mean), ``states`` [B, T, C] per frame, ``mask`` [B, T]; with the
    alignment fusion also ``frames`` [B, ceil(T/2), 3D + V] (its per-clip frame context, keys, values and CTC
    log-probs, computed once per clip)."""

    frames: torch.Tensor | None = None


@dataclass
class RewardTextEncoding(_Encoding):
    """Text side: ``pooled`` [B, 2H] (masked mean of BiLSTM outputs), ``states`` [B, L, 2H], ``mask`` [B, L],
    ``ids`` [B, L] (the token ids, for the alignment fusion's CTC)."""

    ids: torch.Tensor | None = None


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
            text_dim,
            config.num_attention_heads,
            kdim=config.audio_conv_channels,
            vdim=config.audio_conv_channels,
            batch_first=True,
        )
        self.norm = nn.LayerNorm(text_dim)

    def forward(self, audio: RewardAudioEncoding, text: RewardTextEncoding) -> torch.Tensor:
        attended, _ = self.attention(
            text.states, audio.states, audio.states, key_padding_mask=~audio.mask.bool(), need_weights=False
        )
        attended = self.norm(attended)
        match = attended * text.states
        return torch.cat([masked_mean(attended, text.mask), masked_mean(match, text.mask)], dim=-1)


def _relative_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position of each step in [0, 1] of its own sequence's true length (padding-free, so batch-invariant)."""
    steps = torch.arange(mask.shape[1], device=mask.device, dtype=torch.float32)
    lengths = mask.sum(1, keepdim=True).to(torch.float32)
    return (steps.unsqueeze(0) / (lengths - 1).clamp_min(1.0)).clamp(max=1.0)


class AlignmentFusion(nn.Module):
    """Which words are heard where: a CTC alignment and a soft attention alignment of tokens and frames.

    Why: a score of 1 - CER needs to know which words match which sounds; pooled vectors (late fusion) cannot
    tell. Audio frames get context from a few dilated convolutions (padding zeroed before each, as in the
    encoder), then two readings of the alignment:

    - **CTC**: a per-frame distribution over the text vocabulary (blank = the pad id). The transcript's CTC
      negative log-likelihood (every monotonic alignment of its tokens to the frames), per token and per
      frame, against the best path's, says how well the audio explains exactly this text.
      `RewardModel.reward_loss` trains it on transcripts known to be right (label 1: the references).
    - **attention**: one score matrix from content plus a relative-position term (``cos(pi k (p_token -
      p_frame))``, k = 1..F, so heads can favour the diagonal), normalised over frames (what each token
      sounds like) and over tokens (which token explains each frame: deletions, truncation). Per-token match
      features (projections, their product, peak attention, the attended position's offset from the
      diagonal) and per-frame ones (product with the text it attracts, peak weight, coverage) go through small
      MLPs and are pooled by masked mean and max.

    Log lengths and their ratio are appended. Every reduction is masked, so a pair scores the same alone or
    in any batch; the per-clip part (`audio_frames`) runs once per clip, not once per transcript.
    """

    def __init__(self, config: RewardConfig) -> None:
        super().__init__()
        dim, heads = config.alignment_dim, config.num_attention_heads
        self.heads, self.head_dim = heads, dim // heads
        self.frequencies = config.alignment_position_features
        self.blank = int(config.pad_token_id)
        self.audio_in = nn.Linear(config.audio_conv_channels, dim)
        self.context = nn.ModuleList(
            nn.Conv1d(dim, dim, 3, padding=2**i, dilation=2**i) for i in range(config.alignment_context_layers)
        )
        self.ctc_head = nn.Linear(dim, config.vocab_size)
        self.text_in = nn.Linear(2 * config.lstm_hidden, dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.text_value = nn.Linear(dim, dim)
        self.audio_value = nn.Linear(dim, dim)
        # One weight per (head, frequency): how strongly each head prefers tokens and frames at the same place.
        self.position_weight = nn.Parameter(torch.zeros(heads, 2 * self.frequencies))
        self.token_mlp = nn.Sequential(nn.Linear(3 * dim + 3 * heads, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        # Per frame (many more frames than tokens) one cheap layer on what the text puts there.
        self.frame_mlp = nn.Sequential(nn.Linear(dim + 2 * heads, dim // 2), nn.ReLU())
        self.output_dim = 2 * dim + dim // 2 + 3 + 4
        self.norm = nn.LayerNorm(self.output_dim)

    @staticmethod
    def frame_mask(mask: torch.Tensor) -> torch.Tensor:
        """The mask of the fusion's frames: pairs of encoder frames (32 ms each at the defaults)."""
        return mask[:, ::2]

    def audio_frames(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-clip part: frame context, keys, values and CTC log-probs, [B, ceil(T/2), 3D + V].

        Pairs of encoder frames are averaged first (a clip's last, unpaired frame stands alone): half the
        frames for everything per transcript, still several frames per letter."""
        frames = self.audio_in(states) * mask.unsqueeze(-1).to(states.dtype)  # [B, T, D]
        weights = mask.to(states.dtype)
        if frames.shape[1] % 2:
            frames, weights = nn.functional.pad(frames, (0, 0, 0, 1)), nn.functional.pad(weights, (0, 1))
        pairs = weights.view(weights.shape[0], -1, 2).sum(-1, keepdim=True)
        frames = frames.view(frames.shape[0], -1, 2, frames.shape[-1]).sum(2) / pairs.clamp_min(1.0)
        mask = self.frame_mask(mask)
        weights = mask.unsqueeze(1).to(states.dtype)
        frames = frames.transpose(1, 2)  # [B, D, T/2]
        for conv in self.context:
            frames = frames + torch.relu(conv(frames * weights))
        frames = (frames * weights).transpose(1, 2)
        log_probs = self.ctc_head(frames).float().log_softmax(-1).to(frames.dtype)
        return torch.cat([frames, self.key(frames), self.audio_value(frames), log_probs], dim=-1)

    def _prepared(self, audio: RewardAudioEncoding) -> tuple[torch.Tensor, ...]:
        prepared = audio.frames if audio.frames is not None else self.audio_frames(audio.states, audio.mask)
        dim = self.heads * self.head_dim
        return (
            prepared[..., :dim],
            prepared[..., dim : 2 * dim],
            prepared[..., 2 * dim : 3 * dim],
            prepared[..., 3 * dim :],
        )

    def ctc_nll(self, audio: RewardAudioEncoding, text: RewardTextEncoding) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC negative log-likelihood [B] of each transcript (its tokens without the final ``</s>``) and the
        token counts; a transcript too long for its clip gets nll 0 and count -1 (no alignment exists)."""
        log_probs = self._prepared(audio)[3]
        targets = text.ids.masked_fill(~text.mask.bool(), self.blank)
        target_lengths = (text.mask.sum(1) - 1).clamp_min(0)
        frame_lengths = self.frame_mask(audio.mask).sum(1)
        nll = nn.functional.ctc_loss(
            log_probs.float().transpose(0, 1), targets, frame_lengths, target_lengths, blank=self.blank,
            reduction="none", zero_infinity=True,
        )  # fmt: skip
        impossible = (nll == 0) & (target_lengths > 0)
        return nll, torch.where(impossible, -1, target_lengths)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)  # [B, H, N, d]

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)

    def _position_features(self, positions: torch.Tensor) -> torch.Tensor:
        angles = torch.pi * positions.unsqueeze(-1) * torch.arange(1, self.frequencies + 1, device=positions.device)
        return torch.cat([angles.cos(), angles.sin()], dim=-1)  # [B, N, 2F]

    def _ctc_features(self, audio: RewardAudioEncoding, text: RewardTextEncoding) -> torch.Tensor:
        nll, counts = self.ctc_nll(audio, text)
        mask = self.frame_mask(audio.mask)
        n_frames = mask.sum(1).to(nll.dtype)
        best = -(self._prepared(audio)[3].float().amax(-1) * mask).sum(1)  # the best path's nll
        possible = counts >= 0
        per_token = torch.where(possible, nll / (counts.clamp_min(0) + 1), torch.full_like(nll, 20.0))
        excess = torch.where(possible, (nll - best) / n_frames, torch.full_like(nll, 5.0))
        return torch.stack([per_token, nll / n_frames, best / n_frames, excess], dim=-1)

    def forward(self, audio: RewardAudioEncoding, text: RewardTextEncoding) -> torch.Tensor:
        audio_mask = self.frame_mask(audio.mask)
        frame_mask, token_mask = audio_mask.bool(), text.mask.bool()
        frames, keys, values, _ = self._prepared(audio)
        tokens = self.text_in(text.states)  # [B, L, D]
        token_pos, frame_pos = _relative_positions(text.mask), _relative_positions(audio_mask)
        content = self._split(self.query(tokens)) @ self._split(keys).transpose(-1, -2)
        pq, pk = self._position_features(token_pos), self._position_features(frame_pos)  # [B, L|T, 2F]
        position = torch.einsum("blf,hf,btf->bhlt", pq, self.position_weight, pk)
        scores = content / self.head_dim**0.5 + position  # [B, H, L, T]
        low = torch.finfo(scores.dtype).min
        to_frames = scores.masked_fill(~frame_mask[:, None, None, :], low).softmax(-1)
        to_tokens = scores.masked_fill(~token_mask[:, None, :, None], low).softmax(-2)
        heard = self._merge(to_frames @ self._split(values))  # [B, L, D]
        said = self._merge(to_tokens.transpose(-1, -2) @ self._split(self.text_value(tokens)))  # [B, T, D]
        offset = (to_frames * frame_pos[:, None, None, :]).sum(-1) - token_pos[:, None, :]  # [B, H, L]
        token_stats = torch.cat([to_frames.amax(-1), offset, offset.abs()], dim=1).transpose(1, 2)
        coverage = (to_frames * text.mask[:, None, :, None].to(scores.dtype)).sum(2)  # [B, H, T]
        frame_stats = torch.cat([to_tokens.amax(-2), torch.log1p(coverage)], dim=1).transpose(1, 2)
        per_token = self.token_mlp(torch.cat([tokens, heard, tokens * heard, token_stats], dim=-1))
        per_frame = self.frame_mlp(torch.cat([frames * said, frame_stats], dim=-1))
        n_tokens, n_frames = text.mask.sum(1).to(scores.dtype), audio_mask.sum(1).to(scores.dtype)
        lengths = torch.stack([n_tokens.log(), n_frames.log(), (n_tokens / n_frames).log()], dim=-1)
        return self.norm(torch.cat([
            masked_mean(per_token, text.mask), per_token.masked_fill(~token_mask[..., None], 0.0).amax(1),
            masked_mean(per_frame, audio_mask), lengths, self._ctc_features(audio, text).to(scores.dtype),
        ], dim=-1))  # fmt: skip


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
            config.embed_dim,
            config.lstm_hidden,
            num_layers=config.lstm_layers,
            batch_first=True,
            bidirectional=True,
        )
        text_dim = 2 * config.lstm_hidden
        head_in = config.audio_conv_channels + text_dim
        if config.fusion_type == "cross_attention":
            self.fusion = CrossAttentionFusion(config)
            head_in += 2 * text_dim
        elif config.fusion_type == "alignment":
            self.fusion = AlignmentFusion(config)
            head_in += self.fusion.output_dim
        self.head = nn.Sequential(
            nn.Linear(head_in, config.head_hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, config.head_hidden),
            nn.ReLU(),
            nn.Linear(config.head_hidden, 1),
            nn.Sigmoid(),
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
        frames = self.fusion.audio_frames(states, mask) if self.config.fusion_type == "alignment" else None
        return RewardAudioEncoding(pooled=masked_mean(states, mask), states=states, mask=mask, frames=frames)

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
        return RewardTextEncoding(pooled=masked_mean(states, mask), states=states, mask=mask, ids=text)

    def score(self, audio: RewardAudioEncoding, text: RewardTextEncoding) -> torch.Tensor:
        """Scores [B] in [0, 1] for row-aligned audio and text encodings."""
        features = [audio.pooled, text.pooled]
        if self.config.fusion_type != "late":
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
        audio_encoding = self.encode_audio(audio, audio_attention_mask)
        text_encoding = self.encode_text(text, text_attention_mask)
        scores = self.score(audio_encoding, text_encoding)
        loss = None if labels is None else self.reward_loss(scores, labels, audio_encoding, text_encoding)
        return SequenceClassifierOutput(loss=loss, logits=scores)

    def reward_loss(
        self, scores: torch.Tensor, labels: torch.Tensor, audio: RewardAudioEncoding, text: RewardTextEncoding
    ) -> torch.Tensor:
        """Batch-mean MSE to the labels; with the alignment fusion plus ``ctc_loss_weight`` x the mean CTC nll
        per token of the rows labelled 1 (transcripts known to be exact teach the frames what is said)."""
        labels = labels.to(scores.dtype).view_as(scores)
        loss = nn.functional.mse_loss(scores, labels)
        weight = float(getattr(self.config, "ctc_loss_weight", 0.0))
        if self.config.fusion_type == "alignment" and weight > 0:
            exact = torch.nonzero(labels >= 1.0 - 1e-6).squeeze(-1)
            if exact.numel():
                nll, counts = self.fusion.ctc_nll(audio.select(exact), text.select(exact))
                loss = loss + weight * (nll / counts.clamp_min(1)).mean().to(loss.dtype)
        return loss
