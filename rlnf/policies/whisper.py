"""Whisper (encoder-decoder) policy helpers: decoder prefix, suppressed tokens, feature windows, generation.

The trainer and a recipe share these so the numbers agree: the same decoder prefix (Whisper has no Bambara
token, so by default none), the same feature padding, the same suppressed tokens, and plain
``GenerationMixin.generate`` fed with precomputed encoder states (Whisper's own ``generate`` strips the
prefix from its output and re-runs the encoder for every returned sequence).

"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import GenerationConfig, GenerationMixin
from transformers.modeling_outputs import BaseModelOutput

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\s*$")


# --------------------------------------------------------------------------------------------------
# Decoder prefix and suppressed tokens
# --------------------------------------------------------------------------------------------------


def _token_id(tokenizer: Any, token: str, what: str) -> int:
    if token not in tokenizer.get_vocab():
        raise ValueError(f"the tokenizer has no {what} token {token!r}; its special tokens: {tokenizer.all_special_tokens}")
    return int(tokenizer.convert_tokens_to_ids(token))


def _language_token(language: str) -> str:
    """``"bm"``, ``"french"`` or a literal ``"<|fr|>"`` -> the token string."""
    if language.startswith("<|") and language.endswith("|>"):
        return language
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    code = TO_LANGUAGE_CODE.get(language.lower(), language.lower())
    return f"<|{code}|>"


def decoder_prefix_ids(
    tokenizer: Any, language: str | None = None, task: str | None = "transcribe", predict_timestamps: bool = False
) -> list[int]:
    """Whisper's forced decoder prefix: ``<|startoftranscript|> [<|lang|>] [<|task|>] [<|notimestamps|>]``.

    ``language=None`` (the default) leaves the language token out: Whisper has no Bambara token, and forcing a
    wrong one (e.g. ``<|fr|>``) biases the decoder. A language token that is missing from the vocabulary
    (for example ``"bm"`` on a pretrained checkpoint) is an error, not a silent ``<|endoftext|>``.
    """
    ids = [_token_id(tokenizer, "<|startoftranscript|>", "start")]
    if language is not None:
        ids.append(_token_id(tokenizer, _language_token(language), "language"))
    if task is not None:
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe', 'translate' or None, got {task!r}")
        ids.append(_token_id(tokenizer, f"<|{task}|>", "task"))
    if not predict_timestamps:
        ids.append(_token_id(tokenizer, "<|notimestamps|>", "no-timestamps"))
    return ids


def timestamp_token_ids(tokenizer: Any) -> list[int]:
    """Ids of ``<|0.00|>`` ... ``<|30.00|>`` that the vocabulary has (none for the tiny policies)."""
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in (f"<|{i * 0.02:.2f}|>" for i in range(1501)) if t in vocab]


def suppressed_tokens(model: Any, tokenizer: Any, predict_timestamps: bool = False) -> tuple[list[int], list[int]]:
    """``(suppress_tokens, begin_suppress_tokens)`` of the checkpoint, plus timestamps when not predicted."""
    generation_config = getattr(model, "generation_config", None)

    def read(name: str) -> list[int]:
        value = getattr(generation_config, name, None)
        if value is None:
            value = getattr(model.config, name, None)
        return [int(v) for v in value or []]

    suppress = read("suppress_tokens")
    if not predict_timestamps:
        suppress = sorted(set(suppress) | set(timestamp_token_ids(tokenizer)))
    return suppress, read("begin_suppress_tokens")


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def feature_frames(model_config: Any, feature_extractor: Any, pad_features_to: str) -> int | None:
    """Frames to pad/trim features to, or ``None`` for "pad to the longest clip of the batch".

    ``"model"``: what the encoder expects (Whisper: exactly ``2 * max_source_positions`` frames, 3000 = 30 s
    for pretrained checkpoints; encoders without a fixed window: the longest clip). ``"longest"``: the longest
    clip. ``"<seconds>s"`` (e.g. ``"30s"``): a fixed window. Whisper rejects any other length, so a window
    that disagrees with the checkpoint is an error here rather than a shape error at the first step.
    """
    hop = int(getattr(feature_extractor, "hop_length", 160))
    rate = int(getattr(feature_extractor, "sampling_rate", 16000))
    positions = getattr(model_config, "max_source_positions", None)
    fixed = 2 * int(positions) if getattr(model_config, "model_type", None) == "whisper" and positions else None
    if pad_features_to == "model":
        return fixed
    if pad_features_to == "longest":
        frames = None
    else:
        match = _DURATION.match(str(pad_features_to))
        if not match:
            raise ValueError(f"pad_features_to must be 'model', 'longest' or a duration like '30s', got {pad_features_to!r}")
        frames = int(round(float(match.group(1)) * rate / hop))
    if fixed is not None and frames != fixed:
        raise ValueError(
            f"pad_features_to={pad_features_to!r} gives {frames or 'variable'} frames, but this Whisper encoder takes "
            f"exactly {fixed} frames ({fixed * hop / rate:g} s, 2 x max_source_positions={positions}); use "
            "pad_features_to='model'"
        )
    return frames


def extract_features(feature_extractor: Any, waveforms: Sequence[np.ndarray], frames: int | None) -> torch.Tensor:
    """Log-mel features ``[clips, n_mels, frames]``; clips longer than the window are cut (with a warning)."""
    hop = int(getattr(feature_extractor, "hop_length", 160))
    rate = int(getattr(feature_extractor, "sampling_rate", 16000))
    kwargs: dict[str, Any] = {"padding": "longest"}
    if frames is not None:
        kwargs = {"padding": "max_length", "max_length": frames * hop, "truncation": True}
        longest = max(len(w) for w in waveforms)
        if longest > frames * hop:
            warnings.warn(
                f"a clip of {longest / rate:.1f} s is longer than the encoder window ({frames * hop / rate:g} s) and is cut",
                stacklevel=2,
            )
    out = feature_extractor(list(waveforms), sampling_rate=rate, return_tensors="pt", **kwargs)
    return out["input_features"]


# --------------------------------------------------------------------------------------------------
# Generation from encoder states
# --------------------------------------------------------------------------------------------------


def generation_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (its LoRA layers stay active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def generate_from_encoder(
    model: Any, encoder_hidden: torch.Tensor, prefix_ids: Sequence[int], generation_config: GenerationConfig
) -> torch.Tensor:
    """``[rows, len(prefix) + new]`` token ids, prefix included, for precomputed encoder states ``[rows, T, D]``.

    Plain ``GenerationMixin.generate``: the encoder is not run again (the caller ran it once per clip and
    expanded the states to the rows) and the forced prefix stays in the output.
    """
    rows = encoder_hidden.size(0)
    prefix = torch.tensor([list(prefix_ids)], dtype=torch.long, device=encoder_hidden.device).expand(rows, -1)
    return GenerationMixin.generate(
        generation_model(model),
        encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
        # every encoder frame is valid; saying so stops transformers' pad == eos warning
        attention_mask=torch.ones(encoder_hidden.shape[:2], dtype=torch.long, device=encoder_hidden.device),
        decoder_input_ids=prefix,
        decoder_attention_mask=torch.ones_like(prefix),
        generation_config=generation_config,
    )


def completion_ids(sequences: torch.Tensor, prefix_length: int, eos_token_ids: Sequence[int]) -> list[list[int]]:
    """Cut the prefix, keep tokens up to and including the first EOS (TRL's convention)."""
    completions = sequences[:, prefix_length:].cpu()
    is_eos = torch.isin(completions, torch.tensor(list(eos_token_ids)))
    out = []
    for row, eos in zip(completions, is_eos, strict=True):
        end = int(eos.int().argmax()) + 1 if eos.any() else row.numel()
        out.append(row[:end].tolist())
    return out


# --------------------------------------------------------------------------------------------------
# Greedy transcription and error rates
# --------------------------------------------------------------------------------------------------


def transcribe(
    model: Any,
    processor: Any,
    audios: Sequence[Any],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    language: str | None = None,
    task: str | None = "transcribe",
    predict_timestamps: bool = False,
    pad_features_to: str = "model",
    sampling_rate: int | None = None,
    device: torch.device | str | None = None,
) -> list[str]:
    """Greedy transcripts of ``audios`` (anything ``rlnf.audio.load_audio`` reads)."""
    from rlnf.audio import load_audio

    tokenizer, feature_extractor = processor.tokenizer, processor.feature_extractor
    rate = sampling_rate or int(feature_extractor.sampling_rate)
    prefix = decoder_prefix_ids(tokenizer, language, task, predict_timestamps)
    frames = feature_frames(model.config, feature_extractor, pad_features_to)
    suppress, begin_suppress = suppressed_tokens(generation_model(model), tokenizer, predict_timestamps)
    eos = [int(tokenizer.eos_token_id)]
    # Never ask for more positions than the decoder has (tiny policies have 64, Whisper 448).
    decoder_positions = getattr(generation_model(model).config, "max_target_positions", None)
    max_length = len(prefix) + max_new_tokens
    if decoder_positions is not None:
        max_length = min(max_length, int(decoder_positions))
    config = GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_length=max_length,  # not max_new_tokens: it clashes with the checkpoint's max_length
        eos_token_id=eos,
        pad_token_id=int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]),
        decoder_start_token_id=prefix[0],
        suppress_tokens=suppress or None,
        begin_suppress_tokens=begin_suppress or None,
        disable_compile=True,
    )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    was_training = model.training
    model.eval()
    texts: list[str] = []
    try:
        for start in range(0, len(audios), batch_size):
            chunk = audios[start : start + batch_size]
            waveforms = [
                load_audio(a, rate, index=start + i, target_sampling_rate=rate) for i, a in enumerate(chunk)
            ]
            features = extract_features(feature_extractor, waveforms, frames).to(device, dtype)
            with torch.no_grad():
                hidden = generation_model(model).get_encoder()(input_features=features).last_hidden_state
                sequences = generate_from_encoder(model, hidden, prefix, config)
            ids = completion_ids(sequences, len(prefix), eos)
            texts.extend(tokenizer.batch_decode(ids, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return texts


__all__ = [
    "completion_ids",
    "decoder_prefix_ids",
    "extract_features",
    "feature_frames",
    "generate_from_encoder",
    "generation_model",
    "suppressed_tokens",
    "timestamp_token_ids",
    "transcribe",
]
