"""`AudioTextReward`: the reward model as a drop-in TRL reward function (``reward_funcs=[reward]``).

TRL treats any ``nn.Module`` reward as a text classifier, so the audio+text model is wrapped in a plain
callable object. TRL repeats each dataset row G times (one per sampled completion); the wrapper therefore
works per unique clip wherever the work depends only on the clip:

    unique clips -> decode + log-mel + ``model.encode_audio``   (once per clip)
    unique texts -> ``model.encode_text``                         (in batches of ``batch_size``)
    every row    -> ``model.score(audio_enc.select(clip_of_row), text_enc.select(text_of_row))``

The model is placed on its device and put in eval mode once, on the first call (by then the trainer's
accelerate state exists, so each rank picks its own device).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..audio import TARGET_SAMPLING_RATE, audio_key, check_sampling_rate, group_by_clip, load_audio
from ..errors import RlnfUserError
from .transcript_rewards import DEFAULT_AUDIO_COLUMN, DEFAULT_REFERENCE_COLUMN, TRL_KWARGS, completion_texts


def default_device() -> torch.device:
    """The accelerate process device when accelerate is running, else CUDA (this rank's GPU), else CPU."""
    try:
        from accelerate import PartialState
        from accelerate.state import is_initialized

        if is_initialized():  # an Accelerator (a trainer's) set the process up; never initialise it here
            return PartialState().device
    except ImportError:  # accelerate is a TRL dependency, but the wrapper also works without it
        pass
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device("cpu")


def group_clips(audios: Sequence[Any], sampling_rate: int | None = None) -> tuple[list[np.ndarray], list[int]]:
    """Decode each distinct clip once: the waveforms (16 kHz) and, per row, the index of its waveform.

    Rows are the same clip when they have the same `rlnf.audio.audio_key` (same file, same bytes, or equal
    samples at the same rate); a row object seen before is not keyed again (TRL repeats objects G times).
    """
    firsts, rows = group_by_clip(audios, lambda item, row: audio_key(item, sampling_rate, index=row))
    return [load_audio(audios[row], sampling_rate, index=row) for row in firsts], rows


def unique_indices(values: Sequence[str]) -> tuple[list[str], list[int]]:
    """Distinct values in first-seen order and, per position, the index of its value."""
    index: dict[str, int] = {}
    rows = [index.setdefault(value, len(index)) for value in values]
    return list(index), rows


def balanced_slices(total: int, batch_size: int) -> list[slice]:
    """At most ``batch_size`` items per slice, in as few slices as possible, of near-equal sizes.

    (144, 64) -> 48, 48, 48 rather than 64, 64, 16: the sequential BiLSTM is least efficient per text in a
    small batch, so a trailing one would make the next hypothesis cost more than its share.
    """
    count = -(-total // batch_size)
    if count == 0:
        return []
    bounds = [round(i * total / count) for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count)]


def concat_encodings(encodings: list[Any]) -> Any:
    """Concatenate batch chunks of an encoding, zero-padding dim 1 (frames/tokens; masks pad with 0)."""
    if len(encodings) == 1:
        return encodings[0]
    merged = {}
    for key in encodings[0].keys():
        parts = [encoding[key] for encoding in encodings]
        if parts[0].dim() >= 2:
            length = max(part.shape[1] for part in parts)
            parts = [_pad_dim1(part, length) for part in parts]
        merged[key] = torch.cat(parts, dim=0)
    return type(encodings[0])(**merged)


def _pad_dim1(tensor: torch.Tensor, length: int) -> torch.Tensor:
    if tensor.shape[1] == length:
        return tensor
    shape = list(tensor.shape)
    shape[1] = length - tensor.shape[1]
    return torch.cat([tensor, tensor.new_zeros(shape)], dim=1)


class ClipTooShortError(RlnfUserError, ValueError):
    """A clip too short for the reward model's features; the message names it."""


class AudioTextReward:
    """The reward model as a TRL reward function: ``reward = scale * model_score + offset`` per completion.

    Args:
        model: a `RewardModel` (anything with ``encode_audio``, ``encode_text`` and ``score``).
        processor: its `RewardModelProcessor` (``extract_audio`` and ``tokenize``).
        audio_column: dataset column holding the clips (any form `rlnf.audio.load_audio` takes).
        reference_column: dataset column with the reference transcript; logged next to the completions via
            TRL's ``log_extra`` when present (``log_reference=False`` turns that off, e.g. when two
            `AudioTextReward` objects score the same batch). The model itself never sees it.
        batch_size: clips and texts per forward pass.
        device: where the model runs; default `default_device()` chosen on the first call.
        dtype: the model's dtype for scoring (e.g. ``torch.bfloat16`` on GPU); default: leave it as it is.
        scale, offset: affine map of the [0, 1] score (e.g. ``scale=2, offset=-1`` for [-1, 1]).
        name: the name TRL logs the reward under (``rewards/<name>/mean``).
        sampling_rate: rate of bare arrays/tensors in the audio column (files and dicts carry their own).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        audio_column: str = DEFAULT_AUDIO_COLUMN,
        reference_column: str | None = DEFAULT_REFERENCE_COLUMN,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        scale: float = 1.0,
        offset: float = 0.0,
        name: str = "reward_model",
        sampling_rate: int | None = None,
        log_reference: bool = True,
    ) -> None:
        if isinstance(model, (str, os.PathLike)):
            raise TypeError("AudioTextReward takes a model object; use AudioTextReward.from_pretrained(path)")
        for method in ("encode_audio", "encode_text", "score"):
            if not callable(getattr(model, method, None)):
                raise TypeError(f"model needs {method}() like rlnf.RewardModel; got {type(model).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.processor = processor
        self.audio_column = audio_column
        self.reference_column = reference_column
        self.batch_size = batch_size
        self.device = None if device is None else torch.device(device)
        self.dtype = dtype
        self.scale = float(scale)
        self.offset = float(offset)
        self.sampling_rate = (
            None if sampling_rate is None else check_sampling_rate(sampling_rate, "AudioTextReward(sampling_rate=...)")
        )
        self.log_reference = log_reference
        self.__name__ = name  # TRL reads `__name__` for its log keys
        self._device_option = self.device
        self._ready = False
        self._lock = threading.Lock()  # TRL's async worker may score several groups in threads at once

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *, revision: str | None = None, **options: Any
    ) -> AudioTextReward:
        """Load model and processor from ``"demo"`` (the shipped demo reward model), a local folder or a hub id;
        ``options`` go to the constructor (checked before anything loads). Loading is strict and fails fast
        offline: see `rlnf.RewardModel.from_pretrained` and `rlnf.reward_model.checkpoint`."""
        import inspect

        from ..reward_model.modeling import RewardModel
        from ..reward_model.processing import RewardModelProcessor

        try:
            inspect.signature(cls.__init__).bind(None, None, None, **options)
        except TypeError as error:
            raise TypeError(f"AudioTextReward.from_pretrained: {error}") from None

        model = RewardModel.from_pretrained(pretrained_model_name_or_path, revision=revision)
        processor = RewardModelProcessor.from_pretrained(pretrained_model_name_or_path, revision=revision)
        return cls(model, processor, **options)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.__name__!r}, audio_column={self.audio_column!r}, "
            f"device={self.device}, batch_size={self.batch_size}, scale={self.scale}, offset={self.offset})"
        )

    # -- pickling: TRL's async trainer runs rewards in a child process

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ready"] = False  # the child process places the model again (its own device)
        state["device"] = state["_device_option"]
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- the call TRL makes

    def __call__(self, prompts: Any = None, completions: Sequence[Any] | None = None, **kwargs: Any) -> list[float]:
        """One reward per completion; ``kwargs`` carries the dataset columns (one entry per completion)."""
        if completions is None:
            raise ValueError("AudioTextReward needs `completions` (TRL passes them as a keyword)")
        texts = completion_texts(completions)
        audios = self._audio_items(kwargs)
        if len(audios) != len(texts):
            raise ValueError(
                f"got {len(audios)} clips in column {self.audio_column!r} but {len(texts)} completions: "
                "they are scored pairwise"
            )
        if not texts:
            return []
        names = prompts if isinstance(prompts, list) and len(prompts) == len(texts) else None
        scores, clips = self._score(audios, texts, names)
        self._log(kwargs, len(texts), clips)
        return [self.scale * value + self.offset for value in scores]

    def score(self, audios: Sequence[Any], texts: Sequence[str]) -> list[float]:
        """Raw model scores in [0, 1] (no scale/offset) for row-aligned clips and texts."""
        if len(audios) != len(texts):
            raise ValueError(f"got {len(audios)} clips but {len(texts)} texts: they are scored pairwise")
        for index, text in enumerate(texts):  # before de-duplication, so the index is the caller's
            if not isinstance(text, str):
                raise ValueError(f"text item {index}: expected a string, got {type(text).__name__}")
        return self._score(audios, list(texts))[0] if texts else []

    def _score(
        self, audios: Sequence[Any], texts: Sequence[str], names: Sequence[Any] | None = None
    ) -> tuple[list[float], int]:
        """Scores, and how many distinct clips there were (for the logs); ``names`` (TRL's prompts: the recipes'
        clip names) name a clip the model cannot score."""
        self._prepare_model()
        waveforms, clip_rows = group_clips(audios, self.sampling_rate)
        self._check_lengths(waveforms, clip_rows, names)
        unique_texts, text_rows = unique_indices(list(texts))
        with torch.inference_mode():
            audio_encoding = self._encode_clips(waveforms)
            text_encoding = self._encode_texts(unique_texts)
            scores = self._score_rows(audio_encoding, text_encoding, clip_rows, text_rows)
        return scores.float().cpu().tolist(), len(waveforms)

    # -- steps

    def _audio_items(self, kwargs: dict[str, Any]) -> Sequence[Any]:
        audios = kwargs.get(self.audio_column)
        if audios is None:
            columns = sorted(key for key in kwargs if key not in TRL_KWARGS)
            raise ValueError(
                f"AudioTextReward needs the audio column {self.audio_column!r}, but the reward function got "
                f"the columns {columns}. Keep the column in the dataset (GRPOConfig.remove_unused_columns="
                "False) or set audio_column=..."
            )
        return audios

    def _prepare_model(self) -> None:
        """Device, dtype and eval mode, once (never a device move per call)."""
        if self._ready and not self.model.training:
            return
        with self._lock:
            if not self._ready:
                self.device = self.device or default_device()
                if self.dtype is not None:
                    self.model.to(device=self.device, dtype=self.dtype)
                else:
                    self.model.to(self.device)
                self._ready = True
            self.model.eval()

    def _check_lengths(self, waveforms: list[np.ndarray], clip_rows: list[int], names: Sequence[Any] | None) -> None:
        """A clip of one analysis window or less has no features: said naming the clip (its row, and its name
        where TRL passed one), not the position among the batch's distinct clips."""
        shortest = self.processor.feature_extractor.n_fft
        for clip, waveform in enumerate(waveforms):
            if waveform.shape[0] <= shortest:
                row = clip_rows.index(clip)
                name = f"clip {names[row]!r} (row {row})" if names is not None else f"audio item {row}"
                raise ClipTooShortError(
                    f"{name}: {1000 * waveform.shape[0] / TARGET_SAMPLING_RATE:.0f} ms of audio is too short for the "
                    f"reward model, which needs more than {1000 * shortest / TARGET_SAMPLING_RATE:.0f} ms "
                    f"({shortest} samples at 16 kHz): remove clips this short from the data"
                )

    def _encode_clips(self, waveforms: list[np.ndarray]) -> Any:
        """Log-mel + audio encoder, once per distinct clip, at most ``batch_size`` clips at a time."""
        chunks = []
        for rows in balanced_slices(len(waveforms), self.batch_size):
            chunk = waveforms[rows]
            features = self.processor.extract_audio(chunk, sampling_rate=TARGET_SAMPLING_RATE)
            audio = features["audio"].to(self.device, dtype=self.dtype or features["audio"].dtype)
            encoding = self.model.encode_audio(audio, features["audio_attention_mask"].to(self.device))
            chunks.append(self._for_scoring(encoding))
        return concat_encodings(chunks)

    def _encode_texts(self, texts: list[str]) -> Any:
        """Text encoder once per distinct completion, at most ``batch_size`` texts at a time."""
        chunks = []
        for rows in balanced_slices(len(texts), self.batch_size):
            tokens = self.processor.tokenize(texts[rows])
            ids, mask = tokens["text"].to(self.device), tokens["text_attention_mask"].to(self.device)
            chunks.append(self._for_scoring(self.model.encode_text(ids, mask)))
        return concat_encodings(chunks)

    def _for_scoring(self, encoding: Any) -> Any:
        """What `model.score` reads: late fusion only the pooled vectors, so per-frame/per-token states are
        dropped rather than padded, concatenated and repeated G times for nothing."""
        if getattr(getattr(self.model, "config", None), "fusion_type", None) == "late":
            return type(encoding)(pooled=encoding.pooled)
        return encoding

    def _score_rows(self, audio: Any, text: Any, clip_rows: list[int], text_rows: list[int]) -> torch.Tensor:
        """The fusion head for every (clip, completion) row, repeating the cached encodings."""
        clip_index = torch.tensor(clip_rows, device=self.device)
        text_index = torch.tensor(text_rows, device=self.device)
        scores = []
        for rows in balanced_slices(len(clip_rows), self.batch_size):
            scores.append(self.model.score(audio.select(clip_index[rows]), text.select(text_index[rows])))
        return torch.cat(scores)

    def _log(self, kwargs: dict[str, Any], rows: int, clips: int) -> None:
        """Use TRL's optional logging hooks when given (absent in the async trainer's child process)."""
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"{self.__name__}/unique_clips", float(clips))
            log_metric(f"{self.__name__}/completions_per_clip", rows / clips)
        log_extra = kwargs.get("log_extra")
        references = kwargs.get(self.reference_column) if self.reference_column else None
        if self.log_reference and callable(log_extra) and references is not None and len(references) == rows:
            log_extra("reference", [ref if isinstance(ref, str) else None for ref in references])
