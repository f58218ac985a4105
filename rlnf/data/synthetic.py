"""Synthetic training data for the reward (scorer) model: (audio, hypothesis, score) rows from an ASR corpus.

Why: a learned reward needs transcripts of every quality for the same clip, with a score, and no human
ratings exist for Bambara here. Hypotheses are made by corrupting the reference at controlled rates
(character/word substitutions, deletions, insertions, truncation, repetition loops, hallucinated words) or
by borrowing the transcript of another clip (a mismatch: fluent text that does not match the audio).

Score (documented, the target the reward model learns)::

    score = 100 * max(0, 1 - CER(norm(reference), norm(hypothesis)))   # jiwer.cer, norm = rlnf.text.normalize_reward_text

The normalisation is the one every rlnf reward applies (lower case, no punctuation): the reward model reads
normalised text, so a score must not depend on case or punctuation it cannot see.

optionally plus Gaussian label noise (standard deviation ``label_noise`` points, clipped to [0, 100]) to
mimic disagreeing human raters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import datasets

__all__ = [
    "BAMBARA_ALPHABET",
    "CORRUPTION_KINDS",
    "corrupt_transcript",
    "character_error_rate",
    "make_scorer_dataset",
    "score_hypotheses",
    "transcript_score",
]

BAMBARA_ALPHABET = "abcdeɛfghijklmnɲŋoɔprstuwyz"
# Letters an ASR model (or a writer without a Bambara keyboard) plausibly confuses.
_CONFUSABLE = {
    "ɛ": "e",
    "e": "ɛ",
    "ɔ": "o",
    "o": "ɔ",
    "ɲ": "n",
    "ŋ": "n",
    "n": "ɲ",
    "c": "k",
    "j": "y",
    "u": "o",
}
CORRUPTION_KINDS = (
    "exact",
    "char_substitution",
    "word_substitution",
    "deletion",
    "insertion",
    "truncation",
    "repetition",
    "hallucination",
    "mixed",
)
_MIXABLE = ("char_substitution", "word_substitution", "deletion", "insertion")


def character_error_rate(reference: str, hypothesis: str) -> float:
    """jiwer's CER of the normalised strings (`rlnf.text.normalize_reward_text`); the reference must not be empty."""
    import jiwer

    from ..text import normalize_reward_text

    reference, hypothesis = normalize_reward_text(reference), normalize_reward_text(hypothesis)
    if not reference:
        raise ValueError("a score needs a non-empty (normalised) reference")
    return float(jiwer.cer(reference, hypothesis))


def transcript_score(reference: str, hypothesis: str) -> float:
    """100 * max(0, 1 - CER): 100 for an exact transcript, 0 once the edits outnumber the reference letters."""
    return 100.0 * max(0.0, 1.0 - character_error_rate(reference, hypothesis))


def _substitute_char(char: str, rng: np.random.Generator) -> str:
    lower = char.lower()
    if lower in _CONFUSABLE and rng.random() < 0.5:
        new = _CONFUSABLE[lower]
    else:
        new = lower
        while new == lower:
            new = BAMBARA_ALPHABET[rng.integers(len(BAMBARA_ALPHABET))]
    return new.upper() if char.isupper() else new


def _char_substitution(text: str, rate: float, rng: np.random.Generator) -> str:
    hits = rng.random(len(text)) < rate
    return "".join(_substitute_char(c, rng) if hit and c.isalpha() else c for c, hit in zip(text, hits, strict=True))


def _other_word(word: str, vocabulary: Sequence[str], rng: np.random.Generator) -> str:
    choices = [w for w in vocabulary if w != word]
    if not choices:  # a one-word vocabulary: misspell instead
        return _char_substitution(word, 1.0, rng)
    return choices[rng.integers(len(choices))]


def _words_until(vocabulary: Sequence[str], n_chars: float, rng: np.random.Generator) -> list[str]:
    """Random words whose total length (with spaces) reaches ``n_chars``; at least one word."""
    words: list[str] = []
    while not words or sum(len(w) + 1 for w in words) < n_chars:
        words.append(vocabulary[rng.integers(len(vocabulary))])
    return words


def _repetition(words: list[str], n_chars: float, rng: np.random.Generator) -> list[str]:
    """A decoder loop: the last 1-3 words repeated until about ``n_chars`` characters are added."""
    span = words[-int(rng.integers(1, min(3, len(words)) + 1)) :]
    added: list[str] = []
    while not added or sum(len(w) + 1 for w in added) < n_chars:
        added.extend(span)
    return words + added


def _apply(kind: str, text: str, rate: float, vocabulary: Sequence[str], rng: np.random.Generator) -> str:
    words = text.split()
    if kind == "char_substitution":
        return _char_substitution(text, rate, rng)
    if kind == "word_substitution":
        return " ".join(_other_word(w, vocabulary, rng) if rng.random() < rate else w for w in words)
    if kind == "deletion":
        return " ".join(w for w in words if rng.random() >= rate)
    if kind == "insertion":
        out: list[str] = []
        for w in words:
            out.append(w)
            if rng.random() < rate:
                out.append(vocabulary[rng.integers(len(vocabulary))])
        return " ".join(out)
    if kind == "truncation":
        return text[: round(len(text) * (1.0 - rate))].rstrip()
    if kind == "repetition":
        return " ".join(_repetition(words, rate * len(text), rng))
    if kind == "hallucination":
        extra = _words_until(vocabulary, rate * len(text), rng)
        return " ".join(words + extra if rng.random() < 0.5 else extra + words)
    # mixed: two word/character error types at half the rate each, like real ASR output
    first, second = rng.choice(len(_MIXABLE), size=2, replace=False)
    once = _apply(_MIXABLE[first], text, rate / 2, vocabulary, rng)
    return _apply(_MIXABLE[second], once, rate / 2, vocabulary, rng) if once.strip() else once


def corrupt_transcript(
    text: str,
    rng: np.random.Generator | int,
    kind: str,
    rate: float,
    vocabulary: Sequence[str] | None = None,
) -> str:
    """Return ``text`` damaged by one kind of error at ``rate`` (0 leaves it unchanged, 1 is the most damage).

    Kinds: ``char_substitution`` (each letter replaced with probability ``rate``, favouring Bambara
    confusions such as ɛ/e, ɔ/o, ɲ/n), ``word_substitution``/``deletion``/``insertion`` (per word, with
    probability ``rate``), ``truncation`` (drops the last ``rate`` fraction of characters), ``repetition``
    (a decoder loop adding about ``rate * len(text)`` characters), ``hallucination`` (about as many invented
    words before or after), ``mixed`` (two of the per-word/letter kinds at ``rate / 2``) and ``exact``.
    Words for substitutions and insertions come from ``vocabulary`` (default: the words of ``text``).
    """
    if kind not in CORRUPTION_KINDS:
        raise ValueError(f"unknown corruption kind {kind!r}; choose from {list(CORRUPTION_KINDS)}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    if kind == "exact" or rate == 0.0 or not text.strip():
        return text
    vocab = list(vocabulary) if vocabulary else text.split()
    return _apply(kind, text, rate, vocab, rng)


def _check_inputs(
    dataset: datasets.Dataset, text_column: str, audio_column: str, hypotheses_per_clip: int,
    mismatch_fraction: float, label_noise: float,
) -> None:  # fmt: skip
    for name, column in (("text_column", text_column), ("audio_column", audio_column)):
        if column not in dataset.column_names:
            raise ValueError(f"{name} {column!r} is not a column of the dataset (columns: {dataset.column_names})")
    if len(dataset) == 0:
        raise ValueError("make_scorer_dataset needs at least one clip; the dataset is empty")
    if hypotheses_per_clip < 1:
        raise ValueError(f"hypotheses_per_clip must be >= 1, got {hypotheses_per_clip}")
    if not 0.0 <= mismatch_fraction <= 1.0:
        raise ValueError(f"mismatch_fraction must be in [0, 1], got {mismatch_fraction}")
    if label_noise < 0:
        raise ValueError(f"label_noise must be >= 0, got {label_noise}")


def _mismatch(references: list[str], index: int, rng: np.random.Generator) -> str | None:
    """The transcript of a random other clip whose reference differs; None when every reference is the same."""
    own = references[index]
    for _ in range(20):
        other = references[int(rng.integers(len(references)))]
        if other != own:
            return other
    others = [r for r in references if r != own]
    return others[int(rng.integers(len(others)))] if others else None


def _hypotheses(
    reference: str, index: int, references: list[str], vocabulary: list[str], count: int,
    mismatch_fraction: float, max_rate: float, rng: np.random.Generator,
) -> list[tuple[str, str, float]]:  # fmt: skip
    """(hypothesis, kind, rate) triples for one clip: the exact reference first, then distinct damaged ones."""
    out = [(reference, "exact", 0.0)]
    corruptions = [k for k in CORRUPTION_KINDS if k != "exact"]
    while len(out) < count:
        for _attempt in range(5):  # retry draws that reproduce an earlier hypothesis of this clip
            mismatch = _mismatch(references, index, rng) if rng.random() < mismatch_fraction else None
            if mismatch is not None:
                candidate = (mismatch, "mismatch", 1.0)
            else:
                kind = corruptions[int(rng.integers(len(corruptions)))]
                rate = float(rng.uniform(0.02, max_rate))
                candidate = (corrupt_transcript(reference, rng, kind, rate, vocabulary), kind, rate)
            if all(candidate[0] != h for h, _, _ in out):
                break
        out.append(candidate)
    return out


def make_scorer_dataset(
    dataset: datasets.Dataset,
    *,
    text_column: str = "text",
    audio_column: str = "audio",
    hypotheses_per_clip: int = 6,
    mismatch_fraction: float = 0.15,
    label_noise: float = 0.0,
    seed: int = 0,
    max_rate: float = 0.6,
) -> datasets.Dataset:
    """Rows ``audio, text (hypothesis), score, reference, clip_id, kind, rate, cer`` for reward-model training.

    Each clip gets ``hypotheses_per_clip`` rows: its exact reference (so every clip shows the top of the
    scale), then hypotheses that are, with probability ``mismatch_fraction``, another clip's transcript and
    otherwise the reference corrupted by a random kind at a rate drawn uniformly from [0.02, ``max_rate``].
    ``score`` follows the module docstring; ``cer`` is its noise-free CER (normalised strings). ``clip_id`` is the clip's row
    index in ``dataset``. The audio column is copied as stored (never decoded). Deterministic for a seed;
    label noise uses its own generator, so the hypotheses do not depend on ``label_noise``.
    """
    import datasets as hf_datasets

    _check_inputs(dataset, text_column, audio_column, hypotheses_per_clip, mismatch_fraction, label_noise)
    references = [str(t) for t in dataset[text_column]]
    empty = [i for i, r in enumerate(references) if not r.strip()]
    if empty:
        raise ValueError(f"rows {empty[:10]} have an empty {text_column!r}: a score needs a reference")
    vocabulary = sorted({w for r in references for w in r.split()})
    rng = np.random.default_rng([seed, 0])
    noise_rng = np.random.default_rng([seed, 1])
    columns: dict[str, list] = {k: [] for k in ("text", "score", "reference", "clip_id", "kind", "rate", "cer")}
    for index, reference in enumerate(references):
        triples = _hypotheses(
            reference, index, references, vocabulary, hypotheses_per_clip, mismatch_fraction, max_rate, rng
        )
        for hypothesis, kind, rate in triples:
            cer = character_error_rate(reference, hypothesis)
            score = 100.0 * max(0.0, 1.0 - cer)
            if label_noise > 0:
                score = float(np.clip(score + noise_rng.normal(0.0, label_noise), 0.0, 100.0))
            for key, value in zip(columns, (hypothesis, score, reference, index, kind, rate, cer), strict=True):
                columns[key].append(value)
    # Arrow-level select + add_column: the audio column keeps its feature type and is never decoded/encoded.
    out = dataset.select_columns([audio_column]).select(np.repeat(np.arange(len(references)), hypotheses_per_clip))
    if audio_column != "audio":
        out = out.rename_column(audio_column, "audio")
    types = {"text": "string", "score": "float64", "reference": "string", "clip_id": "int64", "kind": "string",
             "rate": "float64", "cer": "float64"}  # fmt: skip
    for key, values in columns.items():
        out = out.add_column(key, values, feature=hf_datasets.Value(types[key]))
    return out.flatten_indices()


def score_hypotheses(
    dataset: datasets.Dataset,
    hypotheses: Sequence[Sequence[str]],
    *,
    text_column: str = "text",
    audio_column: str = "audio",
    kind: str = "policy",
    rate: float = 0.0,
) -> datasets.Dataset:
    """Scorer rows for given hypotheses (e.g. an ASR policy's own samples), one list per clip of ``dataset``,
    with the same columns and score as `make_scorer_dataset` (score = 100 * max(0, 1 - CER) against the clip's
    reference, so the two kinds of rows mix in one training set)."""
    import datasets as hf_datasets

    if len(hypotheses) != len(dataset):
        raise ValueError(f"got hypotheses for {len(hypotheses)} clips but the dataset has {len(dataset)}")
    references = [str(t) for t in dataset[text_column]]
    columns: dict[str, list] = {k: [] for k in ("text", "score", "reference", "clip_id", "kind", "rate", "cer")}
    clips = []
    for index, (reference, texts) in enumerate(zip(references, hypotheses, strict=True)):
        if not reference.strip():
            raise ValueError(f"row {index} has an empty {text_column!r}: a score needs a reference")
        for hypothesis in texts:
            if not isinstance(hypothesis, str):
                raise ValueError(f"clip {index}: hypothesis {hypothesis!r} is not a string")
            cer = character_error_rate(reference, hypothesis)
            values = (hypothesis, 100.0 * max(0.0, 1.0 - cer), reference, index, kind, float(rate), cer)
            for key, value in zip(columns, values, strict=True):
                columns[key].append(value)
            clips.append(index)
    out = dataset.select_columns([audio_column]).select(clips)
    if audio_column != "audio":
        out = out.rename_column(audio_column, "audio")
    types = {"text": "string", "score": "float64", "reference": "string", "clip_id": "int64", "kind": "string",
             "rate": "float64", "cer": "float64"}  # fmt: skip
    for key, values in columns.items():
        out = out.add_column(key, values, feature=hf_datasets.Value(types[key]))
    return out.flatten_indices()
