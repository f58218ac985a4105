"""Synthetic scorer rows (the demo corpus itself is tested in test_demo_corpus.py)."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from rlnf.data import CORRUPTION_KINDS, corrupt_transcript, generate_sentences, make_scorer_dataset, transcript_score
from rlnf.data.synthetic import BAMBARA_ALPHABET
from rlnf.text import normalize_reward_text

BAMBARA_LETTERS = set("ɛɔɲŋ")


def levenshtein(a: str, b: str) -> int:
    """Independent character edit distance (no jiwer), to check the documented score."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


# --------------------------------------------------------------------------- synthetic scorer data


@pytest.fixture(scope="module")
def asr_rows() -> datasets.Dataset:
    texts = generate_sentences(600)[::20][:30]
    audio = [{"path": f"/nowhere/clip{i}.flac", "bytes": None} for i in range(len(texts))]
    ds = datasets.Dataset.from_dict({"audio": audio, "text": texts, "extra": list(range(len(texts)))})
    return ds.cast_column("audio", datasets.Audio(sampling_rate=16000, decode=False))


def test_scores_equal_an_independent_cer(asr_rows):
    out = make_scorer_dataset(asr_rows, hypotheses_per_clip=8, seed=3)
    assert len(out) == 8 * len(asr_rows)
    assert set(out.column_names) >= {"audio", "text", "score", "reference", "clip_id", "kind"}
    assert "extra" not in out.column_names
    for row in out:
        reference, text = normalize_reward_text(row["reference"]), normalize_reward_text(row["text"])  # as rewards do
        expected = 100 * max(0.0, 1 - levenshtein(reference, text) / len(reference))
        assert row["score"] == pytest.approx(expected, abs=1e-9)
        assert row["reference"] == asr_rows[row["clip_id"]]["text"]
        assert row["audio"] == asr_rows[row["clip_id"]]["audio"]
    assert transcript_score("ɲɔgɔn", "ɲɔgɔn") == 100.0 and transcript_score("ab", "abcdef") == 0.0


def test_scores_span_the_scale_with_exact_first_and_low_mismatches(asr_rows):
    out = make_scorer_dataset(asr_rows, hypotheses_per_clip=6, mismatch_fraction=0.3, seed=0)
    kinds, scores = np.array(out["kind"]), np.array(out["score"])
    assert list(kinds[::6]) == ["exact"] * len(asr_rows) and np.all(scores[kinds == "exact"] == 100)
    mismatches = out.filter(lambda r: r["kind"] == "mismatch")
    assert len(mismatches) > 10 and np.mean(mismatches["score"]) < 40
    assert all(r["text"] != r["reference"] and r["text"] in asr_rows["text"] for r in mismatches)
    corrupted = scores[(kinds != "exact") & (kinds != "mismatch")]
    assert corrupted.min() < 40 and corrupted.max() > 80 and corrupted.std() > 15
    for clip in range(len(asr_rows)):  # hypotheses of one clip are distinct
        texts = out["text"][clip * 6 : (clip + 1) * 6]
        assert len(set(texts)) == 6


@pytest.mark.parametrize("kind", CORRUPTION_KINDS)
def test_rate_zero_leaves_the_text_exact(kind):
    text = "Ne b'a fɛ ka ɲɔ san sugu la."
    assert corrupt_transcript(text, np.random.default_rng(0), kind, 0.0, ["malo", "jɛgɛ"]) == text


@pytest.mark.parametrize("kind", [k for k in CORRUPTION_KINDS if k != "exact"])
def test_higher_rates_damage_more(kind):
    sentences = generate_sentences(200)
    vocabulary = sorted({w for s in sentences for w in s.split()})

    def mean_score(rate: float) -> float:
        rng = np.random.default_rng(0)
        return float(
            np.mean([transcript_score(s, corrupt_transcript(s, rng, kind, rate, vocabulary)) for s in sentences])
        )

    low, mid, high = mean_score(0.05), mean_score(0.3), mean_score(0.8)
    assert 100 > low > mid > high


def test_char_substitution_rate_matches_the_edit_rate_and_uses_bambara_letters():
    text = "ɛɔɲŋ " * 200
    rng = np.random.default_rng(1)
    out = corrupt_transcript(text, rng, "char_substitution", 0.3, None)
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    changed = sum(text[i] != out[i] for i in letters) / len(letters)
    assert len(out) == len(text) and abs(changed - 0.3) < 0.05
    assert all(out[i] == " " for i, c in enumerate(text) if c == " ")
    assert set(out) - {" "} <= set(BAMBARA_ALPHABET)
    plain = corrupt_transcript("a" * 2000, rng, "char_substitution", 1.0, None)
    assert BAMBARA_LETTERS <= set(plain)


def test_shape_of_truncation_repetition_and_hallucination():
    text = "An bɛ ka foro sɛnɛ kɔ da la."
    rng = np.random.default_rng(0)
    truncated = corrupt_transcript(text, rng, "truncation", 0.5, None)
    assert text.startswith(truncated) and len(truncated) <= len(text) / 2 + 1
    looped = corrupt_transcript(text, rng, "repetition", 0.5, None)
    assert looped.startswith(text) and len(looped) >= 1.5 * len(text)
    assert looped[len(text) :].split()[-1] == text.split()[-1]
    hallucinated = corrupt_transcript(text, rng, "hallucination", 0.5, ["malo", "sogo"])
    assert text in hallucinated and set(hallucinated.split()) - set(text.split()) <= {"malo", "sogo"}


def test_scorer_data_is_deterministic_and_label_noise_only_moves_scores(asr_rows):
    a = make_scorer_dataset(asr_rows, seed=7)
    b = make_scorer_dataset(asr_rows, seed=7)
    c = make_scorer_dataset(asr_rows, seed=8)
    assert a["text"] == b["text"] and a["score"] == b["score"] and a["kind"] == b["kind"]
    assert a["text"] != c["text"]
    noisy = make_scorer_dataset(asr_rows, seed=7, label_noise=5.0)
    assert noisy["text"] == a["text"]
    clean, moved = np.array(a["score"]), np.array(noisy["score"])
    assert moved.min() >= 0 and moved.max() <= 100 and not np.allclose(clean, moved)
    inner = (clean > 20) & (clean < 80)
    assert 3 < np.std((moved - clean)[inner]) < 7


def test_audio_column_is_kept_as_stored_even_when_decodable(asr_rows):
    decodable = asr_rows.rename_column("audio", "speech").cast_column("speech", datasets.Audio(sampling_rate=16000))
    out = make_scorer_dataset(decodable, audio_column="speech", hypotheses_per_clip=2)
    assert out.features["audio"] == datasets.Audio(sampling_rate=16000)  # still decodable, never decoded here
    paths = out.data.column("audio").to_pylist()
    assert [p["path"] for p in paths] == [f"/nowhere/clip{i}.flac" for i in range(len(asr_rows)) for _ in range(2)]


def test_bad_inputs_raise_clear_errors(asr_rows):
    with pytest.raises(ValueError, match="'transcript'"):
        make_scorer_dataset(asr_rows, text_column="transcript")
    with pytest.raises(ValueError, match="'wav'"):
        make_scorer_dataset(asr_rows, audio_column="wav")
    with pytest.raises(ValueError, match="empty"):
        make_scorer_dataset(asr_rows.select([]))
    blank = datasets.Dataset.from_dict({"audio": ["a.flac", "b.flac"], "text": ["I ni ce.", "  "]})
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        make_scorer_dataset(blank)
    with pytest.raises(ValueError, match="hypotheses_per_clip"):
        make_scorer_dataset(asr_rows, hypotheses_per_clip=0)
    with pytest.raises(ValueError, match="mismatch_fraction"):
        make_scorer_dataset(asr_rows, mismatch_fraction=1.5)
    with pytest.raises(ValueError, match="unknown corruption kind"):
        corrupt_transcript("I ni ce.", np.random.default_rng(0), "shuffle", 0.2, None)
    with pytest.raises(ValueError, match="rate"):
        corrupt_transcript("I ni ce.", np.random.default_rng(0), "deletion", 1.5, None)
