"""Tiny random CTC policies built offline: a ``Wav2Vec2ForCTC`` and a ``ParakeetForCTC`` with their processors.

Tests, benchmarks and the demo need CTC models without hub access. Both use a Bambara character vocabulary
(the letters of the demo corpus after normalisation, ɛ ɔ ɲ ŋ included): a ``Wav2Vec2CTCTokenizer`` with
wav2vec2's special-token layout (``<pad>`` = blank first, ``|`` = word delimiter) and a ``ParakeetTokenizer``
with NeMo's layout (SentencePiece-style ``▁`` word boundary, ``<blank>`` last). Dropout, LayerDrop and
SpecAugment are off, as RL needs (see `rlnf.policies.ctc.CTCPolicy.check_args`). Everything saves and reloads
with ``from_pretrained``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    ParakeetCTCConfig,
    ParakeetFeatureExtractor,
    ParakeetForCTC,
    ParakeetProcessor,
    ParakeetTokenizer,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

BAMBARA_LETTERS = "abcdefghijklmnopqrstuvwxyzɛɔɲŋ'"
WAV2VEC2_SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "|")  # <pad> is the CTC blank, | the word delimiter
PARAKEET_BLANK = "<blank>"

_NO_RANDOMNESS = {"layerdrop": 0.0, "apply_spec_augment": False, "mask_time_prob": 0.0, "mask_feature_prob": 0.0}


def bambara_ctc_tokenizer(letters: Sequence[str] = BAMBARA_LETTERS) -> Wav2Vec2CTCTokenizer:
    """A character ``Wav2Vec2CTCTokenizer``: wav2vec2's special tokens, then one token per letter."""
    tokens = list(WAV2VEC2_SPECIAL_TOKENS) + [c for c in dict.fromkeys(letters) if c not in WAV2VEC2_SPECIAL_TOKENS]
    with tempfile.TemporaryDirectory() as folder:
        vocab = Path(folder) / "vocab.json"
        vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8")
        return Wav2Vec2CTCTokenizer(str(vocab), pad_token="<pad>", unk_token="<unk>", word_delimiter_token="|")


def tiny_wav2vec2_ctc(
    tokenizer: Wav2Vec2CTCTokenizer | None = None,
    *,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 64,
    conv_dim: Sequence[int] = (16, 16, 16),
    conv_kernel: Sequence[int] = (10, 8, 4),
    conv_stride: Sequence[int] = (5, 8, 8),
    feat_extract_norm: str = "layer",
    adapter_attn_dim: int | None = None,
    blank_bias: float = 4.0,
    seed: int = 0,
    **config: Any,
) -> tuple[Wav2Vec2ForCTC, Wav2Vec2Processor]:
    """A random ``Wav2Vec2ForCTC`` (20 ms frames like wav2vec2: strides 5 x 8 x 8 = 320 samples) and its ``Wav2Vec2Processor``.

    ``feat_extract_norm="group"`` gives a wav2vec2-base-style model that is run WITHOUT an attention mask (its
    feature extractor says ``return_attention_mask=False``); ``adapter_attn_dim`` adds MMS attention adapters.
    ``blank_bias`` is added to the head's blank logit so that, like a trained CTC model, the random one emits
    mostly blanks (short transcripts). ``config`` overrides any other ``Wav2Vec2Config`` field.
    """
    tokenizer = tokenizer or bambara_ctc_tokenizer()
    settings = {
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "feat_proj_dropout": 0.0,
        "final_dropout": 0.0,
        **_NO_RANDOMNESS,
        **config,
    }
    model_config = Wav2Vec2Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        conv_dim=tuple(conv_dim),
        conv_kernel=tuple(conv_kernel),
        conv_stride=tuple(conv_stride),
        feat_extract_norm=feat_extract_norm,
        do_stable_layer_norm=feat_extract_norm == "layer",
        adapter_attn_dim=adapter_attn_dim,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
        **settings,
    )
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(model_config)
    with torch.no_grad():
        model.lm_head.bias[tokenizer.pad_token_id] += blank_bias
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=feat_extract_norm == "layer",
    )
    return model, Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def bambara_parakeet_tokenizer(letters: Sequence[str] = BAMBARA_LETTERS) -> ParakeetTokenizer:
    """A character ``ParakeetTokenizer`` in NeMo's layout: ``<unk>``, ``▁`` (word start), the letters, and the
    CTC blank ``<blank>`` last (also its pad token, as transformers' Parakeet CTC decoding expects)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pieces = ["<unk>", "▁"] + [c for c in dict.fromkeys(letters) if c not in ("<unk>", "▁")]
    unigram = models.Unigram([(p, 0.0 if p == "<unk>" else -1.0) for p in pieces], unk_id=0, byte_fallback=False)
    backend = Tokenizer(unigram)
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer = ParakeetTokenizer(tokenizer_object=backend, unk_token="<unk>", pad_token=PARAKEET_BLANK)
    tokenizer.add_special_tokens({"pad_token": PARAKEET_BLANK})
    return tokenizer


def parakeet_encoder_config(
    hidden_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    intermediate_size: int,
    num_mel_bins: int,
    subsampling_conv_channels: int,
    subsampling_factor: int,
) -> dict[str, Any]:
    """A tiny FastConformer encoder config with every source of training randomness off (the tiny CTC and TDT
    policies share it)."""
    return {
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_attention_heads,
        "intermediate_size": intermediate_size,
        "num_mel_bins": num_mel_bins,
        "subsampling_conv_channels": subsampling_conv_channels,
        "subsampling_factor": subsampling_factor,
        "conv_kernel_size": 9,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "dropout_positions": 0.0,
        "layerdrop": 0.0,
        "max_position_embeddings": 5000,
    }


def tiny_parakeet_ctc(
    tokenizer: ParakeetTokenizer | None = None,
    *,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 64,
    num_mel_bins: int = 16,
    subsampling_conv_channels: int = 8,
    subsampling_factor: int = 8,
    blank_bias: float = 3.0,
    seed: int = 0,
) -> tuple[ParakeetForCTC, ParakeetProcessor]:
    """A random ``ParakeetForCTC`` (FastConformer, ``subsampling_factor`` x 10 ms mel frames) and its processor
    (``blank_bias`` as in `tiny_wav2vec2_ctc`)."""
    tokenizer = tokenizer or bambara_parakeet_tokenizer()
    encoder = parakeet_encoder_config(
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, num_mel_bins,
        subsampling_conv_channels, subsampling_factor,
    )  # fmt: skip
    config = ParakeetCTCConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, encoder_config=encoder, ctc_zero_infinity=True
    )
    torch.manual_seed(seed)
    model = ParakeetForCTC(config)
    with torch.no_grad():
        model.ctc_head.bias[tokenizer.pad_token_id] += blank_bias
    feature_extractor = ParakeetFeatureExtractor(feature_size=num_mel_bins, sampling_rate=16000)
    processor = ParakeetProcessor(feature_extractor, tokenizer, blank_token=PARAKEET_BLANK, decoder_type="ctc")
    return model, processor


def demo_parakeet_ctc(seed: int = 0) -> tuple[ParakeetForCTC, ParakeetProcessor]:
    """The demo CTC policy's architecture (random weights, 0.56 M parameters): a FastConformer with 40 ms frames
    (4x subsampling of 40 mel bins), 96 wide, 3 layers; no blank bias (SFT learns it). Trained by
    ``recipes/sft_asr.py --config recipes/sft_asr_ctc_demo.yaml`` on the demo corpus' source domain."""
    return tiny_parakeet_ctc(
        hidden_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=256,
        num_mel_bins=40,
        subsampling_conv_channels=32,
        subsampling_factor=4,
        blank_bias=0.0,
        seed=seed,
    )


__all__ = [
    "BAMBARA_LETTERS",
    "bambara_ctc_tokenizer",
    "bambara_parakeet_tokenizer",
    "parakeet_encoder_config",
    "demo_parakeet_ctc",
    "tiny_parakeet_ctc",
    "tiny_wav2vec2_ctc",
]
