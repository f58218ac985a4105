"""Reward functions for TRL: reference rewards (wer/cer/penalties), AudioTextReward and the name registry."""

from __future__ import annotations

import io
import math
import pickle
import re
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from trl.trainer.utils import get_callable_name

from rlnf.audio import audio_key
from rlnf.rewards.audio_text_reward import AudioTextReward, balanced_slices, default_device, group_clips
from rlnf.rewards.registry import REWARD_FUNCS, get_reward_funcs, resolve_reward_funcs
from rlnf.rewards.transcript_rewards import (
    bambara_normalize,
    basic_normalize,
    cer,
    completion_texts,
    empty_penalty,
    make_cer_reward,
    make_empty_penalty,
    make_repetition_penalty,
    make_wer_reward,
    repeated_ngram_fraction,
    repetition_penalty,
    wer,
)
from rlnf.testing import sine_clip, tiny_reward_model

# ----------------------------------------------------------------------------------------------------
# Reference rewards
# ----------------------------------------------------------------------------------------------------

# Already normalised pairs (lower case, no punctuation, no digits), so jiwer sees what `wer` sees.
PAIRS = [
    ("i ni ce", "i ni ce"),
    ("a bɛ so kɔnɔ", "a bɛ so kɔ"),
    ("muso ni cɛ bɛ baara la", "muso cɛ bɛ baara la sisan"),
    ("ne tɔgɔ ye fanta ye", "tɔgɔ"),
    ("den fila", "den fila bɛ yen ka taa sugu la"),  # WER > 1: clipped to reward 0
    ("ŋaniya ka ɲi", ""),
]


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def edit_distance(reference: list, hypothesis: list) -> int:
    """Levenshtein distance by the textbook dynamic programme (independent of jiwer, which `wer` uses)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


@pytest.mark.parametrize(("reward", "split"), [(wer, str.split), (cer, list)])
def test_error_rate_rewards_match_an_independent_edit_distance(reward, split):
    references, hypotheses = zip(*PAIRS, strict=True)
    got = reward(list(hypotheses), text=list(references))
    expected = [max(0.0, 1.0 - edit_distance(split(r), split(h)) / len(split(r))) for r, h in PAIRS]
    assert got == pytest.approx(expected, abs=1e-12)


def test_error_rate_rewards_by_hand():
    references, hypotheses = zip(*PAIRS, strict=True)
    # 0 edits; 1 of 4 words; 2 of 6 (drop "ni", add "sisan"); 4 of 5; 6 insertions on 2 words (clipped); all.
    assert wer(list(hypotheses), text=list(references)) == pytest.approx([1.0, 0.75, 4 / 6, 0.2, 0.0, 0.0])
    # "a bɛ so kɔnɔ" -> "a bɛ so kɔ": 2 deletions in 12 characters.
    assert cer(["a bɛ so kɔ"], text=["a bɛ so kɔnɔ"]) == [pytest.approx(1 - 2 / 12)]


def test_known_values():
    assert wer(["a bɛ so kɔ"], text=["a bɛ so kɔnɔ"]) == [0.75]
    assert cer(["abc"], text=["abd"]) == [pytest.approx(2 / 3)]


def test_normalisation_case_punctuation_numbers_contractions():
    assert wer(["A bɛ SO kɔnɔ!"], text=["a bɛ so kɔnɔ"]) == [1.0]
    assert wer(["« I ni ce », a ko."], text=["i ni ce a ko"]) == [1.0]
    assert wer(["den 2 bɛ yen"], text=["den fila bɛ yen"]) == [1.0]  # digits spelled out in Bambara
    assert wer(["b'a fɔ"], text=["bɛ a fɔ"]) == [1.0]  # contraction expanded
    assert wer(["i ni cé"], text=["i ni ce"]) == [1.0]  # tone marks dropped
    # Bambara letters are kept, and stay distinct from their Latin neighbours.
    assert bambara_normalize("ƐƆƝŊ ɛɔɲŋ") == "ɛɔɲŋ ɛɔɲŋ"
    assert basic_normalize("ƐƆƝŊ, ɛɔɲŋ!") == "ɛɔɲŋ ɛɔɲŋ"
    assert wer(["so kono"], text=["so kɔnɔ"]) == [0.5]
    # Repeated characters are NOT collapsed: a looping output must stay visible to the reward.
    assert bambara_normalize("aaaaaa") == "aaaaaa"


def test_normalizer_options():
    assert wer(["A bɛ so"], text=["a bɛ so"], normalizer=None) == [pytest.approx(2 / 3)]
    assert wer(["A bɛ so"], text=["a bɛ so"], normalizer=str.lower) == [1.0]
    assert wer(["A, bɛ so"], text=["a bɛ so"], normalizer="basic") == [1.0]
    with pytest.raises(ValueError, match="unknown normalizer"):
        wer(["a"], text=["a"], normalizer="klingon")


def test_none_where_there_is_no_reference():
    assert wer(["a", "b"]) == [None, None]
    assert cer(["a", "b"], text=["a", None]) == [1.0, None]
    custom = make_wer_reward(reference_column="transcript")
    assert custom(["a b"], transcript=["a b"], text=["zzz"]) == [1.0]
    assert custom(["a b"], text=["a b"]) == [None]


def test_empty_reference_is_silence():
    assert wer(["", "a"], text=["", " . "]) == [1.0, 0.0]
    assert cer([""], text=[""]) == [1.0]


def test_reference_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 completions but 1 values in column 'text'"):
        wer(["a", "b"], text=["a"])


def test_both_completion_formats_give_the_same_rewards():
    references = [ref for ref, _ in PAIRS]
    plain = [hyp for _, hyp in PAIRS]
    conversational = [chat(hyp) for hyp in plain]
    for reward in (wer, cer, repetition_penalty, empty_penalty):
        assert reward(conversational, text=references) == reward(plain, text=references)
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "c"}]}]
    assert completion_texts([chat("a"), "b", parts]) == ["a", "b", "c"]


def test_non_string_completion_names_its_index():
    with pytest.raises(TypeError, match="completion 1"):
        wer(["a", 3], text=["a", "b"])
    with pytest.raises(TypeError, match="completion 0"):
        completion_texts([[{"role": "assistant", "content": None}]])


def test_repetition_penalty():
    loop = "i ni ce " * 10
    assert repeated_ngram_fraction("a b c d".split(), 3) == 0.0
    assert repeated_ngram_fraction("a b c a b c".split(), 3) == pytest.approx(0.25)  # abc bca cab abc
    clean, looping = repetition_penalty(["i ni ce", loop], text=["i ni ce", "i ni ce"])
    assert clean == 0.0
    assert looping == -1.0  # 79 characters against a 2 x 7 + 10 = 24-character limit: capped
    # The repetition alone: 28 trigrams, 3 distinct.
    only_repeats = make_repetition_penalty(max_length_ratio=None, chars_per_second=None)
    assert only_repeats([loop], text=["i ni ce"]) == [pytest.approx(-(1 - 3 / 28))]
    # Repeats that the reference itself has are not punished.
    assert repetition_penalty(["a b c a b c"], text=["a b c a b c"]) == [0.0]
    # Without a reference, only the repeated n-grams count.
    assert repetition_penalty(["a b c a b c"]) == [pytest.approx(-0.25)]
    half = make_repetition_penalty(penalty=-0.5, ngram_size=2)
    assert half(["a b a b a b"]) == [pytest.approx(-0.5 * 0.6)]


def test_length_penalty_from_reference_and_duration():
    long_text = "kɔgɔ ni tulu bɛ feere yan sisan ani sini fana"  # no repeated n-gram
    size = len(long_text)  # 45 characters
    # Limit 2 x reference (7 chars) + 10 slack = 24 characters.
    assert repetition_penalty([long_text], text=["i ni ce"]) == [pytest.approx(-(size / 24 - 1))]
    # No reference: 25 chars/s x 1 s limits to 25 characters.
    assert repetition_penalty([long_text], duration=[1.0]) == [pytest.approx(-(size / 25 - 1))]
    # Duration read from the audio when there is no duration column.
    audio = {"array": np.zeros(16000, dtype=np.float32), "sampling_rate": 16000}
    assert repetition_penalty([long_text], audio=[audio]) == [pytest.approx(-(size / 25 - 1))]
    assert repetition_penalty([long_text], duration=[10.0]) == [0.0]
    assert repetition_penalty([long_text * 3], duration=[1.0]) == [-1.0]  # capped at the full penalty
    no_limits = make_repetition_penalty(max_length_ratio=None, chars_per_second=None)
    assert no_limits([long_text], text=["i ni ce"], duration=[1.0]) == [0.0]


def test_duration_from_audio_files(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, sine_clip(2.0), 16000)
    long_text = "x" * 100
    assert repetition_penalty([long_text] * 2, audio=[str(path), str(path)]) == [pytest.approx(-1.0)] * 2
    assert repetition_penalty(["x" * 60], audio=[str(path)]) == [pytest.approx(-(60 / 50 - 1))]


def test_empty_penalty():
    assert empty_penalty(["", " . ", "a"], text=["i", "ce", "a"]) == [-1.0, -1.0, 0.0]
    assert empty_penalty([""], text=[""]) == [0.0]  # silence transcribed as silence
    assert empty_penalty([chat("")]) == [-1.0]
    assert make_empty_penalty(penalty=-0.25)([""]) == [-0.25]
    with pytest.raises(ValueError, match="penalty must be <= 0"):
        make_empty_penalty(penalty=1.0)


@pytest.mark.parametrize(
    ("func", "name"),
    [
        (wer, "wer"),
        (cer, "cer"),
        (repetition_penalty, "repetition_penalty"),
        (empty_penalty, "empty_penalty"),
        (make_wer_reward("transcript"), "wer"),
        (make_cer_reward(normalizer="basic"), "cer"),
        (make_repetition_penalty(ngram_size=4), "repetition_penalty"),
        (make_empty_penalty(-0.5), "empty_penalty"),
    ],
)
def test_reference_rewards_pickle_and_keep_their_trl_name(func, name):
    assert get_callable_name(func) == name
    clone = pickle.loads(pickle.dumps(func))
    kwargs = {"text": ["a bɛ so", "i"], "transcript": ["a bɛ so", "i"]}
    assert clone(["a bɛ", ""], **kwargs) == func(["a bɛ", ""], **kwargs)


# ----------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------


def test_registry_builds_named_rewards_with_weights():
    funcs, weights = get_reward_funcs(["wer", "cer", "empty_penalty"], weights=[1, 0.5, 2])
    assert [get_callable_name(f) for f in funcs] == ["wer", "cer", "empty_penalty"]
    assert weights == [1.0, 0.5, 2.0]
    assert get_reward_funcs(["wer"])[1] == [1.0]
    assert set(REWARD_FUNCS) == {"reward_model", "wer", "cer", "repetition_penalty", "empty_penalty"}


def test_registry_options_shared_and_per_reward():
    funcs, _ = get_reward_funcs(
        ["wer", "repetition_penalty"], reference_column="transcript", repetition_penalty={"penalty": -0.5}
    )
    assert funcs[0](["a b"], transcript=["a b"]) == [1.0]
    assert funcs[1](["a b c a b c"], transcript=["x"], duration=[60.0]) == [pytest.approx(-0.125)]


def test_registry_errors():
    known = "['cer', 'empty_penalty', 'repetition_penalty', 'reward_model', 'wer']"
    with pytest.raises(ValueError) as error:
        get_reward_funcs(["bleu"])
    assert str(error.value).startswith(f"unknown reward 'bleu'; known rewards: {known}. Names are never looked up")
    with pytest.raises(
        ValueError, match=re.escape(f"unknown reward 'werr' (did you mean 'wer'?); known rewards: {known}")
    ):
        get_reward_funcs(["cer", "werr"])
    with pytest.raises(ValueError, match=re.escape("unknown reward 'reward-model' (did you mean 'reward_model'?)")):
        get_reward_funcs(["reward-model"], reward_model_path="demo")
    with pytest.raises(ValueError, match="^reward 1 must be a reward name or a callable, got NoneType$"):
        get_reward_funcs(["wer", None])
    with pytest.raises(ValueError, match=re.escape("got 2 weights for 1 rewards ['wer']")):
        get_reward_funcs(["wer"], weights=[1, 2])
    with pytest.raises(
        ValueError,
        match=re.escape("no reward takes the options ['refrence_column'] (did you mean 'reference_column'?)"),
    ):
        get_reward_funcs(["wer"], refrence_column="typo")
    # an option only another known reward takes is passed over, so recipes can pass their columns blindly
    funcs, _ = get_reward_funcs(["wer"], audio_column="audio", reference_column="ref")
    assert funcs[0](["a b"], ref=["a b"]) == [1.0]
    with pytest.raises(ValueError, match=re.escape("reward 'wer' takes no ['ngram_size']")):
        get_reward_funcs(["wer"], wer={"ngram_size": 3})
    with pytest.raises(ValueError, match=re.escape("needs reward_model_path=<a local folder, a hub id, or 'demo'>")):
        get_reward_funcs(["reward_model"])
    with pytest.raises(ValueError, match="reward 'wer' is listed twice"):
        get_reward_funcs(["wer", "wer"])


def test_typo_fails_before_any_reward_is_built(monkeypatch):
    built = []
    monkeypatch.setitem(REWARD_FUNCS, "wer", lambda **kw: built.append(kw) or (lambda completions, **k: []))
    with pytest.raises(ValueError, match="no reward takes"):
        get_reward_funcs(["wer"], normaliser="bambara")
    assert built == []


def test_one_resolver_under_two_names_and_single_names():
    assert resolve_reward_funcs is get_reward_funcs
    funcs, weights = resolve_reward_funcs("cer", [2])
    assert [get_callable_name(f) for f in funcs] == ["cer"] and weights == [2.0]


def test_reward_model_resolves_demo_by_name():
    funcs, _ = resolve_reward_funcs(["reward_model", "wer"], reward_model_path="demo", name="rm")
    assert isinstance(funcs[0], AudioTextReward) and funcs[0].__name__ == "rm"


def test_registry_passes_callables_through():
    def my_reward(completions, **kwargs):
        return [0.0] * len(completions)

    funcs, weights = get_reward_funcs([my_reward, "wer"])
    assert funcs[0] is my_reward and weights == [1.0, 1.0]


# ----------------------------------------------------------------------------------------------------
# AudioTextReward
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["late", "cross_attention"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"reward-{request.param}")
    model, processor = tiny_reward_model(folder, fusion_type=request.param)
    return model, processor, folder


@pytest.fixture(scope="module")
def wav_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wavs")
    paths = []
    for i, seconds in enumerate([0.8, 1.3, 0.5]):
        path = folder / f"clip{i}.wav"
        sf.write(path, sine_clip(seconds, 200 + 100 * i, seed=i), 16000)
        paths.append(str(path))
    return paths


def wav_bytes(waveform: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, rate, format="WAV")
    return buffer.getvalue()


def trl_batch(wav_paths, group: int = 3):
    """Rows as TRL passes them: each clip repeated `group` times (in several forms), one completion each."""
    clips = [
        wav_paths[0],
        {"array": sine_clip(1.1, 440, sampling_rate=8000, seed=5), "sampling_rate": 8000},
        sine_clip(0.9, 300, seed=7),
        wav_bytes(sine_clip(0.7, 250, seed=9)),
    ]
    texts = ["i ni ce", "a bɛ so kɔnɔ", "", "i ni ce", "muso ni cɛ bɛ baara la sisan", "ŋaniya ka ɲi"]
    audios, completions = [], []
    for c, clip in enumerate(clips):
        for g in range(group):
            audios.append(clip)
            completions.append(texts[(c + 2 * g) % len(texts)])
    return audios, completions


def pairwise_scores(model, processor, audios, texts) -> list[float]:
    """The reference: the model on each (clip, text) pair alone, through the processor."""
    with torch.no_grad():
        pairs = zip(audios, texts, strict=True)
        return [float(model(**processor(audios=[a], texts=[t])).logits[0]) for a, t in pairs]


def test_scores_equal_the_model_pair_by_pair(tiny, wav_paths):
    model, processor, _ = tiny
    audios, completions = trl_batch(wav_paths)
    reward = AudioTextReward(model, processor, batch_size=2, device="cpu")  # exercises chunking + padding
    got = reward(prompts=[""] * len(completions), completions=completions, audio=audios)
    expected = pairwise_scores(model, processor, audios, completions)
    assert got == pytest.approx(expected, abs=1e-5)
    assert len(set(np.round(expected, 6))) > 3  # the comparison is not vacuous


def test_scale_offset_and_both_completion_formats(tiny, wav_paths):
    model, processor, _ = tiny
    audios, completions = trl_batch(wav_paths, group=2)
    plain = AudioTextReward(model, processor, device="cpu")(completions=completions, audio=audios)
    conversational = AudioTextReward(model, processor, device="cpu", scale=2.0, offset=-1.0)(
        completions=[chat(text) for text in completions], audio=audios
    )
    assert conversational == pytest.approx([2.0 * value - 1.0 for value in plain], abs=1e-6)
    raw = AudioTextReward(model, processor, device="cpu", scale=2.0, offset=-1.0).score(audios, completions)
    assert raw == pytest.approx(plain, abs=1e-6)  # `score` gives the model's [0, 1] scores


class Counter:
    """Counts rows through the first audio conv (a forward hook) and through encode_text."""

    def __init__(self, model):
        self.audio_rows = 0
        self.text_rows = 0
        self.hook = model.audio_encoder[0].register_forward_hook(self._audio)
        self.model = model
        self.encode_text = model.encode_text
        model.encode_text = self._text

    def _audio(self, module, inputs, output):
        self.audio_rows += inputs[0].shape[0]

    def _text(self, text, mask):
        self.text_rows += text.shape[0]
        return self.encode_text(text, mask)

    def close(self):
        self.hook.remove()
        del self.model.encode_text


def test_clip_work_runs_once_per_unique_clip(tiny, wav_paths):
    model, processor, _ = tiny
    audios, completions = trl_batch(wav_paths, group=4)
    reward = AudioTextReward(model, processor, batch_size=64, device="cpu")
    counter = Counter(model)
    try:
        reward(completions=completions, audio=audios)
    finally:
        counter.close()
    assert counter.audio_rows == 4  # 4 clips x G=4 rows
    assert counter.text_rows == len(set(completions))


class FakeDecoder:
    """Stands in for datasets' torchcodec AudioDecoder: a fresh object per row, decodes on demand."""

    def __init__(self, waveform, source=None):
        self.waveform = waveform
        if source is not None:
            self._hf_encoded = {"path": source, "bytes": None}

    def get_all_samples(self):
        return type("Samples", (), {"data": torch.from_numpy(self.waveform)[None], "sample_rate": 16000})()


def test_duplicates_are_found_by_identity_path_and_content(wav_paths):
    wave = sine_clip(1.0, seed=3)
    same_path = [wav_paths[0], "".join(wav_paths[0]), {"path": wav_paths[0]}]  # equal strings, new objects
    same_content = [wave, wave, wave.copy(), torch.from_numpy(wave.copy()), list(wave)]
    as_dicts = [{"array": wave.copy(), "sampling_rate": 16000} for _ in range(2)]
    decoders = [FakeDecoder(wave), FakeDecoder(wave.copy())]
    with_source = [FakeDecoder(wave, source=wav_paths[2]), FakeDecoder(wave, source=wav_paths[2])]
    same_bytes = [wav_bytes(wave), {"bytes": wav_bytes(wave), "path": "0.wav"}]
    waveforms, rows = group_clips(same_path + same_content + as_dicts + decoders + with_source + same_bytes)
    # Bare arrays are at 16 kHz, so they equal the 16 kHz dicts and the decoded samples.
    assert rows == [0] * 3 + [1] * (5 + 2 + 2) + [2] * 2 + [3] * 2
    assert len(waveforms) == 4
    # datasets' decoders are keyed by their source, without decoding; a decoder without one by its samples.
    assert audio_key(with_source[0]) == audio_key(wav_paths[2])
    assert audio_key(decoders[0]) == audio_key(wave)


def test_decoder_with_an_empty_source_is_keyed_by_its_samples():
    wave = sine_clip(1.0, seed=3)
    decoder = FakeDecoder(wave)
    decoder._hf_encoded = {"path": None, "bytes": None}
    assert audio_key(decoder) == audio_key(wave)
    np.testing.assert_array_equal(group_clips([decoder])[0][0], wave)


@pytest.mark.parametrize(
    ("total", "batch_size", "sizes"),
    [(144, 64, [48, 48, 48]), (128, 64, [64, 64]), (5, 64, [5]), (65, 64, [32, 33]), (0, 8, [])],
)
def test_balanced_slices(total, batch_size, sizes):
    slices = balanced_slices(total, batch_size)
    assert [s.stop - s.start for s in slices] == sizes
    assert [i for s in slices for i in range(s.start, s.stop)] == list(range(total))


def test_different_clips_are_never_merged():
    base = sine_clip(1.0, seed=4)
    nearly = base.copy()
    nearly[1] += 0.5  # same length, dtype and (sparse) fingerprint samples, different content
    other_rate = {"array": base, "sampling_rate": 8000}
    waveforms, rows = group_clips([base, nearly, other_rate, base[:-1], base.astype(np.float64)])
    assert rows == [0, 1, 2, 3, 4] and len(waveforms) == 5


def test_model_is_placed_once_and_scores_in_eval_mode(tiny, wav_paths):
    model, processor, _ = tiny
    audios, completions = trl_batch(wav_paths, group=2)
    reward = AudioTextReward(model, processor, device="cpu")
    moves = []
    original_to = model.to
    model.to = lambda *args, **kwargs: moves.append((args, kwargs)) or original_to(*args, **kwargs)
    try:
        model.train()
        first = reward(completions=completions, audio=audios)
        second = reward(completions=completions, audio=audios)
    finally:
        del model.to
    assert len(moves) == 1 and first == second
    assert not model.training  # dropout and BatchNorm batch statistics off while scoring
    assert not isinstance(reward, nn.Module)
    assert reward.device == torch.device("cpu")


def _must_not_initialise(*args, **kwargs):
    raise AssertionError("default_device initialised accelerate's state")


def test_default_device_without_accelerate_state(monkeypatch):
    import accelerate.state

    monkeypatch.setattr(accelerate.state, "is_initialized", lambda: False)  # as if no trainer had started yet
    monkeypatch.setattr(accelerate.state.PartialState, "__init__", _must_not_initialise)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device().type == expected
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    assert default_device().type == "cpu"


def test_pickle_round_trip_gives_the_same_scores(tiny, wav_paths):
    model, processor, _ = tiny
    audios, completions = trl_batch(wav_paths, group=2)
    reward = AudioTextReward(model, processor, device="cpu", name="rm")
    before = reward(completions=completions, audio=audios)
    clone = pickle.loads(pickle.dumps(reward))
    assert clone(completions=completions, audio=audios) == pytest.approx(before, abs=1e-7)
    assert get_callable_name(clone) == "rm" and clone.__name__ == "rm"


def test_concurrent_calls_agree(tiny, wav_paths):
    """TRL's async worker scores several groups in threads at once."""
    model, processor, _ = tiny
    audios, completions = trl_batch(wav_paths, group=2)
    reward = AudioTextReward(model, processor, device="cpu")
    expected = pairwise_scores(model, processor, audios, completions)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: reward(completions=completions, audio=audios), range(4)))
    assert all(result == pytest.approx(expected, abs=1e-5) for result in results)


def test_trl_name_and_logging_hooks(tiny, wav_paths):
    model, processor, _ = tiny
    audios, completions = trl_batch(wav_paths, group=3)
    references = [f"ref {i // 3}" for i in range(len(completions))]
    metrics, extra = {}, {}
    reward = AudioTextReward(model, processor, device="cpu")
    assert get_callable_name(reward) == "reward_model"
    reward(
        prompts=[""] * len(completions),
        completions=completions,
        audio=audios,
        text=references,
        trainer_state=None,
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
    )
    assert metrics == {"reward_model/unique_clips": 4.0, "reward_model/completions_per_clip": 3.0}
    assert extra == {"reference": references}
    # Without the hooks (the async trainer's child process), scoring still works.
    assert len(reward(completions=completions, audio=audios)) == len(completions)


def test_bad_inputs(tiny, wav_paths):
    model, processor, _ = tiny
    reward = AudioTextReward(model, processor, device="cpu")
    with pytest.raises(ValueError, match=r"audio column 'audio'.*columns \['speech', 'text'\]"):
        reward(prompts=["", ""], completions=["a", "b"], speech=wav_paths[:2], text=["a", "b"], log_metric=id)
    with pytest.raises(ValueError, match="got 2 clips in column 'audio' but 3 completions"):
        reward(completions=["a", "b", "c"], audio=wav_paths[:2])
    with pytest.raises(TypeError, match="^completion 1: expected a string or a list of"):
        reward(completions=["a", None], audio=wav_paths[:2])
    with pytest.raises(ValueError, match="^text item 1: expected a string, got NoneType$"):
        reward.score(wav_paths[:2] + wav_paths[:1], ["a", None, "a"])
    with pytest.raises(ValueError, match="audio item 1"):
        reward(completions=["a", "b"], audio=[wav_paths[0], 42])
    with pytest.raises(FileNotFoundError, match="audio item 0"):
        reward(completions=["a"], audio=["/no/such/clip.wav"])
    with pytest.raises(TypeError, match="from_pretrained"):
        AudioTextReward("some/path", processor)
    with pytest.raises(TypeError, match="encode_audio"):
        AudioTextReward(nn.Linear(2, 2), processor)
    assert reward(completions=[], audio=[]) == []
    with pytest.raises(ValueError, match=re.escape("AudioTextReward(sampling_rate=...): sampling rate must be")):
        AudioTextReward(model, processor, sampling_rate="16k")


def test_from_pretrained_and_registry(tiny, wav_paths):
    model, processor, folder = tiny
    audios, completions = trl_batch(wav_paths, group=2)
    expected = AudioTextReward(model, processor, device="cpu")(completions=completions, audio=audios)
    with pytest.raises(
        TypeError, match="AudioTextReward.from_pretrained: got an unexpected keyword argument 'audio_colum'"
    ):
        AudioTextReward.from_pretrained(folder, audio_colum="speech")
    loaded = AudioTextReward.from_pretrained(folder, device="cpu", name="rm2")
    assert loaded.__name__ == "rm2"
    assert loaded(completions=completions, audio=audios) == pytest.approx(expected, abs=1e-6)
    funcs, weights = get_reward_funcs(
        ["reward_model", "wer"],
        reward_model_path=folder,
        weights=[1.0, 0.5],
        device="cpu",
        audio_column="speech",
    )
    assert isinstance(funcs[0], AudioTextReward) and funcs[0].audio_column == "speech"
    assert [get_callable_name(f) for f in funcs] == ["reward_model", "wer"] and weights == [1.0, 0.5]
    values = funcs[0](completions=completions, speech=audios)
    assert values == pytest.approx(expected, abs=1e-6) and all(math.isfinite(v) for v in values)


# ----------------------------------------------------------------------------------------------------
# Bad input and the one text normalisation
# ----------------------------------------------------------------------------------------------------


def test_none_completion_names_its_index():
    with pytest.raises(TypeError) as error:
        wer(["a", None], text=["a", "b"])
    assert str(error.value) == (
        "completion 1: expected a string or a list of {'role', 'content'} messages, got NoneType"
    )


def test_conversational_completion_without_content_names_it():
    with pytest.raises(ValueError) as error:
        completion_texts([chat("a"), [{"role": "system", "content": "x"}, {"role": "assistant"}]])
    assert str(error.value) == "completion 1: message 1 has no 'content' (keys: ['role'])"
    with pytest.raises(ValueError, match="^completion 0: message 0 has no 'content'"):
        cer([[{"role": "assistant", "text": "a"}]], text=["a"])


@pytest.mark.parametrize(
    ("duration", "problem"),
    [
        (float("nan"), "duration nan in column 'duration' must be a finite number >= 0 (or None)"),
        (-1.0, "duration -1.0 in column 'duration' must be a finite number >= 0 (or None)"),
        (float("inf"), "duration inf in column 'duration' must be a finite number >= 0 (or None)"),
        ("long", "duration 'long' in column 'duration' is not a number of seconds"),
    ],
)
def test_bad_durations_are_errors_not_a_switch(duration, problem):
    with pytest.raises(ValueError) as error:
        repetition_penalty(["a", "b"], duration=[1.0, duration])
    assert str(error.value) == f"row 1: {problem}"


def test_unknown_duration_imposes_no_duration_limit():
    text = "kɔgɔ ni tulu bɛ feere yan sisan ani sini fana"  # 45 characters, no repeats
    assert repetition_penalty([text, text], duration=[None, 1.0]) == [0.0, pytest.approx(-(45 / 25 - 1))]
    with pytest.raises(ValueError, match="got 2 completions but 1 values in column 'duration'"):
        repetition_penalty([text, text], duration=[1.0])


def test_bad_rate_in_an_audio_dict_names_the_row():
    audio = [
        {"array": np.zeros(16000, np.float32), "sampling_rate": 16000},
        {"array": np.zeros(10), "sampling_rate": "16k"},
    ]
    with pytest.raises(ValueError, match="^audio item 1: sampling rate must be a whole number of Hz, got '16k'$"):
        repetition_penalty(["a", "b"], audio=audio)


CAPITALS = ["Ɛ bɛ Ɲɔ dun", "ƆNŊ ka di", "Ŋaniya ka Ɲi"]


def test_capital_bambara_letters_are_one_text_for_the_reward_model_and_wer(tiny, wav_paths):
    model, processor, _ = tiny
    lower = [text.lower() for text in CAPITALS]
    unk = processor.tokenizer.unk_token_id
    # The raw tokenizer has no pieces for the capitals (the model saw lower-case text only) ...
    assert any(unk in ids for ids in processor.tokenizer.encode_texts(CAPITALS))
    # ... the processor normalises as every reward does: the same ids as the lower-case text, no <unk>.
    tokens = processor.tokenize(CAPITALS)["text"].tolist()
    assert tokens == processor.tokenize(lower)["text"].tolist()
    assert processor.tokenizer.encode_texts(lower) == [
        row[: len(ids)] for row, ids in zip(tokens, processor.tokenizer.encode_texts(lower))
    ]
    assert all(unk not in ids for ids in processor.tokenizer.encode_texts(lower))
    reward = AudioTextReward(model, processor, device="cpu")
    audios = wav_paths[:3]
    assert reward(completions=CAPITALS, audio=audios) == pytest.approx(reward(completions=lower, audio=audios), abs=0)
    assert wer(CAPITALS, text=lower) == [1.0, 1.0, 1.0] and cer(CAPITALS, text=lower) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("reward", [wer, cer, repetition_penalty, empty_penalty])
def test_a_reference_column_under_another_name_is_warned_once(reward):
    """Stock TRL would silently train without the transcript reward: say which columns came and what to pass."""
    from rlnf.rewards import transcript_rewards

    transcript_rewards._WARNED_MISSING.clear()
    kwargs = {"transcript": ["i ni ce", "i ni ce"], "audio": [None, None], "trainer_state": None}
    with pytest.warns(UserWarning, match=r"no reference column 'text' \(dataset columns: \['audio', 'transcript'\]\)"):
        first = reward(["i ni ce", "foo"], **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second batch does not warn again
        reward(["i ni ce", "foo"], **kwargs)
        named = reward(["i ni ce", "foo"], reference_column="transcript", **kwargs)
    if reward in (wer, cer):
        assert first == [None, None] and named[0] == 1.0 and named[1] < 1.0
