"""The private transformers names rlnf relies on (`rlnf.compat`), each against an independent computation, and
the version pins that protect users: these fail loudly on a release that moved something."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_clip
from transformers import WhisperFeatureExtractor

from rlnf.compat import encoder_output_lengths, groups_repeated_tokens, whisper_log_mel
from rlnf.policies.tiny_ctc import bambara_ctc_tokenizer, tiny_parakeet_ctc, tiny_wav2vec2_ctc
from rlnf.reward_model.processing import RewardFeatureExtractor

ROOT = Path(__file__).resolve().parents[1]


def test_whisper_log_mel_equals_the_public_feature_extractor():
    waveform = synthetic_clip(1.3, 220.0)
    ours = whisper_log_mel(RewardFeatureExtractor(), waveform)
    public = WhisperFeatureExtractor(feature_size=80, hop_length=256, n_fft=1024, sampling_rate=16000)(
        waveform, sampling_rate=16000, padding="longest", truncation=False, return_tensors="np"
    )["input_features"][0]
    assert ours.shape == public.shape and np.allclose(ours, public, atol=1e-5)


@pytest.mark.parametrize("build", [tiny_wav2vec2_ctc, tiny_parakeet_ctc])
def test_encoder_output_lengths_equal_the_frames_the_model_outputs(build):
    model, processor = build()
    model.eval()
    for seconds in (0.6, 1.0, 1.37):
        inputs = processor.feature_extractor(
            [synthetic_clip(seconds, 200.0)], sampling_rate=16000, return_attention_mask=True, return_tensors="pt"
        )
        with torch.no_grad():
            frames = model(**inputs).logits.shape[1]
        assert int(encoder_output_lengths(model, inputs["attention_mask"].sum(-1))[0]) == frames


def test_ctc_tokenizers_group_repeats_and_decode_takes_group_tokens():
    tokenizer = bambara_ctc_tokenizer()
    a = tokenizer.convert_tokens_to_ids("a")
    assert groups_repeated_tokens(tokenizer)
    assert tokenizer.decode([a, a]) == "a" and tokenizer.decode([a, a], group_tokens=False) == "aa"
    assert not groups_repeated_tokens(WhisperFeatureExtractor())  # no tokenizer at all: nothing to switch off


def _bounds(requirement: str) -> tuple[str, str | None, str | None]:
    name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
    low = re.search(r">=\s*([\w.]+)", requirement)
    high = re.search(r"<\s*([\w.]+)", requirement)
    exact = re.search(r"==\s*([\w.*]+)", requirement)
    if exact:
        return name, exact.group(1).rstrip(".*"), None
    return name, low and low.group(1), high and high.group(1)


def _key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@pytest.mark.parametrize("package", ["transformers", "trl", "accelerate", "peft", "datasets", "torch"])
def test_installed_versions_are_within_the_declared_bounds(package):
    """The suite only vouches for versions inside the bounds; running it outside them is a mistake to see."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirement = next(r for r in requirements if _bounds(r)[0] == package)
    _, low, high = _bounds(requirement)
    installed = _key(version(package))
    assert low is not None and installed[: len(_key(low))] >= _key(low), (package, installed, requirement)
    if "==" in requirement:
        assert installed[: len(_key(low))] == _key(low), (package, installed, requirement)
    else:
        assert high is not None and installed < _key(high), (package, installed, requirement)
