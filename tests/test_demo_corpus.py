"""Demo corpus v2: the Bambara grammar, the sentence split, the two acoustic domains and the cached build."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf

from rlnf.data import bambara_number, build_demo_corpus, generate_sentences, lexicon_words, load_demo_corpus
from rlnf.data import demo_corpus as demo_module
from rlnf.data.bambara_grammar import TEMPLATES
from rlnf.data.demo_corpus import (
    CORPUS_NAME,
    SOURCE_VOICES,
    SPLIT_DOMAIN,
    SPLITS,
    TARGET_RL_VOICES,
    TARGET_SNR_DB,
    TARGET_TEST_VOICES,
    degrade,
    pronunciation_text,
    split_sentences,
)

BAMBARA_LETTERS = set("ɛɔɲŋ")
SMALL = {"max_sentences": 40, "voices_per_sentence": 2, "seed": 0}
needs_espeak = pytest.mark.skipif(
    importlib.util.find_spec("espeakng_loader") is None, reason="synthesis needs rlnf[demo] (espeakng-loader)"
)


def _words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split() if w.strip(".,?!")}


# --------------------------------------------------------------------------- grammar


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return generate_sentences(6000, seed=0)


def test_grammar_has_a_large_lexicon_and_thousands_of_distinct_sentences(sentences):
    assert len(lexicon_words()) >= 400
    assert len(set(sentences)) == len(sentences) == 6000
    used = [w for s in sentences for w in _words(s)]
    assert len(set(used)) >= 400
    counts = {w: used.count(w) for w in set(used)}
    assert np.median(list(counts.values())) >= 5  # words recur: a model has to learn words, not sentences
    assert all(3 <= len(_words(s)) <= 10 for s in sentences)
    assert all(s[0].isupper() and s[-1] in ".?" for s in sentences)
    assert BAMBARA_LETTERS <= set("".join(sentences))
    assert sum(bool(BAMBARA_LETTERS & set(s)) for s in sentences) / len(sentences) > 0.6


def test_grammar_uses_every_template_and_real_markers(sentences):
    templates = {t for _, t in generate_sentences(6000, seed=0, with_templates=True)}
    assert templates == set(TEMPLATES)
    words = [_words(s) for s in sentences]
    for marker in ("bɛ", "tɛ", "ye", "ma", "ka", "kan", "wa", "jɔn", "mun", "kɔnɔ", "la", "fɛ"):
        assert sum(marker in w for w in words) >= 20, marker


def test_grammar_is_deterministic_and_seeded(sentences):
    assert generate_sentences(6000, seed=0) == sentences
    assert generate_sentences(3000, seed=0) == sentences[:3000]  # a smaller n is a prefix
    other = generate_sentences(3000, seed=1)
    assert len(set(other)) == 3000 and other != sentences[:3000]


@pytest.mark.parametrize(
    ("n", "word"),
    [(7, "wolonwula"), (11, "tan ni kelen"), (20, "mugan"), (45, "bi naani ni duuru"), (200, "kɛmɛ fila")],
)
def test_bambara_numbers(n, word):
    assert bambara_number(n) == word


def test_bambara_number_rejects_out_of_range():
    with pytest.raises(ValueError, match="bambara_number supports 1-999, got 0"):
        bambara_number(0)


def test_pronunciation_respelling_leaves_only_ascii_for_the_swahili_voice(sentences):
    assert pronunciation_text("Ɲɔgɔn cɛ ŋaniya k'a") == "Nyogon che nganiya ka"
    assert all(pronunciation_text(s).isascii() for s in sentences[:2000])


def test_full_split_is_disjoint_sized_and_tests_only_known_words(sentences):
    splits = split_sentences(sentences, seed=0)
    assert list(splits) == list(SPLITS)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"sft_train": 4400, "sft_validation": 300, "rl_train": 1000, "test": 300}
    sets = {k: set(v) for k, v in splits.items()}
    for a in SPLITS:
        for b in SPLITS:
            assert a == b or not sets[a] & sets[b], (a, b)
    assert set().union(*sets.values()) == set(sentences)
    known = set().union(*(_words(s) for s in splits["sft_train"]))
    assert all(_words(s) <= known for s in splits["test"])  # new combinations of known words
    assert split_sentences(sentences, seed=0) == splits
    assert split_sentences(sentences, seed=1)["test"] != splits["test"]


# --------------------------------------------------------------------------- degradation


def test_target_degradation_really_changes_the_signal():
    rate = 16000
    t = np.arange(rate) / rate
    clean = (0.3 * np.sin(2 * np.pi * 150 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t)
             + 0.2 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)  # fmt: skip
    noisy = degrade(clean, telephone=False, snr_db=15.0, seed=3)
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))
    assert snr == pytest.approx(15.0, abs=0.2)
    np.testing.assert_array_equal(noisy, degrade(clean, telephone=False, snr_db=15.0, seed=3))  # deterministic
    assert not np.array_equal(noisy, degrade(clean, telephone=False, snr_db=15.0, seed=4))

    phone = degrade(clean, telephone=True, snr_db=None, seed=0)
    spectrum_in, spectrum_out = np.abs(np.fft.rfft(clean)), np.abs(np.fft.rfft(phone))
    assert spectrum_out[6000] < 0.01 * spectrum_in[6000]  # 6 kHz removed (1 Hz bins)
    assert spectrum_out[150] < 0.3 * spectrum_in[150]  # below the band, attenuated
    assert spectrum_out[1000] == pytest.approx(spectrum_in[1000], rel=0.05)  # the speech band kept


# --------------------------------------------------------------------------- built corpus


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    if importlib.util.find_spec("espeakng_loader") is None:
        pytest.skip("synthesis needs rlnf[demo] (espeakng-loader)")
    return build_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", **SMALL)


def _rows(folder: Path) -> list[dict]:
    return [
        {**json.loads(line), "split": split}
        for split in SPLITS
        for line in (folder / split / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    ]


@needs_espeak
def test_small_build_gives_16khz_mono_speech_of_plausible_duration(small_corpus):
    rows = _rows(small_corpus)
    allowed = set(generate_sentences(40, seed=0))
    for row in rows:
        path = small_corpus / row["split"] / row["file_name"]
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        audio, _ = sf.read(path, dtype="float32")
        assert audio.ndim == 1 and 0.3 < len(audio) / 16000 < 10
        assert abs(row["duration"] - len(audio) / 16000) < 1e-3
        assert np.sqrt(np.mean(audio**2)) > 0.02 and np.abs(audio).max() <= 1.0  # speech, not silence
        assert row["text"] in allowed


@needs_espeak
def test_splits_are_disjoint_by_sentence_and_target_speakers_by_split(small_corpus):
    rows = _rows(small_corpus)
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["sentence_id"], set()).add(row["split"])
    assert len(split_of) == 40 and all(len(s) == 1 for s in split_of.values())
    by_split = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    assert all(by_split[s] for s in SPLITS)
    speakers = {s: {r["speaker"] for r in by_split[s]} for s in SPLITS}
    assert speakers["sft_train"] | speakers["sft_validation"] <= set(SOURCE_VOICES)
    assert speakers["rl_train"] <= set(TARGET_RL_VOICES) and speakers["test"] <= set(TARGET_TEST_VOICES)
    assert not speakers["rl_train"] & speakers["test"]
    assert not (speakers["rl_train"] | speakers["test"]) & set(SOURCE_VOICES)
    # voices_per_sentence applies to sft_train only; every held-out sentence is one clip
    per_sentence = {sid: sum(r["sentence_id"] == sid for r in rows) for sid in split_of}
    assert {per_sentence[r["sentence_id"]] for r in by_split["sft_train"]} == {2}
    assert all(per_sentence[r["sentence_id"]] == 1 for s in SPLITS[1:] for r in by_split[s])


@needs_espeak
def test_domains_are_as_declared(small_corpus):
    rows = _rows(small_corpus)
    for row in rows:
        assert row["domain"] == SPLIT_DOMAIN[row["split"]]
        if row["domain"] == "source":
            assert row["snr_db"] is None and not row["telephone"]
        else:
            assert TARGET_SNR_DB[0] <= row["snr_db"] <= TARGET_SNR_DB[1]


def test_target_plans_go_through_the_channel_and_source_plans_do_not(monkeypatch):
    rate = 16000
    clean = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    monkeypatch.setattr(demo_module, "_clean_clip", lambda plan: clean)
    plans = {p.domain: p for p in demo_module._plan(0, 40, 1)}
    expected = clean * (0.9 / np.abs(clean).max())
    np.testing.assert_allclose(demo_module._synthesize_clip(plans["source"]), expected, atol=1e-6)
    target = demo_module._synthesize_clip(plans["target"])
    residual = target / np.abs(target).max() - expected / 0.9
    assert np.sqrt(np.mean(residual**2)) > 0.02  # noise and/or filtering, not a rescaled copy


@needs_espeak
def test_corpus_info_counts(small_corpus):
    info = json.loads((small_corpus / "corpus_info.json").read_text(encoding="utf-8"))
    rows = _rows(small_corpus)
    assert info["name"] == CORPUS_NAME and info["sentences"] == 40
    for split in SPLITS:
        mine = [r for r in rows if r["split"] == split]
        entry = info["splits"][split]
        assert entry["clips"] == len(mine) == info["clips"][split]
        assert entry["sentences"] == len({r["sentence_id"] for r in mine}) and entry["domain"] == SPLIT_DOMAIN[split]
        assert entry["hours"] == pytest.approx(sum(r["duration"] for r in mine) / 3600, abs=1e-3)
        assert entry["lexicon"] == len(set().union(*(_words(r["text"]) for r in mine)))
    assert info["domains"]["source"]["clips"] + info["domains"]["target"]["clips"] == len(rows)
    assert info["grammar_lexicon"] >= 400


@needs_espeak
def test_load_demo_corpus_columns_and_audio_feature(small_corpus):
    corpus = load_demo_corpus(cache_dir=small_corpus)
    assert isinstance(corpus, datasets.DatasetDict) and list(corpus) == list(SPLITS)
    train = corpus["sft_train"]
    assert {"audio", "text", "sentence_id", "speaker", "domain", "duration", "voice"} <= set(train.column_names)
    feature = train.features["audio"]
    assert isinstance(feature, datasets.Audio) and feature.sampling_rate == 16000 and not feature.decode
    item = train[0]["audio"]
    assert Path(item["path"]).is_file() and sf.info(item["path"]).samplerate == 16000
    test = load_demo_corpus("test", cache_dir=small_corpus, embed_audio=True)
    assert isinstance(test, datasets.Dataset) and set(test["domain"]) == {"target"}
    audio, rate = sf.read(io.BytesIO(test[0]["audio"]["bytes"]), dtype="float32")
    assert rate == 16000 and audio.size > 0
    assert not set(train["sentence_id"]) & set(test["sentence_id"])
    with pytest.raises(ValueError, match="validation"):
        load_demo_corpus("validation", cache_dir=small_corpus)  # the v1 name is gone


@needs_espeak
def test_a_rebuild_draws_the_same_clips(small_corpus, tmp_path):
    """Same texts, speakers, speeds, pitches and channels; audio equal up to espeak-ng's carried-over state."""
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
        build_demo_corpus(tmp_path / "corpus", max_sentences=12)
    assert list(tmp_path.iterdir()) == []


@needs_espeak
def test_overwrite_replaces_a_corpus_atomically(tmp_path):
    target = build_demo_corpus(tmp_path / "corpus", max_sentences=3)
    assert len(_rows(target)) == 3
    build_demo_corpus(target, max_sentences=4, overwrite=True)
    assert len(_rows(target)) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no temp or old folders left


def test_foreign_folder_is_not_replaced(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="exists and is not a demo corpus; pass overwrite=True"):
        build_demo_corpus(tmp_path / "corpus", max_sentences=3)
    assert (tmp_path / "corpus" / "mine.txt").read_text() == "keep me"


@needs_espeak
def test_load_builds_on_first_use_and_says_so(tmp_path, monkeypatch, capsys):
    real = demo_module.build_demo_corpus
    monkeypatch.setattr(demo_module, "build_demo_corpus", lambda folder: real(folder, max_sentences=8))
    corpus = load_demo_corpus(cache_dir=tmp_path / "fresh")
    assert sum(len(ds) for ds in corpus.values()) == 8
    assert "building the Bambara demo corpus v2 (8 clips)" in capsys.readouterr().err


def test_default_cache_dir_follows_rlnf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RLNF_CACHE", str(tmp_path))
    assert demo_module.default_corpus_dir() == tmp_path / CORPUS_NAME


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
