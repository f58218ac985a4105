"""TDT (token-and-duration transducer) policies: the renormalised step distribution against brute-force path
enumeration, the scorer against an independent recursion on the model's own joint logits, sampling frequencies
against the scorer, the encoder once per clip, greedy decoding against a hand loop, family selection (RNN-T
refused), and ASRGRPOTrainer on a tiny random ParakeetForTDT (a step's loss by hand; ratio 1 and KL 0 at lr 0)."""

from __future__ import annotations

import copy
import functools
import itertools
import math

import numpy as np
import pytest
import torch
from conftest import clip_dataset, grpo_args, length_reward, synthetic_clip
from scipy.stats import chisquare

import rlnf.policies.transducer  # noqa: F401  (importing registers the family)
from rlnf.policies.base import ClipBatch, PolicyOptions, load_policy_model, policy_families, policy_for
from rlnf.policies.same_function import use_fixed_statistics_and_no_dropout
from rlnf.policies.tiny_ctc import bambara_parakeet_tokenizer
from rlnf.policies.transducer import (
    NEG,
    TDTPolicy,
    TDTRules,
    forward_log_probs,
    lattice_terms,
    tiny_parakeet_tdt,
    token_log_probs,
)
from rlnf.trainers import ASRGRPOTrainer

CPU = torch.device("cpu")
G = 4
CLIPS_PER_STEP = 2


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bambara():
    """The tiny TDT with the full Bambara character vocabulary (34 tokens, blank last)."""
    return tiny_parakeet_tdt()


@pytest.fixture(scope="module")
def small():
    """A tiny TDT with 4 labels (<unk>, ▁, a, b) + blank, one zero-duration label per frame: every transcript of a
    3-frame clip can be enumerated. Biases make its distribution peaked, so that a sampler drawing from another
    temperature or other masks fails the frequency test (checked by hand: p < 1e-5 for each such change)."""
    model, processor = tiny_parakeet_tdt(
        bambara_parakeet_tokenizer("ab"), max_symbols_per_step=1, blank_bias=0.5, seed=1
    )
    with torch.no_grad():  # tokens <unk> ▁ a b <blank>, then durations 0 1 2 3 4
        model.joint.head.bias += torch.tensor([-2.0, -3.0, 2.0, 0.5, 1.0, 1.5, 1.0, 0.0, -1.0, -2.0])
    return model, processor


def clip_batch(policy, waveforms, rows_per_clip: int) -> ClipBatch:
    inputs = policy.clip_inputs(waveforms, CPU, torch.float32)
    clip_of_row = torch.arange(len(waveforms)).repeat_interleave(rows_per_clip)
    return ClipBatch(inputs, clip_of_row)


def completion_tensors(completions: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(c) for c in completions)
    ids = torch.tensor([c + [pad] * (width - len(c)) for c in completions])
    mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in completions])
    return ids, mask


def sequence_scores(policy, model, clips: ClipBatch, completions: list[list[int]]) -> torch.Tensor:
    """log p(y|x) per row from the policy's log_probs (the per-token shares summed back)."""
    ids, mask = completion_tensors(completions, policy.blank)
    logps, _ = policy.log_probs(model, clips, ids, mask, ids.size(1))
    return (logps * mask).sum(-1)


# --------------------------------------------------------------------------------------------------
# Independent references: path enumeration and a memoised recursion, written from the rules in plain Python
# --------------------------------------------------------------------------------------------------


def softmax(values: list[float], temperature: float) -> list[float]:
    top = max(values)
    exps = [math.exp((v - top) / temperature) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def step_options(token_logits, duration_logits, t, frames, u, k, rules: TDTRules):
    """Every (token, duration, probability) of one step, from the rules as the module docstring states them."""
    vocab = len(token_logits)
    if rules.max_labels is not None and u >= rules.max_labels:
        token_probs = [1.0 if v == rules.blank else 0.0 for v in range(vocab)]
    else:
        token_probs = softmax(list(token_logits), rules.temperature)
    options = []
    for token, p_token in enumerate(token_probs):
        if p_token == 0.0:
            continue
        zero_ok = token != rules.blank and k < rules.max_symbols_per_step
        allowed = [i for i, d in enumerate(rules.durations) if t + d <= frames and (d > 0 or zero_ok)]
        p_durations = softmax([float(duration_logits[i]) for i in allowed], rules.temperature)
        options.extend((token, rules.durations[i], p_token * q) for i, q in zip(allowed, p_durations, strict=True))
    return options


def enumerate_paths(joint, frames: int, rules: TDTRules) -> dict[tuple[int, ...], float]:
    """Probability of every transcript: the sum over EVERY path (token and duration at each step) producing it,
    each path's probability multiplied out step by step. ``joint(t, prefix) -> (token_logits, duration_logits)``."""
    totals: dict[tuple[int, ...], float] = {}

    def walk(t: int, prefix: tuple[int, ...], k: int, probability: float) -> None:
        if t == frames:
            totals[prefix] = totals.get(prefix, 0.0) + probability
            return
        token_logits, duration_logits = joint(t, prefix)
        for token, d, p in step_options(token_logits, duration_logits, t, frames, len(prefix), k, rules):
            label = token != rules.blank
            walk(t + d, prefix + (token,) if label else prefix, k + 1 if d == 0 else 0, probability * p)

    walk(0, (), 0, 1.0)
    return totals


def recursion_log_prob(token_logits, duration_logits, labels: list[int], frames: int, rules: TDTRules) -> float:
    """log p(y|x) by a memoised backward recursion over (t, u, k) on the full joint logits ``[T, U+1, ...]``."""
    token_logits = token_logits.double().tolist()
    duration_logits = duration_logits.double().tolist()

    @functools.cache
    def beta(t: int, u: int, k: int) -> float:
        if t == frames:
            return 1.0 if u == len(labels) else 0.0
        total = 0.0
        for token, d, p in step_options(token_logits[t][u], duration_logits[t][u], t, frames, u, k, rules):
            if token == rules.blank:
                total += p * beta(t + d, u, 0)
            elif u < len(labels) and token == labels[u]:
                total += p * beta(t + d, u + 1, k + 1 if d == 0 else 0)
        return total

    value = beta(0, 0, 0)
    return math.log(value) if value > 0 else -math.inf


def lattice_inputs(joint, ys: list[tuple[int, ...]], frames: list[int], rules: TDTRules):
    """The padded forward-algorithm inputs of each (y, T) from a prefix-dependent synthetic joint."""
    steps, states = max(frames), max(len(y) for y in ys) + 1
    blank_lp = torch.full((len(ys), steps, states), NEG, dtype=torch.float64)
    label_lp = torch.full_like(blank_lp, NEG)
    durations = torch.zeros((len(ys), steps, states, len(rules.durations)), dtype=torch.float64)
    for row, (y, T) in enumerate(zip(ys, frames, strict=True)):
        for t in range(T):
            for u in range(len(y) + 1):
                token_logits, duration_logits = joint(t, y[:u])
                at_cap = torch.tensor(rules.max_labels is not None and u >= rules.max_labels)
                tokens = token_log_probs(token_logits, rules, at_cap)
                blank_lp[row, t, u] = tokens[rules.blank]
                if u < len(y):
                    label_lp[row, t, u] = tokens[y[u]]
                durations[row, t, u] = duration_logits
    return blank_lp, label_lp, durations


def synthetic_joint(vocab: int, durations: int, seed: int):
    """Random logits for each (frame, label prefix), fixed on first use: the dependence on the prefix is what an
    LSTM prediction network gives."""
    generator = torch.Generator().manual_seed(seed)
    table: dict = {}

    def joint(t: int, prefix: tuple[int, ...]):
        key = (t, tuple(prefix))
        if key not in table:
            table[key] = (torch.randn(vocab, generator=generator) * 1.5, torch.randn(durations, generator=generator))
        return table[key]

    return joint


# --------------------------------------------------------------------------------------------------
# The forward algorithm against brute force
# --------------------------------------------------------------------------------------------------

RULES = {  # (rules, clip lengths in frames): two lengths in one batch, so frame padding is exercised too
    "default-durations": (dict(durations=(0, 1, 2, 3, 4), max_symbols_per_step=1, max_labels=3), (3, 4)),
    "two-zero-labels-no-cap": (dict(durations=(0, 1, 2), max_symbols_per_step=2, temperature=0.7), (2, 3)),
    "no-zero-duration": (dict(durations=(1, 2, 3), max_symbols_per_step=0, max_labels=2, temperature=1.3), (3, 4)),
    "zero-but-no-symbols": (dict(durations=(0, 1, 2), max_symbols_per_step=0, max_labels=4), (3, 4)),
}


@pytest.mark.parametrize("name", list(RULES))
def test_forward_algorithm_equals_the_sum_over_enumerated_paths(name):
    settings, lengths = RULES[name]
    rules = TDTRules(vocab_size=3, blank=2, **settings)  # 2 labels + blank
    joint = synthetic_joint(3, len(rules.durations), seed=len(name))
    by_frames = {frames: enumerate_paths(joint, frames, rules) for frames in lengths}
    for frames, totals in by_frames.items():  # (ii): the transcripts of a clip carry all the probability
        assert sum(totals.values()) == pytest.approx(1.0, abs=1e-9), frames
        assert len(totals) > 5
    ys = [y for frames in lengths for y in by_frames[frames]]
    frames = [f for f in lengths for _ in by_frames[f]]
    blank_lp, label_lp, durations = lattice_inputs(joint, ys, frames, rules)
    scores = forward_log_probs(
        blank_lp, label_lp, durations, torch.tensor(frames), torch.tensor([len(y) for y in ys]), rules
    )
    expected = torch.tensor([math.log(by_frames[f][y]) for y, f in zip(ys, frames, strict=True)], dtype=torch.float64)
    assert torch.allclose(scores, expected, atol=1e-5, rtol=0)  # (i) every transcript, both clip lengths
    for f in lengths:
        assert scores[torch.tensor(frames) == f].exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_a_transcript_no_path_produces_scores_minus_infinity():
    capped = TDTRules(vocab_size=3, blank=2, durations=(0, 1, 2), max_symbols_per_step=1, max_labels=2)
    uncapped = TDTRules(vocab_size=3, blank=2, durations=(0, 1, 2), max_symbols_per_step=1, max_labels=None)
    joint = synthetic_joint(3, 3, seed=5)
    cases = [
        (capped, (0, 1, 0), 4, False),  # above the label cap
        (uncapped, (0, 1, 0), 1, False),  # one frame holds 2 labels: one of duration 0, one moving on
        (uncapped, (0, 1), 1, True),
    ]
    for rules, y, frames, possible in cases:
        blank_lp, label_lp, durations = lattice_inputs(joint, [y], [frames], rules)
        score = forward_log_probs(blank_lp, label_lp, durations, torch.tensor([frames]), torch.tensor([len(y)]), rules)
        assert math.isfinite(score.item()) == possible, (y, frames)
        assert possible or score.item() == -math.inf


def test_rules_refuse_durations_without_one():
    with pytest.raises(ValueError, match="do not contain 1"):
        TDTRules(vocab_size=3, blank=2, durations=(0, 2, 4), max_symbols_per_step=1)


# --------------------------------------------------------------------------------------------------
# The policy on the tiny model: scorer, sampler, encoder once per clip, gradients
# --------------------------------------------------------------------------------------------------


def model_joint_logits(model, inputs: dict, labels: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The full joint lattice of ONE clip from the model's own forward: ``(token [T, U+1, V], duration [T, U+1, D],
    T)``."""
    blank, vocab = model.config.blank_token_id, model.config.vocab_size
    with torch.no_grad():
        out = model(**inputs, decoder_input_ids=torch.tensor([[blank, *labels]]))
    frames = int(model._get_subsampling_output_length(inputs["attention_mask"].sum(-1))[0])
    logits = out.logits if out.logits.dim() == 4 else out.logits[:, :, None]  # U + 1 = 1 is squeezed
    return logits[0, :frames, :, :vocab], logits[0, :frames, :, vocab:], frames


def waveforms(n: int, seconds: float = 0.7) -> list[np.ndarray]:
    return [synthetic_clip(seconds + 0.35 * i, 170.0 + 60 * i, seed=i) for i in range(n)]


@pytest.mark.parametrize("frames_per_joint_call", ["one", "all"])
def test_policy_scores_equal_a_recursion_on_the_models_own_joint_logits(bambara, frames_per_joint_call, monkeypatch):
    """The scorer's log p(y|x) against a recursion over the full joint logits of the model's own forward; the
    scorer's joint runs one frame at a time or on every frame at once (the tiny model's lattice fits one chunk)."""
    import rlnf.policies.transducer as transducer

    if frames_per_joint_call == "one":
        monkeypatch.setattr(transducer, "JOINT_CHUNK_FLOATS", 1)
    model, processor = bambara
    policy = policy_for(model, processor, PolicyOptions(max_completion_length=6))
    policy.configure_sampling({"temperature": 0.9})
    policy.generator = torch.Generator().manual_seed(0)
    model.eval()
    clips = clip_batch(policy, waveforms(2), rows_per_clip=3)
    completions = policy.sample(model, clips)
    completions[0] = [5, 5, policy.blank]  # a repeated label, and an empty transcript
    completions[3] = [policy.blank]
    with torch.no_grad():
        scores = sequence_scores(policy, model, clips, completions)
    assert (
        len({len(c) for c in completions}) > 1
        and clips.inputs["attention_mask"][0].sum() < clips.inputs["attention_mask"][1].sum()
    )
    for row, completion in enumerate(completions):
        clip_inputs = clips.clip_inputs(clips.clip_of_row[row : row + 1])  # the shorter clip keeps its padding
        tokens, durations, frames = model_joint_logits(model, clip_inputs, completion[:-1])
        expected = recursion_log_prob(tokens, durations, completion[:-1], frames, policy.rules)
        assert scores[row].item() == pytest.approx(expected, abs=1e-4), row


def test_every_transcript_of_a_clip_sums_to_one_and_samples_follow_the_scores(small):
    model, processor = small
    policy = policy_for(model, processor, PolicyOptions(max_completion_length=4))  # at most 3 labels
    policy.configure_sampling({"temperature": 0.8})
    model.eval()
    waveform = synthetic_clip(0.2, 220.0, seed=3)
    one = clip_batch(policy, [waveform], rows_per_clip=1)
    assert int(policy.frames(model, one)[0]) == 3
    labels = [i for i in range(policy.vocab_size) if i != policy.blank]
    ys = [y for n in range(4) for y in itertools.product(labels, repeat=n)]  # 1 + 4 + 16 + 64 transcripts
    every = clip_batch(policy, [waveform], rows_per_clip=len(ys))
    with torch.no_grad():
        scores = sequence_scores(policy, model, every, [[*y, policy.blank] for y in ys])
    probabilities = scores.double().exp()
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)

    samples = 4000
    policy.generator = torch.Generator().manual_seed(0)
    drawn = policy.sample(model, clip_batch(policy, [waveform], rows_per_clip=samples))
    assert all(c[-1] == policy.blank and policy.blank not in c[:-1] for c in drawn)
    counts = {y: 0 for y in ys}
    for completion in drawn:
        counts[tuple(completion[:-1])] += 1
    expected = {y: samples * p for y, p in zip(ys, probabilities.tolist(), strict=True)}
    big = [y for y in ys if expected[y] >= 5]
    rest = [y for y in ys if expected[y] < 5]
    observed = [counts[y] for y in big]
    wanted = [expected[y] for y in big]
    if rest:  # the rare transcripts together
        observed.append(sum(counts[y] for y in rest))
        wanted.append(sum(expected[y] for y in rest))
    assert len(big) >= 8  # a real test of the shape, not one dominant transcript
    wanted = np.asarray(wanted) * samples / sum(wanted)  # (sums to 1 up to 1e-5, checked above)
    assert chisquare(observed, wanted).pvalue > 0.001


def test_the_encoder_runs_once_per_clip_in_sampling_and_scoring(bambara):
    model, processor = bambara
    policy = policy_for(model, processor)
    policy.configure_sampling({"temperature": 1.0})
    encoder_batches: list[int] = []
    decoder_batches: list[tuple[int, ...]] = []
    hooks = [
        model.encoder.register_forward_hook(lambda _m, args, kwargs, out: encoder_batches.append(out[0].shape[0]), with_kwargs=True),
        model.decoder.register_forward_hook(lambda _m, args, out: decoder_batches.append(tuple(args[0].shape))),
    ]  # fmt: skip
    try:
        clips = clip_batch(policy, waveforms(2), rows_per_clip=8)
        completions = policy.sample(model, clips)
        assert encoder_batches == [2]  # one call over the 2 clips, not 16 rows
        assert all(shape[0] == 16 and shape[1] == 1 for shape in decoder_batches)  # one label step per call
        encoder_batches.clear()
        decoder_batches.clear()
        sequence_scores(policy, model, clips, completions)
        assert encoder_batches == [2]
        assert len(decoder_batches) == 1 and decoder_batches[0][0] == 16  # the prediction network once per row
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.parametrize("budget", ["checkpoint-every-row", "keep-two-rows", "default"])
def test_scoring_gradients_equal_the_full_lattice_and_reach_every_part(bambara, budget, monkeypatch):
    """The scoring pass (one model forward, the joint's inputs captured, each row's lattice kept for backward or
    checkpointed, per the pass's memory budget) gives the same log-probs and gradients as the same reduction
    computed clip by clip and row by row with plain autograd (no hook, no checkpoint); gradients reach the
    encoder, projector, prediction network and joint."""
    import rlnf.policies.transducer as transducer

    model, processor = bambara
    model = copy.deepcopy(model)
    use_fixed_statistics_and_no_dropout(model)  # as the trainer does: BatchNorm on running statistics
    model.train()
    policy = policy_for(model, processor)
    policy.configure_sampling({"temperature": 1.1})
    clips = clip_batch(policy, waveforms(2), rows_per_clip=2)
    policy.generator = torch.Generator().manual_seed(1)
    completions = policy.sample(model, clips)
    completions[1] = [7, 3, 7, policy.blank]
    checkpointed: list[int] = []

    def counted_checkpoint(*args, **kwargs):
        checkpointed.append(1)
        return torch.utils.checkpoint.checkpoint(*args, **kwargs)

    monkeypatch.setattr(transducer, "checkpoint", counted_checkpoint)
    if budget != "default":  # 4 rows, 2 per clip (the default budget holds them all); the joint on 2 frames a call
        monkeypatch.setattr(
            transducer, "JOINT_CHUNK_FLOATS", 2 * model.config.decoder_hidden_size * len(completions[1])
        )
        frames, hidden = policy.frames(model, clips).tolist(), model.config.decoder_hidden_size
        first_two = sum(transducer.kept_lattice_bytes(frames[0], len(c), hidden, model.joint) for c in completions[:2])
        policy.lattice_budget = 0 if budget == "checkpoint-every-row" else first_two
    scores = sequence_scores(policy, model, clips, completions)
    assert len(checkpointed) == {"checkpoint-every-row": 4, "keep-two-rows": 2, "default": 0}[budget]
    scores.sum().backward()
    captured = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    for part in ("encoder.layers.0.", "encoder_projector.", "decoder.lstm.", "decoder.embedding.", "joint.head."):
        assert any(n.startswith(part) and g.abs().sum() > 0 for n, g in captured.items()), part

    total = 0.0
    for row, completion in enumerate(completions):
        clip = int(clips.clip_of_row[row])
        inputs = clips.clip_inputs(torch.tensor([clip]))
        labels = completion[:-1]
        frames = int(policy.frames(model, ClipBatch(inputs, torch.zeros(1, dtype=torch.long)))[0])
        encoder = model.get_audio_features(**inputs).pooler_output[0, :frames]  # one clip at a time, no capture
        decoder = model.decoder(torch.tensor([[policy.blank, *labels]]))[0]
        blank_lp, label_lp, duration_logits = lattice_terms(
            model.joint, encoder, decoder, torch.tensor(labels), policy.rules
        )
        score = forward_log_probs(
            blank_lp[None], label_lp[None], duration_logits[None], torch.tensor([frames]), torch.tensor([len(labels)]), policy.rules
        )[0]  # fmt: skip
        assert score.item() == pytest.approx(scores[row].item(), abs=1e-5)
        total = total + score
    total.backward()
    for name, param in model.named_parameters():
        if name in captured:
            difference = (param.grad - captured[name]).norm()
            assert difference <= 1e-5 * captured[name].norm() + 1e-6, name  # float32 summation order only


# --------------------------------------------------------------------------------------------------
# Greedy decoding
# --------------------------------------------------------------------------------------------------


def hand_greedy(model, inputs: dict) -> list[int]:
    """Greedy TDT decoding written out: argmax token and duration, a blank never stays (duration 0 -> 1), the
    prediction network moves on labels, stop at the clip's last frame (or after max_symbols_per_step x T steps)."""
    config = model.config
    blank, vocab = config.blank_token_id, config.vocab_size
    with torch.no_grad():
        states = model.get_audio_features(**inputs).pooler_output[0]
        frames = int(model._get_subsampling_output_length(inputs["attention_mask"].sum(-1))[0])
        embedded = model.decoder.embedding(torch.tensor([[blank]]))
        output, state = model.decoder.lstm(embedded)
        decoder = model.decoder.decoder_projector(output)[0, 0]
        t, labels = 0, []
        for _ in range(config.max_symbols_per_step * frames):
            if t >= frames:
                break
            logits = model.joint.head(model.joint.activation(states[t] + decoder))
            token = int(logits[:vocab].argmax())
            duration = config.durations[int(logits[vocab:].argmax())]
            if token == blank:
                duration = max(duration, 1)
            else:
                labels.append(token)
                output, state = model.decoder.lstm(model.decoder.embedding(torch.tensor([[token]])), state)
                decoder = model.decoder.decoder_projector(output)[0, 0]
            t += duration
    return labels


def test_greedy_transcripts_equal_a_hand_loop_without_touching_the_models_config(bambara):
    model, processor = bambara
    model = copy.deepcopy(model).eval()
    model.generation_config.suppress_tokens = None  # as a checkpoint saved without the converter's fields
    model.generation_config.decoder_start_token_id = None
    vocab = model.config.vocab_size
    with torch.no_grad():  # a few labels per clip, mostly one frame each (no clip reaches the step bound)
        model.joint.head.bias[vocab - 1] -= 3.0
        model.joint.head.bias[vocab + model.config.durations.index(1)] += 3.0
    policy = policy_for(model, processor)
    clips = waveforms(3)
    texts = policy.transcribe(model, clips, batch_size=2)
    expected = []
    for waveform in clips:
        inputs = policy.clip_inputs([waveform], CPU, torch.float32)
        expected.append(
            processor.tokenizer.decode(hand_greedy(model, inputs), skip_special_tokens=True, group_tokens=False)
        )
    assert texts == expected
    assert any(len(t) > 1 for t in texts)
    assert model.generation_config.suppress_tokens is None  # the policy decoded with its own copy


# --------------------------------------------------------------------------------------------------
# Family selection and refusals
# --------------------------------------------------------------------------------------------------


def test_policy_for_picks_the_tdt_family_and_a_saved_folder_round_trips(bambara, tmp_path):
    from transformers import AutoProcessor

    model, processor = bambara
    policy = policy_for(model, processor)
    assert isinstance(policy, TDTPolicy) and policy.family == "tdt"
    assert [f for f in policy_families() if f.accepts(model)] == [TDTPolicy]
    assert policy.eos_token_ids == [model.config.blank_token_id] and policy.prompt_ids == []
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    policy.finish_saved_folder(tmp_path)
    loaded = load_policy_model(str(tmp_path))
    assert type(loaded) is type(model)
    assert loaded.generation_config.suppress_tokens == list(range(34, 39))
    assert loaded.generation_config.decoder_start_token_id == 33
    assert isinstance(policy_for(loaded, AutoProcessor.from_pretrained(tmp_path)), TDTPolicy)


def test_an_rnnt_is_refused_with_the_reason():
    from transformers import ParakeetForRNNT, ParakeetRNNTConfig

    encoder = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
               "intermediate_size": 32, "num_mel_bins": 16, "subsampling_conv_channels": 4, "subsampling_factor": 8}  # fmt: skip
    model = ParakeetForRNNT(
        ParakeetRNNTConfig(
            vocab_size=34, blank_token_id=33, pad_token_id=33, decoder_hidden_size=16, encoder_config=encoder
        )
    )
    _, processor = tiny_parakeet_tdt()
    with pytest.raises(TypeError, match="ParakeetForRNNT is an RNN-T.*torchaudio"):
        policy_for(model, processor)


def test_sampling_filters_training_randomness_and_vocabularies_are_refused(bambara):
    model, processor = bambara
    policy = policy_for(model, processor)
    for name, value in (("top_k", 5), ("top_p", 0.9), ("min_p", 0.1), ("repetition_penalty", 1.2)):
        with pytest.raises(ValueError, match=f"{name}=.* is not supported for TDT"):
            policy.configure_sampling({"temperature": 1.0, name: value})
    layerdrop = copy.deepcopy(model)
    layerdrop.config.encoder_config.layerdrop = 0.1
    with pytest.raises(ValueError, match="layerdrop=0.1"):
        policy_for(layerdrop, processor).check_args(object())
    with pytest.raises(ValueError, match="cast_lm_head_to_fp32"):
        policy.check_args(type("Args", (), {"cast_lm_head_to_fp32": True})())
    _, other = tiny_parakeet_tdt(bambara_parakeet_tokenizer("ab"))
    with pytest.raises(ValueError, match="not the same vocabulary"):
        policy_for(model, other)


# --------------------------------------------------------------------------------------------------
# ASRGRPOTrainer with a TDT policy
# --------------------------------------------------------------------------------------------------


make_args = functools.partial(grpo_args, max_completion_length=16)  # at most 15 labels


def test_grpo_steps_loss_equals_a_hand_computation(bambara, tmp_path):
    model, processor = bambara
    trainer = ASRGRPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[length_reward],
        args=make_args(tmp_path),
        train_dataset=clip_dataset(),
        processing_class=processor,
    )
    records: list[dict] = []
    original = trainer._compute_loss

    def record(model_, inputs):
        state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        loss = original(model_, inputs)
        records.append({"inputs": inputs, "state": state, "loss": float(loss.detach())})
        return loss

    trainer._compute_loss = record
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert len(records) == 2
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert any(n.startswith("joint.") for n in moved) and any(n.startswith("encoder.layers.") for n in moved)
    assert not any(n.startswith("encoder.subsampling.") for n in moved)  # freeze_feature_encoder
    rules = trainer.policy.rules
    reference = copy.deepcopy(model).eval()
    reference.load_state_dict(trainer.ref_model.state_dict())
    for step, entry in enumerate(records):
        inputs = entry["inputs"]
        policy_model = copy.deepcopy(model).eval()
        policy_model.load_state_dict(entry["state"])
        batch = ClipBatch.from_row_views(inputs["audio_clips"], CPU)
        ids, mask = inputs["completion_ids"], inputs["completion_mask"]
        expected = []
        for row in range(ids.size(0)):
            n = int(mask[row].sum())
            assert ids[row, n - 1] == trainer.policy.blank
            labels = ids[row, : n - 1].tolist()
            clip_inputs = batch.clip_inputs(batch.clip_of_row[row : row + 1])
            logps = []
            for net in (policy_model, reference):
                tokens, durations, frames = model_joint_logits(net, clip_inputs, labels)
                logps.append(recursion_log_prob(tokens, durations, labels, frames, rules))
            delta = (logps[1] - logps[0]) / n  # sequence level: ratio 1 on-policy; k3 KL of the per-token share
            expected.append(-float(inputs["advantages"][row]) + 0.04 * (math.exp(delta) - delta - 1))
        assert entry["loss"] == pytest.approx(sum(expected) / len(expected), abs=1e-5), step
        assert int(mask.sum(-1).max()) >= 3  # transcripts of several labels, not only empty ones
        if step == 1:  # the policy moved after step 1: the KL term is not zero
            assert any(abs(e + float(a)) > 1e-9 for e, a in zip(expected, inputs["advantages"], strict=True))


def test_at_learning_rate_zero_ratio_is_one_and_kl_zero(bambara, tmp_path):
    model, processor = bambara
    trainer = ASRGRPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[length_reward],
        args=make_args(
            tmp_path, learning_rate=0.0, per_device_train_batch_size=16, num_generations=8, steps_per_generation=2
        ),
        train_dataset=clip_dataset(),
        processing_class=processor,
    )
    gaps: list[float] = []
    original = trainer._compute_loss

    def compare(model_, inputs):
        clips = ClipBatch.from_row_views(inputs["audio_clips"], CPU)
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            current, _ = trainer.policy.log_probs(model_, clips, ids, mask, inputs["completion_ids"].size(1))
        keep = inputs["completion_mask"].bool()
        for name in ("old_per_token_logps", "ref_per_token_logps"):
            if inputs.get(name) is not None:
                gaps.append(float((current - inputs[name])[keep].abs().max()))
        return original(model_, inputs)

    trainer._compute_loss = compare
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "kl" in entry]
    assert len(logs) == 2 and all(abs(entry["kl"]) < 1e-6 for entry in logs)
    assert gaps and max(gaps) < 1e-6, gaps


def test_sft_collator_batches_train_with_the_models_tdt_loss():
    """Padding never leaks into a row's loss (the batch loss is the mean of the rows' own), and the model learns."""
    from rlnf.policies.base import PolicyOptions, policy_for

    model, processor = tiny_parakeet_tdt()
    collator = policy_for(model, processor, PolicyOptions(max_completion_length=None)).sft_collator()
    rows = [
        {"audio": {"array": synthetic_clip(1.0 + 0.5 * i, 180.0 + 60 * i, seed=i), "sampling_rate": 16000}, "text": t}
        for i, t in enumerate(["i ni ce", "an bɛ taa sugu la"])
    ]
    batch = collator(rows)
    blank = model.config.blank_token_id
    assert batch["decoder_input_ids"][:, 0].tolist() == [blank, blank]
    assert torch.equal(batch["decoder_input_ids"][:, 1:], batch["labels"])
    model.eval()
    with torch.no_grad():
        alone = [float(model(**collator([row])).loss) for row in rows]
        assert float(model(**batch).loss) == pytest.approx(sum(alone) / 2, rel=1e-5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_rloo_and_ppo_with_the_audio_critic_train_a_tdt_policy(bambara, tmp_path):
    """The same seam serves RLOO and PPO: the policy moves; PPO's audio critic sits on the FastConformer encoder
    and pools only real frames (a clip's value does not depend on a longer clip padded beside it)."""
    from rlnf.policies.value_heads import SequenceValueModel
    from rlnf.trainers import ASRPPOConfig, ASRPPOTrainer, ASRRLOOConfig, ASRRLOOTrainer

    model, processor = bambara
    common = dict(report_to=[], use_cpu=True, seed=0, logging_steps=1, save_strategy="no", max_completion_length=16)
    rloo = ASRRLOOTrainer(
        copy.deepcopy(model), [length_reward], processing_class=processor, train_dataset=clip_dataset(),
        args=ASRRLOOConfig(output_dir=str(tmp_path / "rloo"), per_device_train_batch_size=G * CLIPS_PER_STEP,
                           num_generations=G, max_steps=1, learning_rate=1e-2, **common),
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in rloo.model.named_parameters()}
    rloo.train()
    assert any(not torch.equal(before[n], p) for n, p in rloo.model.named_parameters())
    ppo = ASRPPOTrainer(
        copy.deepcopy(model), [length_reward], processing_class=processor, train_dataset=clip_dataset(),
        args=ASRPPOConfig(output_dir=str(tmp_path / "ppo"), per_device_train_batch_size=2, num_mini_batches=1,
                          num_ppo_epochs=1, max_steps=1, learning_rate=1e-3, value_model="audio", **common),
    )  # fmt: skip
    critic = ppo.value_model
    assert isinstance(critic, SequenceValueModel) and type(critic.encoder).__name__ == "ParakeetEncoder"
    waveforms = [synthetic_clip(0.8, 180.0), synthetic_clip(1.6, 250.0, seed=1)]
    with torch.no_grad():
        both = critic(ClipBatch(ppo.policy.clip_inputs(waveforms, torch.device("cpu"), torch.float32), None))
        alone = critic(ClipBatch(ppo.policy.clip_inputs(waveforms[:1], torch.device("cpu"), torch.float32), None))
    torch.testing.assert_close(both[:1], alone, atol=1e-5, rtol=1e-4)
    before = {n: p.detach().clone() for n, p in ppo.model.named_parameters()}
    ppo.train()
    assert any(not torch.equal(before[n], p) for n, p in ppo.model.named_parameters())
    assert "val/explained_variance" in ppo.state.log_history[0]
