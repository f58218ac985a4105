"""Value models (critics) for PPO on speech policies.

Three shapes, chosen by ``ASRPPOConfig.value_model``:

* ``"separate"`` (`TokenValueModel`): a copy of an encoder-decoder policy's trunk (Whisper's ``model``: encoder +
  decoder, no output projection) with a scalar `ValueHead` on the decoder's hidden states: one value per
  completion token, as TRL's former PPO critic. Initialised from the policy, trained on its own.
* ``"shared"`` (`capture_decoder_hidden` + `ValueHead`): the head reads the POLICY's decoder hidden states,
  captured by a forward hook during the policy's own log-prob pass (no second forward); the value loss trains
  the shared trunk too.
* ``"audio"`` (`SequenceValueModel`): one value per clip from its masked-mean-pooled encoder states, the
  original RLNF's audio-only critic and the critic of CTC policies (which have no decoder); its advantage is
  sequence level (``reward - value``).

Alignment of token values: the hidden state at position ``i`` predicts token ``i + 1``, so the value of
completion token ``j`` (the state before it is emitted) is the head on the hidden state that scores it:
``hidden[:, -logits_to_keep - 1 : -1]``, the same positions as the log-probs. Decoder-prefix positions
therefore get no value, and padded completion positions get 0.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..compat import encoder_output_lengths
from .base import ClipBatch, peft_base, speech_encoder


class ValueHead(nn.Module):
    """Scalar value from a hidden state: ``Linear(hidden_size, 1)``, weights ~ N(0, 1/(hidden+1)), bias 0
    (TRL's former critic init), so initial values are small and the value loss starts near the returns' scale."""

    def __init__(self, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.summary.weight, std=1.0 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[..., hidden_size] -> [...]`` in float32 (values and returns are compared in full precision)."""
        return self.summary(self.dropout(hidden.to(self.summary.weight.dtype))).squeeze(-1).float()


def completion_values(
    head: ValueHead, hidden: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int
) -> torch.Tensor:
    """Values ``[rows, logits_to_keep]`` of the completion tokens from decoder hidden states ``[rows, L, D]``
    (see the module docstring for the alignment); 0 on padded completion positions."""
    if hidden.shape[1] != attention_mask.shape[1]:
        raise ValueError(f"hidden states cover {hidden.shape[1]} positions but the mask {attention_mask.shape[1]}")
    values = head(hidden[:, -logits_to_keep - 1 : -1])
    return values * attention_mask[:, -logits_to_keep:].to(values.dtype)


def _plain_copy(policy: nn.Module) -> nn.Module:
    """A copy of the policy's transformers model with any LoRA adapters merged in (the policy is untouched)."""
    clone = copy.deepcopy(policy)
    if hasattr(clone, "merge_and_unload"):
        clone = clone.merge_and_unload()
    return peft_base(clone)


def _decoder_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only (left-padded prefixes keep Whisper's learned positions)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class TokenValueModel(nn.Module):
    """Separate critic for encoder-decoder policies: the policy's trunk (copied) + `ValueHead`.

    ``forward(clips, input_ids, attention_mask, logits_to_keep)`` takes TRL's layout (prefix + completion,
    completion right-padded) and returns ``[rows, logits_to_keep]`` values; the encoder runs once per unique clip.
    """

    def __init__(self, trunk: nn.Module, dropout: float = 0.0):
        super().__init__()
        if not (hasattr(trunk, "get_encoder") and hasattr(trunk, "get_decoder")):
            raise TypeError(f"a token critic needs an encoder-decoder trunk, got {type(trunk).__name__}")
        self.trunk = trunk
        self.head = ValueHead(int(trunk.config.d_model), dropout)

    @classmethod
    def from_policy(cls, policy: nn.Module, dropout: float = 0.0) -> TokenValueModel:
        """A copy of the policy's trunk (``WhisperForConditionalGeneration.model``), adapters merged away."""
        base = _plain_copy(policy)
        trunk = getattr(base, "model", None)
        if trunk is None or not hasattr(trunk, "get_decoder"):
            raise TypeError(f"{type(base).__name__} has no encoder-decoder trunk (.model) to copy for the critic")
        trunk.requires_grad_(True)
        return cls(trunk, dropout)

    def forward(
        self, clips: ClipBatch, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int
    ) -> torch.Tensor:
        from .whisper import ClipHooks

        if clips.encoder_states is not None and not any(p.requires_grad for p in self.trunk.get_encoder().parameters()):
            states = clips.encoder_states  # a frozen encoder identical to the policy's: reuse its states
        else:
            states = self.trunk.get_encoder()(**clips.inputs).last_hidden_state  # once per unique clip
        hidden = states.index_select(0, clips.clip_of_row)
        hooks = ClipHooks(self.trunk, clips.clip_of_row, encoder=False)  # cross-attention K/V once per clip
        try:
            out = self.trunk(
                encoder_outputs=(hidden,),
                decoder_input_ids=input_ids,
                decoder_attention_mask=attention_mask,
                decoder_position_ids=_decoder_positions(attention_mask),
                use_cache=False,
            )
        finally:
            hooks.remove()
        return completion_values(self.head, out.last_hidden_state, attention_mask, logits_to_keep)


@contextmanager
def capture_decoder_hidden(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the last hidden states of ``model``'s decoder in every forward inside the block (shared-trunk
    critic: the values come from the policy's own log-prob pass)."""
    from accelerate.utils import extract_model_from_parallel

    decoder = peft_base(extract_model_from_parallel(model)).get_decoder()
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = decoder.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def pooled_states(states: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked mean over frames: ``[clips, T, D] -> [clips, D]`` (all frames when ``frame_mask`` is None)."""
    if frame_mask is None:
        return states.mean(dim=1)
    if frame_mask.shape != states.shape[:2]:
        raise ValueError(f"frame_mask {tuple(frame_mask.shape)} does not match states {tuple(states.shape[:2])}")
    weights = frame_mask.to(states.dtype).unsqueeze(-1)
    counts = weights.sum(dim=1)
    if (counts == 0).any():
        raise ValueError("a clip has no valid frame to pool")
    return (states * weights).sum(dim=1) / counts


class SequenceValueModel(nn.Module):
    """Audio-only critic: a copy of the policy's encoder, masked-mean pooling over frames, `ValueHead`.

    ``forward(clips) -> [clips]``: one value per CLIP (the G rows of a clip share it, as the audio is all it
    sees). The frame mask comes from the inputs' ``attention_mask`` through the encoder's
    `rlnf.compat.encoder_output_lengths` (wav2vec2-style CTC encoders; Parakeet's encoder returns its own mask); Whisper pads every clip to a fixed
    window without a mask, so all its frames are pooled.
    """

    def __init__(self, encoder: nn.Module, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.head = ValueHead(hidden_size, dropout)

    @classmethod
    def from_policy(
        cls, policy: nn.Module, dropout: float = 0.0, encoder_of: Callable[[nn.Module], nn.Module] = speech_encoder
    ) -> SequenceValueModel:
        """A critic on a copy of the policy's audio encoder (``encoder_of``: the family's `critic_encoder`)."""
        base = _plain_copy(policy)
        config = base.config
        hidden = getattr(config, "d_model", None) or getattr(config, "hidden_size", None)
        if hidden is None:
            encoder_config = getattr(config, "encoder_config", None)
            hidden = getattr(encoder_config, "hidden_size", None)
        if hidden is None:
            raise TypeError(f"cannot tell the encoder width of {type(base).__name__} (no d_model/hidden_size)")
        encoder = encoder_of(base)
        encoder.requires_grad_(True)
        return cls(encoder, int(hidden), dropout)

    def frame_mask(self, inputs: dict[str, torch.Tensor], output: Any) -> torch.Tensor | None:
        """Which encoder frames are real: the encoder's own output mask (Parakeet) or the input mask mapped
        through the encoder's length formula (wav2vec2-style); None (pool every frame) without an input mask."""
        frames = output.last_hidden_state.shape[1]
        returned = getattr(output, "attention_mask", None)
        if returned is not None:
            return returned[:, :frames].bool()
        mask = inputs.get("attention_mask")
        if mask is None:
            return None
        lengths = encoder_output_lengths(self.encoder, mask.long().sum(-1)).clamp(max=frames)
        return torch.arange(frames, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)

    def forward(self, clips: ClipBatch) -> torch.Tensor:
        output = self.encoder(**clips.inputs)
        return self.head(pooled_states(output.last_hidden_state, self.frame_mask(clips.inputs, output)))


VALUE_MODELS = ("separate", "shared", "audio")


def build_value_model(
    kind: str,
    policy: nn.Module,
    dropout: float = 0.0,
    encoder_of: Callable[[nn.Module], nn.Module] = speech_encoder,
) -> nn.Module:
    """The trainable value module for ``kind``: a `TokenValueModel`, a bare `ValueHead` (``"shared"``: the trunk
    is the policy's) or a `SequenceValueModel` (on ``encoder_of(policy)``, the family's `critic_encoder`)."""
    if kind == "separate":
        return TokenValueModel.from_policy(policy, dropout)
    if kind == "shared":
        base = peft_base(policy)
        return ValueHead(int(base.config.d_model), dropout)
    if kind == "audio":
        return SequenceValueModel.from_policy(policy, dropout, encoder_of)
    raise ValueError(f"value_model must be one of {VALUE_MODELS}, got {kind!r}")


__all__ = [
    "VALUE_MODELS",
    "SequenceValueModel",
    "TokenValueModel",
    "ValueHead",
    "build_value_model",
    "capture_decoder_hidden",
    "completion_values",
    "pooled_states",
]
