"""`RewardModelProcessor`: audio clips and transcripts in, the four tensors `RewardModel` takes out."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin, WhisperFeatureExtractor

from ..audio import load_audio
from ..compat import whisper_log_mel
from ..text import get_normalizer, normalize_reward_text
from .tokenization import RewardTokenizer

logger = logging.getLogger(__name__)


class RewardFeatureExtractor(WhisperFeatureExtractor):
    """Whisper-style log-mel with the reward model's parameters, computed clip by clip.

    Each clip is normalised and transformed on its own (exactly what the original did for one clip), then the
    features are padded to the longest clip, with a frame mask from the true lengths. Doing it per clip keeps
    the STFT's edge frames and the per-utterance normalisation independent of the other clips in the batch.
    """

    model_input_names = ["audio", "audio_attention_mask"]

    def __init__(
        self,
        feature_size: int = 80,
        sampling_rate: int = 16000,
        hop_length: int = 256,
        n_fft: int = 1024,
        chunk_length: int = 30,
        padding_value: float = 0.0,
        dither: float = 0.0,
        return_attention_mask: bool = True,
        do_normalize: bool = True,
        max_audio_seconds: float = 30.0,
        truncate_long_audio: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            hop_length=hop_length,
            n_fft=n_fft,
            chunk_length=chunk_length,
            padding_value=padding_value,
            dither=dither,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.do_normalize = do_normalize
        self.max_audio_seconds = max_audio_seconds
        self.truncate_long_audio = truncate_long_audio

    def _prepare(self, waveform: np.ndarray, index: int) -> np.ndarray:
        limit = int(self.max_audio_seconds * self.sampling_rate)
        if waveform.shape[0] > limit:
            seconds = waveform.shape[0] / self.sampling_rate
            if not self.truncate_long_audio:
                raise ValueError(f"audio item {index}: {seconds:.1f} s is longer than {self.max_audio_seconds} s")
            logger.warning("audio item %d: %.1f s truncated to %.1f s", index, seconds, self.max_audio_seconds)
            waveform = waveform[:limit]
        if waveform.shape[0] <= self.n_fft:
            raise ValueError(
                f"audio item {index}: {waveform.shape[0]} samples is too short: need more than one analysis window "
                f"({self.n_fft} samples = {1000 * self.n_fft / self.sampling_rate:.0f} ms)"
            )
        return waveform

    def log_mel(self, waveform: np.ndarray) -> np.ndarray:
        """[n_mel, frames] features of one 16 kHz clip, as the original computed them."""
        if self.do_normalize:  # in float64: the variance of a very loud float32 clip overflows float32
            wide = waveform.astype(np.float64)
            waveform = (wide - wide.mean()) / np.sqrt(wide.var() + 1e-7)
        return whisper_log_mel(self, waveform)

    def __call__(
        self,
        audios: Any,
        sampling_rate: int | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Features for a clip or a list of clips in any form `rlnf.audio.load_audio` takes."""
        if not isinstance(audios, (list, tuple)):
            audios = [audios]
        if len(audios) == 0:
            raise ValueError("no audio given")
        features = [
            self.log_mel(
                self._prepare(load_audio(item, sampling_rate, index=i, target_sampling_rate=self.sampling_rate), i)
            )
            for i, item in enumerate(audios)
        ]
        frames = max(f.shape[1] for f in features)
        batch = np.full((len(features), self.feature_size, frames), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(features), frames), dtype=np.int64)
        for row, feature in enumerate(features):
            batch[row, :, : feature.shape[1]] = feature
            mask[row, : feature.shape[1]] = 1
        return BatchFeature({"audio": batch, "audio_attention_mask": mask}, tensor_type=return_tensors)


class RewardModelProcessor(ProcessorMixin):
    """Feature extractor + SentencePiece tokenizer of the reward model.

    ``processor(audios=[...], texts=[...])`` returns ``audio``, ``audio_attention_mask``, ``text`` and
    ``text_attention_mask``. An empty text is valid: it is scored as ``</s>`` alone (a "nothing was said"
    hypothesis), which the model scores like any other transcript.

    ``text_normalizer`` is part of the checkpoint (saved in ``processor_config.json``): the normaliser the model
    was trained with (`rlnf.text.get_normalizer` names: ``"bambara"``, ``"basic"``). ``None`` (the published
    layout, which has no such setting) feeds raw text to SentencePiece, exactly as the original did.
    """

    def __init__(
        self, feature_extractor: RewardFeatureExtractor, tokenizer: RewardTokenizer, text_normalizer: str | None = None
    ) -> None:
        if text_normalizer is not None:
            get_normalizer(text_normalizer)  # an unknown name fails here, not at the first batch
        self.text_normalizer = text_normalizer
        super().__init__(feature_extractor, tokenizer)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> RewardModelProcessor:
        """Load from ``"demo"``, a local folder or a hub id; a folder without ``spiece.model`` (or without its
        feature settings) is a `~rlnf.reward_model.checkpoint.CheckpointError` naming the file, a missing folder
        or an unreachable hub id fails at once (see `rlnf.reward_model.checkpoint`).

        The two parts are built explicitly through their own public ``from_pretrained`` (the tokenizer as
        `RewardTokenizer` whatever class the folder names: the published repo says ``T5Tokenizer``, whose
        transformers-5 conversion segments text differently from the original), so no version of
        `ProcessorMixin`'s sub-processor resolution is involved.
        """
        from .checkpoint import read_processor_settings, resolve_checkpoint

        path = resolve_checkpoint(pretrained_model_name_or_path, "processor")
        kwargs.pop("trust_remote_code", None)
        feature_extractor = RewardFeatureExtractor.from_pretrained(path, **kwargs)
        tokenizer = RewardTokenizer.from_pretrained(path, **kwargs)
        settings = read_processor_settings(path, **kwargs)
        return cls(feature_extractor, tokenizer, text_normalizer=settings.get("text_normalizer"))

    def extract_audio(self, audios: Any, sampling_rate: int | None = None) -> BatchFeature:
        """Clip-only work: features and frame mask."""
        return self.feature_extractor(audios, sampling_rate=sampling_rate, return_tensors="pt")

    def tokenize(self, texts: Sequence[str]) -> BatchFeature:
        """Text-only work: ids (SentencePiece + ``</s>``) padded with ``<pad>``, and their mask.

        Texts go through ``self.text_normalizer`` first when the checkpoint names one (rlnf-trained models
        save the one they were trained with); without it (the published checkpoint) the ids are exactly the
        original's: ``sentencepiece.encode(text) + [</s>]`` on the raw text.
        """
        if isinstance(texts, str):
            texts = [texts]
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"text item {i}: expected a string, got {type(text).__name__}")
        if len(texts) == 0:
            raise ValueError("no text given")
        if self.text_normalizer is not None:
            normalize = get_normalizer(self.text_normalizer)
            texts = [normalize(text) for text in texts]
        ids = self.tokenizer.encode_texts(list(texts))
        length = max(len(row) for row in ids)
        text = torch.full((len(ids), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for row, row_ids in enumerate(ids):
            text[row, : len(row_ids)] = torch.tensor(row_ids)
            mask[row, : len(row_ids)] = 1
        return BatchFeature({"text": text, "text_attention_mask": mask})

    def __call__(
        self,
        audios: Any = None,
        texts: Sequence[str] | str | None = None,
        sampling_rate: int | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Both halves of the model's input. The model scores (clip, text) pairs, so a call without either is
        refused here rather than as a missing argument deep in the forward; `extract_audio` and `tokenize` are
        the clip-only and text-only halves."""
        if audios is None or texts is None:
            missing = "audios" if audios is None else "texts"
            raise ValueError(
                f"RewardModelProcessor needs both audios and texts (got no {missing}): the model scores pairs. "
                "For one half only, call processor.extract_audio(audios) or processor.tokenize(texts)."
            )
        if not isinstance(audios, (list, tuple)):
            audios = [audios]
        if isinstance(texts, str):
            texts = [texts]
        if len(audios) != len(texts):
            raise ValueError(f"got {len(audios)} audios but {len(texts)} texts: they are scored pairwise")
        return BatchFeature({**self.extract_audio(audios, sampling_rate), **self.tokenize(texts)})

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["audio", "audio_attention_mask", "text", "text_attention_mask"]


def train_tokenizer(
    texts: str | os.PathLike | Iterable[str],
    output_dir: str | os.PathLike,
    vocab_size: int = 2048,
    *,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
) -> Any:
    """Train a SentencePiece model on ``texts`` (a text file or strings), normalised with
    `rlnf.text.normalize_reward_text` as `RewardModelProcessor.tokenize` will, and save a processor to
    ``output_dir``.

    ``vocab_size`` counts pieces; the model's embedding needs ``len(processor.tokenizer)`` rows (pieces + 100
    extra ids + ``</s>`` + ``<pad>``). SentencePiece may return fewer pieces than asked on little text
    (``hard_vocab_limit=False``), so read the size from the tokenizer, never assume it.
    """
    import sentencepiece as spm

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(texts, (str, os.PathLike)) and Path(texts).is_file():
            texts = Path(texts).read_text(encoding="utf-8").splitlines()
        elif isinstance(texts, (str, os.PathLike)):
            raise FileNotFoundError(
                f"train_tokenizer: {os.fspath(texts)!r} is not a file (pass a list to train on strings)"
            )
        # The pieces are learnt on the text the processor will feed them: normalised as every reward does.
        lines = [normalize_reward_text(line) for line in texts if isinstance(line, str)]
        lines = [line for line in lines if line]
        if not lines:
            raise ValueError("train_tokenizer: no non-empty text to train on")
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        prefix = Path(tmp) / "spiece"
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            hard_vocab_limit=False,
            bos_id=-1,
            eos_id=-1,
            unk_id=0,
            pad_id=-1,
            minloglevel=2,
        )
        tokenizer = RewardTokenizer(vocab_file=str(prefix) + ".model")
        processor = RewardModelProcessor(RewardFeatureExtractor(), tokenizer, text_normalizer="bambara")
        processor.save_pretrained(output_dir)
    return RewardModelProcessor.from_pretrained(output_dir)
