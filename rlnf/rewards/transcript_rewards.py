"""Reference-based rewards and penalties, open-r1 style: ``f(completions, **kwargs) -> list[float | None]``.

TRL calls each reward with the completions plus every dataset column (already repeated once per completion),
so a reward reads the reference transcript from ``kwargs[reference_column]``. All rewards here are plain
module-level functions or ``functools.partial`` objects from the ``make_*`` factories: both pickle (TRL's
async trainer runs rewards in a child process) and both show under the function's name in TRL's logs
(``rewards/wer/mean``).

Conventions:

* ``wer`` / ``cer`` return ``1 - error_rate`` clipped to [0, 1] (higher is better, like every TRL reward).
  An error rate above 1 (many insertions) is clipped to reward 0. A row without a reference (column missing,
  value ``None`` or not a string) gets ``None``: TRL then ignores it in the sums. A reference that normalises
  to the empty string (silence) rewards an empty hypothesis with 1 and anything else with 0.
* Penalties are in [``penalty``, 0] with ``penalty`` negative, and are never ``None``.
* Texts are normalised before comparison (``normalizer="bambara"``, `rlnf.text.normalize_reward_text`, the
  same normalisation the reward model's processor applies): Bambara-aware (contractions expanded, legacy
  spellings mapped to ɛ ɔ ɲ ŋ, digits spelled out in Bambara, tone marks, case and punctuation dropped) via
  the ``bambara-text-normalizer`` package, or a small Unicode fallback when it is not installed.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..text import (  # noqa: F401 - re-exported: the normalisers have always been importable from here
    Normalizer,
    bambara_normalize,
    basic_normalize,
    get_normalizer,
    normalize_reward_text,
    whitespace_normalize,
)

RewardOutput = list[float | None]

DEFAULT_REFERENCE_COLUMN = "text"
DEFAULT_AUDIO_COLUMN = "audio"
DEFAULT_DURATION_COLUMN = "duration"

# ----------------------------------------------------------------------------------------------------
# Completions: one helper for both formats TRL passes
# ----------------------------------------------------------------------------------------------------


def _message_text(message: dict, index: int, position: int) -> str:
    """A message's ``content``: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if "content" not in message:
        raise ValueError(f"completion {index}: message {position} has no 'content' (keys: {sorted(message)})")
    content = message["content"]
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise TypeError(f"completion {index}: message {position} content must be a string, got {type(content).__name__}")


def completion_text(completion: Any, index: int = 0) -> str:
    """The transcript in one completion: a string, or a conversation (its assistant messages, joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict) and "content" in completion:
        completion = [completion]
    if isinstance(completion, (list, tuple)) and all(isinstance(m, dict) for m in completion):
        parts = [
            _message_text(message, index, position)
            for position, message in enumerate(completion)
            if message.get("role", "assistant") == "assistant"
        ]
        return " ".join(part for part in parts if part)
    raise TypeError(
        f"completion {index}: expected a string or a list of {{'role', 'content'}} messages, "
        f"got {type(completion).__name__}"
    )


def completion_texts(completions: Sequence[Any]) -> list[str]:
    """Plain strings for ``list[str]`` or conversational ``list[list[{"role", "content"}]]`` completions."""
    if completions is None or isinstance(completions, (str, bytes)):
        raise TypeError(f"completions must be a list, got {type(completions).__name__}")
    return [completion_text(completion, index) for index, completion in enumerate(completions)]


# Keywords TRL passes that are not dataset columns (left out of messages about columns).
TRL_KWARGS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")
_WARNED_MISSING: set[tuple[str, str, tuple[str, ...]]] = set()


def dataset_columns(kwargs: dict[str, Any]) -> list[str]:
    """The dataset columns among the keywords TRL passed to a reward."""
    return sorted(k for k in kwargs if k not in TRL_KWARGS)


def _warn_missing_column(reward: str, column: str, kwargs: dict[str, Any]) -> None:
    """Once per reward, column and set of columns: a reference column under another name would otherwise
    silently give ``None`` for every completion (stock TRL then trains without that reward)."""
    columns = tuple(dataset_columns(kwargs))
    if (reward, column, columns) in _WARNED_MISSING:
        return
    _WARNED_MISSING.add((reward, column, columns))
    factory = {"wer": "make_wer_reward", "cer": "make_cer_reward"}.get(reward, f"make_{reward}")
    warnings.warn(
        f"{reward}: the batch has no reference column {column!r} (dataset columns: {list(columns)}), so it "
        f"applies to no completion{' (every value is None)' if reward in ('wer', 'cer') else ''}. If the "
        f"transcripts are in another column, pass reference_column=... (e.g. rlnf.rewards.transcript_rewards.{factory}"
        f"(reference_column='transcript'), or --reference_column in the recipes).",
        UserWarning,
        stacklevel=3,
    )


def _references(kwargs: dict[str, Any], column: str | None, count: int, reward: str) -> list[str | None]:
    """The reference column, or ``None`` per row when the dataset has no such column (warned once; not when the
    column is None: a reference-free run, where the penalties judge the transcript alone, as meant)."""
    if column is not None and column not in kwargs:
        _warn_missing_column(reward, column, kwargs)
    references = kwargs.get(column)
    if references is None:
        return [None] * count
    if len(references) != count:
        raise ValueError(f"got {count} completions but {len(references)} values in column {column!r}")
    return [ref if isinstance(ref, str) else None for ref in references]


# ----------------------------------------------------------------------------------------------------
# WER / CER rewards
# ----------------------------------------------------------------------------------------------------


def _error_rate(reference: str, hypothesis: str, unit: str) -> float:
    """Word or character error rate of two normalised strings (jiwer), defined for an empty reference."""
    import jiwer

    if not reference:
        return 0.0 if not hypothesis else 1.0
    if unit == "word":
        return float(jiwer.wer(reference, hypothesis))
    return float(jiwer.cer(reference, hypothesis))


def _error_rate_reward(
    completions: Sequence[Any],
    unit: str,
    reference_column: str,
    normalizer: Normalizer,
    kwargs: dict[str, Any],
) -> RewardOutput:
    hypotheses = completion_texts(completions)
    normalize = get_normalizer(normalizer)
    rewards: RewardOutput = []
    references = _references(kwargs, reference_column, len(hypotheses), "wer" if unit == "word" else "cer")
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        if reference is None:
            rewards.append(None)
            continue
        rate = _error_rate(normalize(reference), normalize(hypothesis), unit)
        rewards.append(min(max(1.0 - rate, 0.0), 1.0))
    return rewards


def wer(
    completions: Sequence[Any],
    *,
    reference_column: str = DEFAULT_REFERENCE_COLUMN,
    normalizer: Normalizer = "bambara",
    **kwargs: Any,
) -> RewardOutput:
    """``1 - WER`` clipped to [0, 1] against ``kwargs[reference_column]``; ``None`` without a reference."""
    return _error_rate_reward(completions, "word", reference_column, normalizer, kwargs)


def cer(
    completions: Sequence[Any],
    *,
    reference_column: str = DEFAULT_REFERENCE_COLUMN,
    normalizer: Normalizer = "bambara",
    **kwargs: Any,
) -> RewardOutput:
    """``1 - CER`` clipped to [0, 1] against ``kwargs[reference_column]``; ``None`` without a reference."""
    return _error_rate_reward(completions, "char", reference_column, normalizer, kwargs)


# ----------------------------------------------------------------------------------------------------
# Penalties
# ----------------------------------------------------------------------------------------------------


def repeated_ngram_fraction(words: Sequence[str], ngram_size: int) -> float:
    """Share of the word n-grams that repeat an earlier one: 0 for none, close to 1 for a looping output."""
    ngrams = [tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
    if not ngrams:
        return 0.0
    return 1.0 - len(set(ngrams)) / len(ngrams)


def _duration_seconds(item: Any, cache: dict[Any, float | None], row: int) -> float | None:
    """A clip's duration, cheaply where the item says it (mono samples + rate), else by decoding it once per
    call. Rates follow `rlnf.audio` (bare arrays at 16 kHz); bad rates or clips are errors naming the row."""
    from rlnf.audio import TARGET_SAMPLING_RATE, audio_key, check_sampling_rate, load_audio

    if item is None:
        return None
    if isinstance(item, dict) and item.get("array") is not None and np.ndim(item["array"]) == 1:
        rate = item.get("sampling_rate")
        rate = TARGET_SAMPLING_RATE if rate is None else check_sampling_rate(rate, f"audio item {row}")
        return len(item["array"]) / float(rate)
    if isinstance(item, np.ndarray) and item.ndim == 1:
        return item.size / TARGET_SAMPLING_RATE

    key = audio_key(item, index=row)
    if key not in cache:
        cache[key] = len(load_audio(item, index=row)) / TARGET_SAMPLING_RATE
    return cache[key]


def _duration_value(value: Any, row: int, column: str) -> float | None:
    """A duration from the dataset: ``None`` (unknown: no duration limit for that row) or seconds >= 0.

    NaN, negative or non-numeric values are errors: silently they would switch the length limit off or on."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"row {row}: duration {value!r} in column {column!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"row {row}: duration {value!r} in column {column!r} must be a finite number >= 0 (or None)")
    return seconds


def _durations(kwargs: dict[str, Any], duration_column: str, audio_column: str, count: int) -> list[float | None]:
    """Per-row clip durations from ``duration_column``, else from the audio, else ``None``."""
    if kwargs.get(duration_column) is not None:
        values = kwargs[duration_column]
        if len(values) != count:
            raise ValueError(f"got {count} completions but {len(values)} values in column {duration_column!r}")
        return [_duration_value(value, row, duration_column) for row, value in enumerate(values)]
    audios = kwargs.get(audio_column)
    if audios is None:
        return [None] * count
    cache: dict[Any, float | None] = {}
    return [_duration_seconds(audio, cache, row) for row, audio in enumerate(audios)]


def excess_length_fraction(
    hypothesis: str,
    reference: str | None,
    duration: float | None,
    *,
    max_length_ratio: float | None,
    length_slack: int,
    chars_per_second: float | None,
) -> float:
    """How far the hypothesis overshoots its length limit, in [0, 1] (1 = twice the limit or more).

    The limit is the tightest of ``max_length_ratio * len(reference) + length_slack`` characters and
    ``chars_per_second * duration``; without a reference or duration that side imposes no limit.
    """
    limits = []
    if reference is not None and max_length_ratio is not None:
        limits.append(max_length_ratio * len(reference) + length_slack)
    if duration is not None and chars_per_second is not None:
        limits.append(max(chars_per_second * duration, float(length_slack)))
    if not limits:
        return 0.0
    return min(max(len(hypothesis) / min(limits) - 1.0, 0.0), 1.0)


def repetition_penalty(
    completions: Sequence[Any],
    *,
    ngram_size: int = 3,
    penalty: float = -1.0,
    max_length_ratio: float | None = 2.0,
    length_slack: int = 10,
    chars_per_second: float | None = 25.0,
    reference_column: str = DEFAULT_REFERENCE_COLUMN,
    duration_column: str = DEFAULT_DURATION_COLUMN,
    audio_column: str = DEFAULT_AUDIO_COLUMN,
    normalizer: Normalizer = "bambara",
    **kwargs: Any,
) -> list[float]:
    """Penalise hallucination loops: repeated word n-grams, or output far longer than the clip allows.

    Value: ``penalty * max(repetition, overshoot)`` in [``penalty``, 0], where ``repetition`` is the share of
    repeated ``ngram_size``-grams beyond the reference's own (legitimate repeats are not punished) and
    ``overshoot`` is `excess_length_fraction` (reference length, and ``chars_per_second`` x clip duration
    taken from ``duration_column`` or decoded from ``audio_column``). Set a limit to ``None`` to disable it.
    """
    if penalty > 0:
        raise ValueError(f"penalty must be <= 0, got {penalty}")
    normalize = get_normalizer(normalizer)
    hypotheses = [normalize(text) for text in completion_texts(completions)]
    raw_references = _references(kwargs, reference_column, len(hypotheses), "repetition_penalty")
    references = [None if ref is None else normalize(ref) for ref in raw_references]
    durations = [None] * len(hypotheses)
    if chars_per_second is not None:
        durations = _durations(kwargs, duration_column, audio_column, len(hypotheses))
    values = []
    for hypothesis, reference, duration in zip(hypotheses, references, durations, strict=True):
        repetition = repeated_ngram_fraction(hypothesis.split(), ngram_size)
        if reference is not None:
            repetition = max(repetition - repeated_ngram_fraction(reference.split(), ngram_size), 0.0)
        overshoot = excess_length_fraction(
            hypothesis,
            reference,
            duration,
            max_length_ratio=max_length_ratio,
            length_slack=length_slack,
            chars_per_second=chars_per_second,
        )
        values.append(penalty * max(repetition, overshoot) + 0.0)  # + 0.0: no -0.0 in logs
    return values


def empty_penalty(
    completions: Sequence[Any],
    *,
    penalty: float = -1.0,
    reference_column: str = DEFAULT_REFERENCE_COLUMN,
    normalizer: Normalizer = "bambara",
    **kwargs: Any,
) -> list[float]:
    """``penalty`` for a completion that is empty after normalisation, unless its reference is empty too."""
    normalize = get_normalizer(normalizer)
    hypotheses = completion_texts(completions)
    references = _references(kwargs, reference_column, len(hypotheses), "empty_penalty")
    values = []
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        silent_clip = reference is not None and not normalize(reference)
        values.append(penalty if not normalize(hypothesis) and not silent_clip else 0.0)
    return values


# ----------------------------------------------------------------------------------------------------
# Factories: configured, still picklable and still named after the function for TRL's logs
# ----------------------------------------------------------------------------------------------------


def make_wer_reward(
    reference_column: str = DEFAULT_REFERENCE_COLUMN, normalizer: Normalizer = "bambara"
) -> Callable[..., RewardOutput]:
    """`wer` with another reference column or normaliser (logged as ``rewards/wer/...``)."""
    return functools.partial(wer, reference_column=reference_column, normalizer=normalizer)


def make_cer_reward(
    reference_column: str = DEFAULT_REFERENCE_COLUMN, normalizer: Normalizer = "bambara"
) -> Callable[..., RewardOutput]:
    """`cer` with another reference column or normaliser (logged as ``rewards/cer/...``)."""
    return functools.partial(cer, reference_column=reference_column, normalizer=normalizer)


def make_repetition_penalty(
    ngram_size: int = 3,
    penalty: float = -1.0,
    max_length_ratio: float | None = 2.0,
    length_slack: int = 10,
    chars_per_second: float | None = 25.0,
    reference_column: str = DEFAULT_REFERENCE_COLUMN,
    duration_column: str = DEFAULT_DURATION_COLUMN,
    audio_column: str = DEFAULT_AUDIO_COLUMN,
    normalizer: Normalizer = "bambara",
) -> Callable[..., list[float]]:
    """`repetition_penalty` with other settings (logged as ``rewards/repetition_penalty/...``)."""
    if ngram_size < 1:
        raise ValueError(f"ngram_size must be >= 1, got {ngram_size}")
    if penalty > 0:
        raise ValueError(f"penalty must be <= 0, got {penalty}")
    return functools.partial(
        repetition_penalty,
        ngram_size=ngram_size,
        penalty=penalty,
        max_length_ratio=max_length_ratio,
        length_slack=length_slack,
        chars_per_second=chars_per_second,
        reference_column=reference_column,
        duration_column=duration_column,
        audio_column=audio_column,
        normalizer=normalizer,
    )


def make_empty_penalty(
    penalty: float = -1.0,
    reference_column: str = DEFAULT_REFERENCE_COLUMN,
    normalizer: Normalizer = "bambara",
) -> Callable[..., list[float]]:
    """`empty_penalty` with other settings (logged as ``rewards/empty_penalty/...``)."""
    if penalty > 0:
        raise ValueError(f"penalty must be <= 0, got {penalty}")
    return functools.partial(empty_penalty, penalty=penalty, reference_column=reference_column, normalizer=normalizer)
