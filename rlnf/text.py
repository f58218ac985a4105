"""The one text normalisation of rlnf's rewards, below every consumer: wer/cer, the penalties, evaluation and
the reward model's processor (so a capital Ɛ is not an unknown piece there while wer/cer see it as ɛ).

``normalize_reward_text`` = `bambara_normalize`: Bambara-aware (contractions expanded, legacy spellings mapped
to ɛ ɔ ɲ ŋ, digits spelled out in Bambara, tone marks, case and punctuation dropped) via the
``bambara-text-normalizer`` package (a dependency), or the small Unicode fallback `basic_normalize` without it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

Normalizer = str | Callable[[str], str] | None

_PUNCTUATION = re.compile(r"[^\w\s']|_")
_SPACES = re.compile(r"\s+")
_TONES = {"\u0300", "\u0301", "\u0302", "\u0304", "\u030c"}


@functools.lru_cache(maxsize=16384)  # TRL repeats each reference G times; hypotheses repeat too
def basic_normalize(text: str) -> str:
    """Fallback normaliser: NFC, lower case, tone marks and punctuation removed, whitespace collapsed.

    Keeps the Bambara letters ɛ ɔ ɲ ŋ (they are word characters) and apostrophes (contractions such as b'a).
    """
    decomposed = unicodedata.normalize("NFD", text.lower().replace("\u2019", "'"))
    text = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONES))
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


@functools.lru_cache(maxsize=1)
def _bambara_normalizer() -> Callable[[str], str]:
    """Build the package's normaliser once (it compiles a punctuation table over the whole BMP)."""
    try:
        from bambara_normalizer import create_normalizer
    except ImportError:
        return basic_normalize
    # The package's WER preset, minus `strip_repetitions`: collapsing "aaaa" to "aa" would hide exactly the
    # repetition hallucinations a reward should see. Same settings for WER and CER so the two agree.
    return create_normalizer("wer", strip_repetitions=False)


@functools.lru_cache(maxsize=16384)
def bambara_normalize(text: str) -> str:
    """Bambara-aware normalisation for scoring (see the module docstring)."""
    return _bambara_normalizer()(text)


def whitespace_normalize(text: str) -> str:
    """No normalisation beyond collapsing whitespace (``normalizer=None``)."""
    return _SPACES.sub(" ", text).strip()


_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "bambara": bambara_normalize,
    "basic": basic_normalize,
    "none": whitespace_normalize,
}


def get_normalizer(normalizer: Normalizer) -> Callable[[str], str]:
    """Resolve ``"bambara"`` / ``"basic"`` / ``"none"`` / ``None`` / a callable to a ``str -> str``."""
    if callable(normalizer):
        return normalizer
    key = "none" if normalizer is None else normalizer
    if key not in _NORMALIZERS:
        raise ValueError(f"unknown normalizer {normalizer!r}: use {sorted(_NORMALIZERS)} or a callable")
    return _NORMALIZERS[key]


def normalize_reward_text(text: str) -> str:
    """The normalisation every reward applies to transcripts (and the reward model to its input texts)."""
    return bambara_normalize(text)
