"""Every private transformers name rlnf relies on, in one place (``tests/test_compat.py`` checks each one).

rlnf uses public API wherever one exists. What is left has no public equivalent; each function below says what
it reads and why, and its test compares it with an independent computation, so a transformers release that
moves or changes one fails the suite (and ``tools/check_latest.sh``) instead of a user's run. TRL's private
methods are overridden by the trainers (``rlnf/trainers/trl_speech.py``) under ``trl==1.16.*``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import nn


def encoder_output_lengths(model: nn.Module, input_lengths: torch.Tensor) -> torch.Tensor:
    """Encoder frames for inputs of ``input_lengths`` (samples or feature frames) by the model's own length
    formula: ``_get_feat_extract_output_lengths`` (wav2vec2, HuBERT, WavLM, MMS) or
    ``_get_subsampling_output_length`` (Parakeet). transformers has no public name for either."""
    for name in ("_get_feat_extract_output_lengths", "_get_subsampling_output_length"):
        formula = getattr(model, name, None)
        if formula is not None:
            return formula(input_lengths).long()
    raise TypeError(f"{type(model).__name__} does not say how many frames it outputs for an input length")


def whisper_log_mel(extractor: Any, waveform: np.ndarray) -> np.ndarray:
    """``[n_mels, frames]`` Whisper log-mel of one (already normalised) clip, without padding it to 30 s.

    The public ``WhisperFeatureExtractor.__call__`` computes the same thing (the test checks it is equal) but
    pads through ``model_input_names[0]``, which a subclass with other input names (the reward model's
    ``audio``) cannot use; so this calls the transform it wraps."""
    return extractor._torch_extract_fbank_features(waveform[None].astype(np.float32), "cpu")[0]


def groups_repeated_tokens(tokenizer: Any) -> bool:
    """Whether ``tokenizer.decode`` merges repeated ids by default (CTC tokenizers: ``Wav2Vec2CTCTokenizer``,
    ``ParakeetTokenizer``), i.e. takes the ``group_tokens`` keyword its public ``decode`` passes on to
    ``_decode``; only the signature is read."""
    decode = getattr(type(tokenizer), "_decode", None)
    return decode is not None and "group_tokens" in inspect.signature(decode).parameters


__all__ = ["encoder_output_lengths", "groups_repeated_tokens", "whisper_log_mel"]
