"""Batching for supervised speech-to-text training (the SFT warm start before RL)."""

from __future__ import annotations

from typing import Any

import torch

from ..audio import load_audio
from ..policies.whisper import extract_features


class SpeechSeq2SeqCollator:
    """Rows ``{audio, text}`` -> ``input_features`` and ``labels`` for an encoder-decoder speech policy.

    Labels are the tokenizer's decoder prefix + text + end-of-text, without the decoder start token (the
    model prepends it when it shifts labels right); padding is -100 so the loss ignores it.
    """

    def __init__(
        self, processor: Any, *, frames: int | None = None, audio_column: str = "audio", text_column: str = "text"
    ) -> None:
        self.frames = frames  # the encoder's window (rlnf.policies.whisper.feature_frames); None: longest clip
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.audio_column = audio_column
        self.text_column = text_column

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rate = self.feature_extractor.sampling_rate
        waveforms = [
            load_audio(row[self.audio_column], index=i, target_sampling_rate=rate) for i, row in enumerate(rows)
        ]
        features = extract_features(self.feature_extractor, waveforms, self.frames)
        labels = self.tokenizer([row[self.text_column] for row in rows], padding=True, return_tensors="pt")
        ids = labels["input_ids"].masked_fill(labels["attention_mask"] == 0, -100)
        start = self.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        if bool((ids[:, 0] == start).all()):
            ids = ids[:, 1:]
        return {"input_features": features, "labels": ids}
