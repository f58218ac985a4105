"""Tiny Whisper policies built offline: a random ``WhisperForConditionalGeneration`` and its ``WhisperProcessor``.

There is no small pretrained Whisper to download here, and Whisper's vocabulary has no Bambara: tests,
benchmarks and the demo recipe build a policy from scratch, with a byte-level BPE tokenizer trained on the
project's own Bambara sentences and wrapped as a ``WhisperTokenizer`` that carries the special tokens Whisper's
decoder prefix needs. The result saves and reloads with ``from_pretrained`` like any Whisper checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

ENDOFTEXT = "<|endoftext|>"
# The special tokens Whisper's tokenizer and generation code look up by name, in Whisper's own order.
WHISPER_SPECIAL_TOKENS = (
    ENDOFTEXT,
    "<|startoftranscript|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)

HOP_LENGTH = 160  # Whisper's 10 ms frame step at 16 kHz; two frames per encoder position (stride-2 conv)


def train_whisper_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 384,
    *,
    languages: Sequence[str] = (),
    min_frequency: int = 1,
) -> WhisperTokenizer:
    """A byte-level BPE trained on ``texts``, wrapped as a ``WhisperTokenizer``.

    ``languages`` adds language tokens (``"bm"`` -> ``<|bm|>``) after Whisper's special tokens, for policies
    that should learn a Bambara language token; none by default (Whisper has none for Bambara).
    The real vocabulary size can be smaller than ``vocab_size`` for a small corpus: read ``len(tokenizer)``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = list(WHISPER_SPECIAL_TOKENS) + [f"<|{code}|>" for code in languages]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(texts), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = WhisperTokenizer(
        vocab=state["vocab"],
        merges=merges,
        unk_token=ENDOFTEXT,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        predict_timestamps=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.set_prefix_tokens(task="transcribe", predict_timestamps=False)
    vocab = tokenizer.get_vocab()
    missing = [token for token in specials if token not in vocab]
    if missing:  # a silently incomplete tokenizer would break the decoder prefix much later
        raise RuntimeError(f"the trained tokenizer lacks special tokens {missing}")
    return tokenizer


def build_tiny_whisper(
    texts: Iterable[str],
    output_dir: str | os.PathLike | None = None,
    *,
    d_model: int = 128,
    layers: int = 2,
    heads: int = 4,
    ffn_dim: int | None = None,
    max_source_positions: int = 100,
    max_target_positions: int = 64,
    num_mel_bins: int = 80,
    vocab_size: int = 384,
    languages: Sequence[str] = (),
    model_vocab_size: int | None = None,
    seed: int = 0,
) -> tuple[WhisperForConditionalGeneration, WhisperProcessor]:
    """A random Whisper policy and its processor, built without network access.

    ``max_source_positions`` sets the audio window: the encoder takes exactly ``2 * max_source_positions``
    feature frames (10 ms each), so the default 100 is a 2 s window and 1500 is Whisper's 30 s.
    ``layers`` applies to both encoder and decoder. ``model_vocab_size`` pads the embedding and output layer
    beyond the tokenizer (51865 gives Whisper-sized ones, for benchmarks); the extra ids decode to nothing.
    When ``output_dir`` is given, both are saved there (so
    ``config.name_or_path`` points at a real folder and ``from_pretrained`` reloads them).
    """
    tokenizer = train_whisper_tokenizer(texts, vocab_size, languages=languages)
    frames = 2 * max_source_positions
    chunk_seconds = frames * HOP_LENGTH / 16_000
    feature_extractor = WhisperFeatureExtractor(
        feature_size=num_mel_bins,
        sampling_rate=16_000,
        hop_length=HOP_LENGTH,
        chunk_length=max(1, int(round(chunk_seconds))),
        n_fft=400,
    )
    processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in WHISPER_SPECIAL_TOKENS}
    eos = ids[ENDOFTEXT]
    config = WhisperConfig(
        vocab_size=max(len(tokenizer), model_vocab_size or 0),
        num_mel_bins=num_mel_bins,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim or 4 * d_model,
        decoder_ffn_dim=ffn_dim or 4 * d_model,
        max_source_positions=max_source_positions,
        max_target_positions=max_target_positions,
        pad_token_id=eos,
        bos_token_id=eos,
        eos_token_id=eos,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        suppress_tokens=[],
        begin_suppress_tokens=[eos],  # like Whisper: no empty transcript
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = _generation_config(config, ids, languages, tokenizer)
    if output_dir is not None:
        output_dir = Path(output_dir)
        model.save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
        model.config.name_or_path = str(output_dir)
    return model, processor


def _generation_config(
    config: WhisperConfig, ids: dict[str, int], languages: Sequence[str], tokenizer: WhisperTokenizer
) -> GenerationConfig:
    """What Whisper's own ``generate`` reads (task/language ids, no-timestamps id), so it works too."""
    return GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=ids[ENDOFTEXT],
        eos_token_id=ids[ENDOFTEXT],
        pad_token_id=ids[ENDOFTEXT],
        max_length=config.max_target_positions,
        suppress_tokens=[],
        begin_suppress_tokens=[ids[ENDOFTEXT]],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=bool(languages),
        lang_to_id={f"<|{code}|>": tokenizer.convert_tokens_to_ids(f"<|{code}|>") for code in languages},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
    )


__all__ = ["WHISPER_SPECIAL_TOKENS", "build_tiny_whisper", "train_whisper_tokenizer"]
