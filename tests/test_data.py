"""Data builders: the Bambara demo corpus (espeak-ng synthesis) and synthetic scorer rows."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf

from rlnf.data import (
    CORRUPTION_KINDS,
    TOPICS,
    bambara_number,
    build_demo_corpus,
    corrupt_transcript,
    demo_sentences,
    load_demo_corpus,
    make_scorer_dataset,
    sentences_by_topic,
    split_sentences,
    transcript_score,
)
from rlnf.data import demo_corpus as demo_module
from rlnf.data.demo_corpus import pronunciation_text
from rlnf.data.synthetic import BAMBARA_ALPHABET

BAMBARA_LETTERS = set("ɛɔɲŋ")
SMALL = {"max_sentences": 6, "voices_per_sentence": 2, "seed": 0}
needs_espeak = pytest.mark.skipif(
    importlib.util.find_spec("espeakng_loader") is None, reason="synthesis needs rlnf[demo] (espeakng-loader)"
)


def levenshtein(a: str, b: str) -> int:
    """Independent character edit distance (no jiwer), to check the documented score."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


# --------------------------------------------------------------------------- sentences


def test_sentences_are_many_distinct_and_written_in_bambara_orthography():
    sentences = demo_sentences()
    assert len(sentences) >= 300
    assert len(set(sentences)) == len(sentences)
    assert BAMBARA_LETTERS <= set("".join(sentences))
    with_letters = sum(bool(BAMBARA_LETTERS & set(s)) for s in sentences)
    assert with_letters / len(sentences) > 0.6
    by_topic = sentences_by_topic()
    assert tuple(by_topic) == TOPICS and all(len(group) >= 30 for group in by_topic.values())
    assert sum(len(group) for group in by_topic.values()) == len(sentences)  # no sentence under two topics
    assert all(s[0].isupper() and s[-1] in ".?" for s in sentences)


def test_sentences_are_identical_across_calls_and_topic_filter_works():
    assert demo_sentences() == demo_sentences()
    assert demo_sentences(["numbers"]) == sentences_by_topic()["numbers"]
    with pytest.raises(ValueError, match="cooking"):
        demo_sentences(["cooking"])


@pytest.mark.parametrize(
    ("n", "word"),
    [(7, "wolonwula"), (11, "tan ni kelen"), (20, "mugan"), (45, "bi naani ni duuru"), (200, "kɛmɛ fila")],
)
def test_bambara_numbers(n, word):
    assert bambara_number(n) == word


def test_bambara_number_rejects_out_of_range():
    with pytest.raises(ValueError):
        bambara_number(0)


def test_pronunciation_respelling_leaves_only_ascii_for_the_swahili_voice():
    assert pronunciation_text("Ɲɔgɔn cɛ ŋaniya k'a") == "Nyogon che nganiya ka"
    assert all(pronunciation_text(s).isascii() for s in demo_sentences())


def test_splits_are_disjoint_cover_everything_and_depend_on_seed():
    sentences = demo_sentences()
    splits = split_sentences(sentences, seed=0)
    sets = {name: set(group) for name, group in splits.items()}
    assert not (
        sets["train"] & sets["validation"]
        or sets["train"] & sets["test"]
        or sets["validation"] & sets["test"]
    )
    assert set().union(*sets.values()) == set(sentences)
    assert 0.05 < len(sets["test"]) / len(sentences) < 0.15
    assert split_sentences(sentences, seed=0) == splits
    assert split_sentences(sentences, seed=1)["test"] != splits["test"]
    small = split_sentences(sentences, seed=0, max_sentences=6)
    assert [len(small[k]) for k in ("train", "validation", "test")] == [4, 1, 1]


# --------------------------------------------------------------------------- demo corpus


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    return build_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", **SMALL)


def _rows(folder: Path) -> list[dict]:
    return [
        {**json.loads(line), "split": split}
        for split in ("train", "validation", "test")
        for line in (folder / split / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    ]


@needs_espeak
def test_small_build_gives_16khz_mono_speech_of_plausible_duration(small_corpus):
    rows = _rows(small_corpus)
    assert len(rows) == 12
    for row in rows:
        path = small_corpus / row["split"] / row["file_name"]
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        audio, _ = sf.read(path, dtype="float32")
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert 0.3 < len(audio) / 16000 < 10
        assert abs(row["duration"] - len(audio) / 16000) < 1e-3
        assert np.sqrt(np.mean(audio**2)) > 0.02 and np.abs(audio).max() <= 1.0  # speech, not silence
        assert row["text"] in demo_sentences()


@needs_espeak
def test_small_build_splits_by_sentence_and_varies_voices(small_corpus):
    rows = _rows(small_corpus)
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["sentence_id"], set()).add(row["split"])
    assert len(split_of) == 6 and all(len(s) == 1 for s in split_of.values())
    for sid in split_of:
        voices = [r["voice"] for r in rows if r["sentence_id"] == sid]
        assert len(voices) == 2 and len(set(voices)) == 2 and all(v.startswith("sw+") for v in voices)


@needs_espeak
def test_load_demo_corpus_columns_and_audio_feature(small_corpus):
    corpus = load_demo_corpus(cache_dir=small_corpus)
    assert isinstance(corpus, datasets.DatasetDict) and list(corpus) == ["train", "validation", "test"]
    train = corpus["train"]
    assert {"audio", "text", "duration", "voice", "sentence_id"} <= set(train.column_names)
    feature = train.features["audio"]
    assert isinstance(feature, datasets.Audio) and feature.sampling_rate == 16000 and not feature.decode
    item = train[0]["audio"]
    assert Path(item["path"]).is_file() and sf.info(item["path"]).samplerate == 16000
    test = load_demo_corpus("test", cache_dir=small_corpus, embed_audio=True)
    assert isinstance(test, datasets.Dataset) and len(test) == 2
    audio, rate = sf.read(__import__("io").BytesIO(test[0]["audio"]["bytes"]), dtype="float32")
    assert rate == 16000 and audio.size > 0
    assert not set(train["sentence_id"]) & set(test["sentence_id"])
    with pytest.raises(ValueError, match="dev"):
        load_demo_corpus("dev", cache_dir=small_corpus)


@needs_espeak
def test_a_rebuild_draws_the_same_clips(small_corpus, tmp_path):
    """Same texts, voices, speeds and pitches; audio equal up to espeak-ng's small carried-over state."""
    again = build_demo_corpus(tmp_path / "again", **SMALL)
    first, second = _rows(small_corpus), _rows(again)
    strip = [{k: v for k, v in row.items() if k != "duration"} for row in first]
    assert strip == [{k: v for k, v in row.items() if k != "duration"} for row in second]
    for a, b in zip(first, second, strict=True):
        assert b["duration"] == pytest.approx(a["duration"], rel=0.05)


@needs_espeak
def test_cached_build_returns_without_synthesising(small_corpus, monkeypatch):
    def fail(plan):
        raise AssertionError("a cached corpus must not be synthesised again")

    monkeypatch.setattr(demo_module, "_synthesize_clip", fail)
    assert build_demo_corpus(small_corpus, **SMALL) == small_corpus
    assert len(load_demo_corpus(cache_dir=small_corpus)["train"]) == 8
    with pytest.raises(FileExistsError, match="overwrite"):
        build_demo_corpus(small_corpus, max_sentences=3)


@needs_espeak
def test_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    real = demo_module._synthesize_clip
    calls = []

    def flaky(plan):
        calls.append(plan)
        if len(calls) > 3:
            raise RuntimeError("power cut")
        return real(plan)

    monkeypatch.setattr(demo_module, "_synthesize_clip", flaky)
    with pytest.raises(RuntimeError, match="power cut"):
        build_demo_corpus(tmp_path / "corpus", **SMALL)
    assert list(tmp_path.iterdir()) == []


@needs_espeak
def test_overwrite_replaces_a_corpus_atomically(tmp_path):
    target = build_demo_corpus(tmp_path / "corpus", max_sentences=3, voices_per_sentence=1)
    assert len(_rows(target)) == 3
    build_demo_corpus(target, max_sentences=4, voices_per_sentence=1, overwrite=True)
    assert len(_rows(target)) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no temp or old folders left


def test_foreign_folder_is_not_replaced(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_demo_corpus(tmp_path / "corpus", max_sentences=3)
    assert (tmp_path / "corpus" / "mine.txt").read_text() == "keep me"


@needs_espeak
def test_load_builds_on_first_use_and_says_so(tmp_path, monkeypatch, capsys):
    real = demo_module.build_demo_corpus
    monkeypatch.setattr(demo_module, "build_demo_corpus", lambda folder: real(folder, max_sentences=3))
    corpus = load_demo_corpus(cache_dir=tmp_path / "fresh")
    assert sum(len(ds) for ds in corpus.values()) == 6
    assert "building the Bambara demo corpus (6 clips)" in capsys.readouterr().err


def test_default_cache_dir_follows_rlnf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RLNF_CACHE", str(tmp_path))
    assert demo_module.default_corpus_dir() == tmp_path / "demo_corpus_v1"


def test_missing_espeak_gives_install_hint_and_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_module, "_ENGINE", None)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # makes `import espeakng_loader` fail
    with pytest.raises(ImportError, match=r"rlnf\[demo\]"):
        build_demo_corpus(tmp_path / "corpus", max_sentences=3)
    assert not (tmp_path / "corpus").exists()


def test_espeak_is_never_imported_at_module_level():
    """espeak-ng is GPL-3: it may only be imported inside the builder functions."""
    for path in Path(demo_module.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any("espeak" in n for n in names), f"{path.name} imports espeak at module level"


# --------------------------------------------------------------------------- synthetic scorer data


@pytest.fixture(scope="module")
def asr_rows() -> datasets.Dataset:
    texts = demo_sentences()[::15][:30]
    audio = [{"path": f"/nowhere/clip{i}.flac", "bytes": None} for i in range(len(texts))]
    ds = datasets.Dataset.from_dict({"audio": audio, "text": texts, "extra": list(range(len(texts)))})
    return ds.cast_column("audio", datasets.Audio(sampling_rate=16000, decode=False))


def test_scores_equal_an_independent_cer(asr_rows):
    out = make_scorer_dataset(asr_rows, hypotheses_per_clip=8, seed=3)
    assert len(out) == 8 * len(asr_rows)
    assert set(out.column_names) >= {"audio", "text", "score", "reference", "clip_id", "kind"}
    assert "extra" not in out.column_names
    for row in out:
        expected = 100 * max(0.0, 1 - levenshtein(row["reference"], row["text"]) / len(row["reference"]))
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
    sentences = demo_sentences()[:200]
    vocabulary = sorted({w for s in sentences for w in s.split()})

    def mean_score(rate: float) -> float:
        rng = np.random.default_rng(0)
        return float(
            np.mean(
                [transcript_score(s, corrupt_transcript(s, rng, kind, rate, vocabulary)) for s in sentences]
            )
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
    decodable = asr_rows.rename_column("audio", "speech").cast_column(
        "speech", datasets.Audio(sampling_rate=16000)
    )
    out = make_scorer_dataset(decodable, audio_column="speech", hypotheses_per_clip=2)
    assert out.features["audio"] == datasets.Audio(sampling_rate=16000)  # still decodable, never decoded here
    paths = out.data.column("audio").to_pylist()
    assert [p["path"] for p in paths] == [
        f"/nowhere/clip{i}.flac" for i in range(len(asr_rows)) for _ in range(2)
    ]


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
