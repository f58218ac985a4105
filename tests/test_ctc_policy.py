"""CTC policies: the CTC machinery against brute force and transformers' own CTC losses, sampling frequencies,
collapse and decoding rules, bad input, and ASRGRPOTrainer on tiny random wav2vec2 and Parakeet CTC models
(one forward per clip per pass, a step's loss by hand, LoRA / adapter-only / frozen feature encoder)."""

from __future__ import annotations

import copy
import functools
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import clip_dataset, grpo_args, length_reward, synthetic_clip

from rlnf.policies.base import ClipBatch, PolicyOptions, policy_for
from rlnf.policies.ctc import (
    CTCPolicy,
    collapse_paths,
    decode_labels,
    frame_log_probs,
    greedy_labels,
    min_clip_samples,
    sample_paths,
    sequence_log_probs,
)
from rlnf.policies.tiny_ctc import bambara_ctc_tokenizer, tiny_parakeet_ctc, tiny_wav2vec2_ctc
from rlnf.trainers import ASRGRPOTrainer

G = 4
CLIPS_PER_STEP = 2
CPU = torch.device("cpu")
BUILDERS = {"wav2vec2": tiny_wav2vec2_ctc, "parakeet": tiny_parakeet_ctc}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def built():
    return {name: build() for name, build in BUILDERS.items()}


def other_ctc_architectures() -> dict:
    """Tiny HuBERT, WavLM (raw waveform, wav2vec2's API; layer-norm front ends, run with an attention mask like
    their large checkpoints) and Wav2Vec2-BERT (mel input_features) CTC models."""
    from transformers import (
        HubertConfig,
        HubertForCTC,
        SeamlessM4TFeatureExtractor,
        Wav2Vec2BertConfig,
        Wav2Vec2BertForCTC,
        Wav2Vec2BertProcessor,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Processor,
        WavLMConfig,
        WavLMForCTC,
    )

    tokenizer = bambara_ctc_tokenizer()
    small = dict(
        vocab_size=len(tokenizer), pad_token_id=0, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, layerdrop=0.0, apply_spec_augment=False, hidden_dropout=0.0, attention_dropout=0.0,
    )  # fmt: skip
    conv = dict(conv_dim=(16, 16, 16), conv_kernel=(10, 8, 4), conv_stride=(5, 8, 8), num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True)  # fmt: skip
    raw = Wav2Vec2Processor(feature_extractor=Wav2Vec2FeatureExtractor(return_attention_mask=True), tokenizer=tokenizer)
    torch.manual_seed(0)
    return {
        "hubert": (HubertForCTC(HubertConfig(**small, **conv)), raw),
        "wavlm": (WavLMForCTC(WavLMConfig(**small, **conv)), raw),
        "wav2vec2-bert": (
            Wav2Vec2BertForCTC(Wav2Vec2BertConfig(**small, feature_projection_input_dim=160)),
            Wav2Vec2BertProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tokenizer),
        ),
    }


@pytest.fixture(scope="module")
def others():
    return other_ctc_architectures()


@pytest.fixture(params=[*BUILDERS, "hubert", "wavlm", "wav2vec2-bert"])
def ctc(request, built, others):
    model, processor = {**built, **others}[request.param]
    return copy.deepcopy(model), processor


def clips(n: int = 2) -> list[np.ndarray]:
    return [synthetic_clip(0.6 + 0.3 * i, 180.0 + 70 * i, seed=i) for i in range(n)]


def sampling_defaults() -> dict:
    return {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": None, "repetition_penalty": 1.0}


# --------------------------------------------------------------------------------------------------
# The CTC machinery against brute force
# --------------------------------------------------------------------------------------------------


def brute_force_log_prob(log_probs: torch.Tensor, target: tuple[int, ...], blank: int) -> torch.Tensor:
    """log sum over every frame path (V^T of them) that collapses to ``target`` of the path's probability."""
    steps, vocab = log_probs.shape
    terms = []
    for path in itertools.product(range(vocab), repeat=steps):
        collapsed = [p for i, p in enumerate(path) if p != blank and (i == 0 or p != path[i - 1])]
        if tuple(collapsed) == target:
            terms.append(log_probs[torch.arange(steps), torch.tensor(path)].sum())
    return torch.logsumexp(torch.stack(terms), 0) if terms else torch.tensor(-math.inf)


def test_sequence_log_probs_equal_brute_force_enumeration():
    torch.manual_seed(0)
    vocab, blank = 4, 0
    logits = torch.randn(2, 6, vocab, dtype=torch.float64, requires_grad=True)
    frames = torch.tensor([6, 4])  # clip 1 has 2 padding frames
    log_probs = torch.log_softmax(logits, -1)
    # G rows per clip: empty, repeated label with a blank needed between, distinct labels, the longest possible
    labels = [[], [1, 1], [2, 3, 2], [1, 1, 1], [], [3], [1, 2, 3, 1], [1, 1, 2, 2]]
    clip_of_row = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    got = sequence_log_probs(log_probs, frames, clip_of_row, labels, blank)
    expected = torch.stack(
        [brute_force_log_prob(log_probs[c, : frames[c]], tuple(y), blank) for c, y in zip(clip_of_row, labels)]
    )
    assert torch.isfinite(expected[:7]).all() and expected[7] == -math.inf  # 1 1 2 2 needs 6 frames
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    # gradients w.r.t. the logits too (the GRPO update), over the feasible rows (every sampled transcript is)
    feasible = sequence_log_probs(log_probs, frames, clip_of_row[:7], labels[:7], blank)
    (grad_got,) = torch.autograd.grad(feasible.sum(), logits, retain_graph=True)
    (grad_expected,) = torch.autograd.grad(expected[:7].sum(), logits)
    torch.testing.assert_close(grad_got, grad_expected, rtol=0, atol=1e-10)
    assert grad_got[1, 4:].abs().max() == 0  # padding frames get no gradient


def test_all_label_sequences_of_a_clip_sum_to_one():
    """p(y|x) over every collapsed sequence of a short clip is a distribution (empty transcript included)."""
    torch.manual_seed(1)
    log_probs = torch.log_softmax(torch.randn(1, 4, 3, dtype=torch.float64), -1)
    sequences = {(), *[tuple(s) for n in range(1, 5) for s in itertools.product((1, 2), repeat=n)]}
    feasible = [list(s) for s in sequences if len(s) + sum(a == b for a, b in zip(s, s[1:])) <= 4]
    got = sequence_log_probs(log_probs, torch.tensor([4]), torch.zeros(len(feasible), dtype=torch.long), feasible, 0)
    assert float(got.exp().sum()) == pytest.approx(1.0, abs=1e-12)


def test_sampled_paths_follow_the_policy_distribution():
    """Frequencies of collapsed samples on a peaked toy distribution against exact p(y|x) (chi-square)."""
    torch.manual_seed(0)
    blank = 0
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.1, 0.3]], dtype=torch.float64)
    log_probs = probs.log()[None]
    rows = 20_000
    generator = torch.Generator().manual_seed(1234)
    paths = sample_paths(log_probs, torch.tensor([3]), torch.zeros(rows, dtype=torch.long), blank, generator)
    counts: dict[tuple[int, ...], int] = {}
    for labels in collapse_paths(paths, blank):
        counts[tuple(labels)] = counts.get(tuple(labels), 0) + 1
    outcomes = sorted({tuple(s) for n in range(4) for s in itertools.product((1, 2), repeat=n)} | set(counts))
    exact = sequence_log_probs(
        log_probs, torch.tensor([3]), torch.zeros(len(outcomes), dtype=torch.long), [list(o) for o in outcomes], blank
    ).exp()
    assert float(exact.sum()) == pytest.approx(1.0, abs=1e-12)
    expected = exact * rows
    observed = torch.tensor([counts.get(o, 0) for o in outcomes], dtype=torch.float64)
    keep = expected > 5  # chi-square cells; the rare ones are pooled
    chi2 = (((observed[keep] - expected[keep]) ** 2) / expected[keep]).sum() + (
        (observed[~keep].sum() - expected[~keep].sum()) ** 2 / expected[~keep].sum().clamp(min=1e-9)
    )
    degrees = int(keep.sum())  # cells - 1, plus the pooled cell
    assert float(chi2) < degrees + 6 * math.sqrt(2 * degrees), (chi2, degrees)
    # the most likely transcript is [1] (frames: blank|1|blank, blank|1|2 ...), seen about as often as predicted
    assert counts[(1,)] / rows == pytest.approx(float(exact[outcomes.index((1,))]), abs=0.02)


def test_temperature_scales_the_frame_distribution():
    logits = torch.tensor([[[2.0, 0.0, -1.0]]])
    torch.testing.assert_close(frame_log_probs(logits, 2.0), torch.log_softmax(logits / 2.0, -1))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        frame_log_probs(logits, 0.0)


def test_collapse_merges_repeats_then_drops_blanks():
    a, b, blank = 5, 6, 0
    paths = torch.tensor(
        [
            [a, a, blank, a, blank],  # a blank between two a's keeps both
            [blank, blank, blank, blank, blank],  # all blank: the empty transcript
            [a, b, b, blank, b],
            [b, b, b, b, b],
        ]
    )
    assert collapse_paths(paths, blank) == [[a, a], [], [a, b, b], [b]]


def test_padding_frames_are_never_sampled_nor_decoded():
    log_probs = torch.log(torch.tensor([[[0.0, 1.0]] * 5]).clamp(min=1e-30))  # label 1 everywhere, never blank
    paths = sample_paths(log_probs, torch.tensor([2]), torch.tensor([0, 0]), blank=0)
    assert paths[:, 2:].eq(0).all() and paths[:, :2].eq(1).all()
    assert greedy_labels(log_probs, torch.tensor([2]), blank=0) == [[1]]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_decoding_keeps_repeats_that_a_blank_separates(name, built):
    """Rewards see 'aa' for the path a-blank-a; the tokenizer's own CTC decode would group it to 'a'."""
    model, processor = built[name]
    policy = CTCPolicy(copy.deepcopy(model), processor, PolicyOptions())
    tokenizer = processor.tokenizer
    a = tokenizer.convert_tokens_to_ids("a")
    labels = collapse_paths(torch.tensor([[a, policy.blank, a]]), policy.blank)
    assert labels == [[a, a]]
    assert tokenizer.decode([a, a], skip_special_tokens=True) == "a"  # the hazard: grouped a second time
    assert decode_labels(tokenizer, labels) == ["aa"]
    # what TRL decodes: the completion (labels + end blank) with the policy's tokenizer
    assert policy.tokenizer.batch_decode([[a, a, policy.blank]], skip_special_tokens=True) == ["aa"]
    assert tokenizer.batch_decode([[a, a]]) == ["a"]  # the user's tokenizer is not changed
    words = tokenizer("i ni ce").input_ids
    assert decode_labels(tokenizer, [words]) == ["i ni ce"]


# --------------------------------------------------------------------------------------------------
# The policy against transformers' own CTC loss, and its inputs
# --------------------------------------------------------------------------------------------------


def transformers_log_prob(model, processor, waveform: np.ndarray, labels: list[int]) -> float:
    """log p(y|x) as transformers computes it: minus the model's summed CTC loss on the clip alone."""
    model = copy.deepcopy(model).eval()
    model.config.ctc_loss_reduction = "sum"
    model.config.ctc_zero_infinity = False
    inputs = processor.feature_extractor(
        [waveform], sampling_rate=16000, return_attention_mask=True, return_tensors="pt"
    )
    main = model.main_input_name
    kwargs = {main: inputs[main]}
    if main != "input_values" or processor.feature_extractor.return_attention_mask:
        kwargs["attention_mask"] = inputs["attention_mask"]
    target = torch.tensor([labels if labels else [-100]])
    with torch.no_grad():
        return -float(model(**kwargs, labels=target).loss)


def score_rows(policy, model, waveforms, completions, clip_of_row):
    batch = ClipBatch(policy.clip_inputs(waveforms, CPU, torch.float32), torch.tensor(clip_of_row))
    width = max(len(c) for c in completions)
    ids = torch.tensor([c + [policy.blank] * (width - len(c)) for c in completions])
    mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in completions])
    with torch.no_grad():
        logps, entropies = policy.log_probs(model, batch, ids, mask, width, batch_size=3, compute_entropy=True)
    return logps, entropies, mask


def test_policy_log_probs_equal_the_models_own_ctc_loss(ctc):
    model, processor = ctc
    model.eval()
    policy = CTCPolicy(model, processor, PolicyOptions())
    policy.configure_sampling(sampling_defaults())
    waveforms = clips(3)
    clip_of_row = [0, 0, 1, 1, 2, 2]
    batch = ClipBatch(policy.clip_inputs(waveforms, CPU, torch.float32), torch.tensor(clip_of_row))
    torch.manual_seed(0)
    with torch.no_grad():
        completions = policy.sample(model, batch)
    completions[1] = [policy.blank]  # the empty transcript is a valid completion
    assert all(c[-1] == policy.blank and policy.blank not in c[:-1] for c in completions)
    logps, entropies, mask = score_rows(policy, model, waveforms, completions, clip_of_row)
    for row, clip in enumerate(clip_of_row):
        expected = transformers_log_prob(model, processor, waveforms[clip], completions[row][:-1])
        assert float(logps[row].sum()) == pytest.approx(expected, abs=2e-4 * max(1.0, abs(expected)))
        n = int(mask[row].sum())  # spread evenly over the completion's tokens (labels + end blank)
        torch.testing.assert_close(logps[row, :n], logps[row, :1].expand(n))
        assert logps[row, n:].abs().sum() == 0
    assert torch.all(entropies[0] == entropies[1]) and float(entropies[0, 0]) > 0


def test_group_norm_wav2vec2_runs_without_attention_mask():
    """wav2vec2-base-style models (group-norm feature encoder) get zero padding and no mask, as they were trained;
    the longest clip (no padding) scores as transformers scores it alone, padded clips stop at their own frames."""
    model, processor = tiny_wav2vec2_ctc(feat_extract_norm="group")
    model.eval()
    policy = CTCPolicy(model, processor, PolicyOptions())
    assert not policy.pass_attention_mask
    policy.configure_sampling(sampling_defaults())
    waveforms = clips(2)
    inputs = policy.clip_inputs(waveforms, CPU, torch.float32)
    batch = ClipBatch(inputs, torch.tensor([0, 1]))
    assert set(policy.model_inputs(batch)) == {"input_values"}
    assert policy.frames(model, batch, 10**6).tolist() == [
        int(model._get_feat_extract_output_lengths(torch.tensor(len(w)))) for w in waveforms
    ]
    labels = [[5, 6, 6], [7, 7]]
    logps, _, _ = score_rows(policy, model, waveforms, [y + [policy.blank] for y in labels], [0, 1])
    expected = transformers_log_prob(model, processor, waveforms[1], labels[1])
    assert float(logps[1].sum()) == pytest.approx(expected, abs=1e-4)


def test_min_receptive_field_from_the_conv_config(built):
    model, processor = built["wav2vec2"]
    # kernels (10, 8, 4), strides (5, 8, 8): one frame needs ((1 - 1) * 8 + 4 - 1) * 8 + 8 = 32 conv-2 inputs,
    # (32 - 1) * 5 + 10 = 165 samples
    assert min_clip_samples(model, processor.feature_extractor) == 165
    with torch.no_grad():
        assert model(torch.zeros(1, 165)).logits.shape[1] == 1
        with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
            model(torch.zeros(1, 164))  # one sample fewer: the conv stack has no frame to output
    parakeet, parakeet_processor = built["parakeet"]
    shortest = min_clip_samples(parakeet, parakeet_processor.feature_extractor)
    for samples, frames in ((shortest, 1), (shortest - 1, 0)):
        features = parakeet_processor.feature_extractor(
            [np.zeros(samples, np.float32)], sampling_rate=16000, return_tensors="pt"
        )
        assert int(parakeet._get_subsampling_output_length(features["attention_mask"].sum(-1))[0]) == frames


@pytest.mark.parametrize("name", list(BUILDERS))
def test_greedy_evaluation_is_best_path_decoding_clip_by_clip(name, built):
    """`evaluate_asr` (any family, via policy_for) on a batch of clips == argmax per frame, merge repeats, drop
    blanks, decode, computed here for each clip alone."""
    from rlnf.trainers.asr_eval import evaluate_asr

    model, processor = built[name]
    model = copy.deepcopy(model).eval()
    with torch.no_grad():  # a weaker blank, so the greedy transcripts are not empty
        head = model.lm_head if name == "wav2vec2" else model.ctc_head
        head.bias[model.config.pad_token_id] -= 6.0
    waveforms = clips(3)
    rows = [{"audio": {"array": w, "sampling_rate": 16000}, "text": "i ni ce"} for w in waveforms]
    result = evaluate_asr(model, processor, rows, normalizer="none", batch_size=2)
    expected = []
    for waveform in waveforms:
        inputs = processor.feature_extractor([waveform], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            best = model(**{k: v for k, v in inputs.items() if k in (model.main_input_name, "attention_mask")})
        path = torch.unique_consecutive(best.logits[0].argmax(-1))
        labels = [t for t in path.tolist() if t != model.config.pad_token_id]
        expected.append(processor.tokenizer.decode(labels, group_tokens=False, skip_special_tokens=True))
    assert result["hypotheses"] == expected and any(expected)


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def test_a_ctc_model_without_a_blank_is_refused(built):
    model, processor = built["wav2vec2"]
    model = copy.deepcopy(model)
    model.config.pad_token_id = None
    with pytest.raises(ValueError, match=r"Wav2Vec2ForCTC has no blank token: config.pad_token_id is None"):
        CTCPolicy(model, processor, PolicyOptions())


def test_a_tokenizer_of_another_vocabulary_is_refused(built):
    model, processor = built["wav2vec2"]
    small = copy.copy(processor)
    small.tokenizer = bambara_ctc_tokenizer("abc")
    with pytest.raises(ValueError, match=r"has 8 tokens but the CTC model Wav2Vec2ForCTC outputs 36 labels"):
        CTCPolicy(model, small, PolicyOptions())
    shifted = copy.deepcopy(model)
    shifted.config.pad_token_id = 3
    with pytest.raises(ValueError, match=r"pad token id is 0 but the CTC model Wav2Vec2ForCTC's blank .* is 3"):
        CTCPolicy(shifted, processor, PolicyOptions())


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_clip_shorter_than_the_receptive_field_is_refused(name, built):
    model, processor = built[name]
    policy = CTCPolicy(model, processor, PolicyOptions())
    short = np.zeros(policy.min_samples - 1, np.float32)
    with pytest.raises(
        ValueError,
        match=rf"clip 1 of the batch has {policy.min_samples - 1} samples .* minimum "
        rf"receptive field of {policy.min_samples} samples",
    ):
        policy.clip_inputs([clips(1)[0], short], CPU, torch.float32)
    policy.clip_inputs([np.zeros(policy.min_samples, np.float32)], CPU, torch.float32)  # the shortest is fine


def test_sampling_filters_and_training_randomness_are_refused(built, tmp_path):
    model, processor = built["wav2vec2"]
    policy = CTCPolicy(model, processor, PolicyOptions())
    with pytest.raises(ValueError, match=r"top_k=5 is not supported for CTC policies"):
        policy.configure_sampling({**sampling_defaults(), "top_k": 5})
    with pytest.raises(ValueError, match=r"top_p=0.9 is not supported"):
        policy.configure_sampling(sampling_defaults(), {"top_p": 0.9})
    for field, value, message in (
        ("apply_spec_augment", True, "apply_spec_augment=True"),
        ("layerdrop", 0.1, "layerdrop=0.1"),
    ):
        noisy = copy.deepcopy(model)
        setattr(noisy.config, field, value)
        if field == "apply_spec_augment":
            noisy.config.mask_time_prob = 0.05
        with pytest.raises(ValueError, match=message):
            ASRGRPOTrainer(
                model=noisy,
                reward_funcs=[length_reward],
                args=make_args(tmp_path),
                train_dataset=clip_dataset(),
                processing_class=processor,
            )
    with pytest.raises(ValueError, match="cast_lm_head_to_fp32=True is not supported for CTC policies"):
        ASRGRPOTrainer(
            model=copy.deepcopy(model),
            reward_funcs=[length_reward],
            args=make_args(tmp_path, cast_lm_head_to_fp32=True),
            train_dataset=clip_dataset(),
            processing_class=processor,
        )


def test_policy_for_picks_the_ctc_family(built, tmp_path):
    from rlnf.policies.base import load_policy_model

    for model, processor in built.values():
        assert isinstance(policy_for(model, processor), CTCPolicy)
    from transformers import AutoProcessor

    for name, (model, processor) in built.items():  # save -> load by the family's Auto class, same tokens
        model.save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
        loaded, reloaded = load_policy_model(str(tmp_path / name)), AutoProcessor.from_pretrained(tmp_path / name)
        assert type(loaded) is type(model) and isinstance(policy_for(loaded, reloaded), CTCPolicy)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
        ids = reloaded.tokenizer("aa bɛ", add_special_tokens=False).input_ids
        assert ids == processor.tokenizer("aa bɛ", add_special_tokens=False).input_ids
        assert decode_labels(reloaded.tokenizer, [ids]) == ["aa bɛ"]


# --------------------------------------------------------------------------------------------------
# ASRGRPOTrainer with CTC policies
# --------------------------------------------------------------------------------------------------


make_args = functools.partial(grpo_args, per_device_eval_batch_size=G)  # evaluation: one group per batch


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before: dict[str, torch.Tensor], model) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}


def recorded_losses(trainer) -> list[dict]:
    """Wrap TRL's loss so each call records its inputs, the weights it saw and the loss."""
    records: list[dict] = []
    original = trainer._compute_loss

    def record(model, inputs):
        state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        loss = original(model, inputs)
        records.append({"inputs": inputs, "state": state, "loss": float(loss.detach())})
        return loss

    trainer._compute_loss = record
    return records


def test_grpo_step_loss_equals_a_hand_computation(built, tmp_path):
    model, processor = built["wav2vec2"]
    trainer = ASRGRPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[length_reward],
        args=make_args(tmp_path),
        train_dataset=clip_dataset(),
        processing_class=processor,
    )
    records = recorded_losses(trainer)
    trainer.train()
    assert len(records) == 2
    beta = trainer.args.beta
    reference = copy.deepcopy(model)  # a clean copy: TRL patched the forward of its own reference model
    reference.load_state_dict(trainer.ref_model.state_dict())
    for step, record in enumerate(records):
        inputs = record["inputs"]
        policy_model = copy.deepcopy(model)
        policy_model.load_state_dict(record["state"])
        batch = ClipBatch.from_row_views(inputs["audio_clips"], CPU)
        waveform_rows = batch.clip_of_row.tolist()
        ids, mask = inputs["completion_ids"], inputs["completion_mask"]
        advantages = inputs["advantages"].tolist()
        expected = []
        for row in range(ids.size(0)):
            n = int(mask[row].sum())
            labels = ids[row, : n - 1].tolist()
            clip_inputs = {k: v[waveform_rows[row]][None] for k, v in batch.inputs.items()}
            logp = hand_log_prob(policy_model, clip_inputs, labels)
            ref = hand_log_prob(reference, clip_inputs, labels)
            # sequence level: ratio exp((logp - logp_old) / n) = 1 on-policy; k3 KL of the per-token share
            delta = (ref - logp) / n
            expected.append(-advantages[row] + beta * (math.exp(delta) - delta - 1))
        assert record["loss"] == pytest.approx(sum(expected) / len(expected), abs=1e-6)
        if step == 1:  # the policy moved after step 1: the KL term is not zero
            assert any(abs(e + a) > 1e-9 for e, a in zip(expected, advantages))


def hand_log_prob(model, clip_inputs: dict, labels: list[int]) -> float:
    """transformers' own CTC loss (sum, no zero_infinity) on one clip, in eval mode, as log p(y|x)."""
    model = copy.deepcopy(model).eval()
    model.config.ctc_loss_reduction, model.config.ctc_zero_infinity = "sum", False
    with torch.no_grad():
        return -float(model(**clip_inputs, labels=torch.tensor([labels or [-100]])).loss)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_one_forward_per_clip_per_pass(name, built, tmp_path):
    model, processor = built[name]
    trainer = ASRGRPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[length_reward],
        args=make_args(tmp_path, max_steps=1),
        train_dataset=clip_dataset(),
        processing_class=processor,
    )
    policy_calls: list[int] = []
    reference_calls: list[int] = []
    trainer.model.register_forward_hook(
        lambda _m, args, kwargs, out: policy_calls.append(out.logits.shape[0]), with_kwargs=True
    )
    trainer.ref_model.register_forward_hook(
        lambda _m, a, k, out: reference_calls.append(out.logits.shape[0]), with_kwargs=True
    )
    trainer.train()
    # sampling: one forward over the 2 clips; loss pass: one forward over the 2 clips (not 2 x G rows)
    assert policy_calls == [CLIPS_PER_STEP, CLIPS_PER_STEP]
    assert reference_calls == [CLIPS_PER_STEP]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_full_fine_tuning_keeps_the_feature_encoder_frozen(name, built, tmp_path):
    model, processor = built[name]
    trainer = ASRGRPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[length_reward],
        args=make_args(tmp_path),
        train_dataset=clip_dataset(),
        processing_class=processor,
    )
    before = snapshot(trainer.model)
    trainer.train()
    moved = changed(before, trainer.model)
    front = "wav2vec2.feature_extractor." if name == "wav2vec2" else "encoder.subsampling."
    assert moved and not any(n.startswith(front) for n in moved)
    assert any(n.startswith(("lm_head", "ctc_head")) for n in moved)
    assert any("layers.1." in n for n in moved)  # the transformer trains
    assert all(math.isfinite(h["loss"]) for h in trainer.state.log_history if "loss" in h)


def test_the_feature_encoder_trains_when_asked(built, tmp_path):
    model, processor = built["wav2vec2"]
    trainer = ASRGRPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[length_reward],
        args=make_args(tmp_path, freeze_feature_encoder=False),
        train_dataset=clip_dataset(),
        processing_class=processor,
    )
    before = snapshot(trainer.model)
    trainer.train()
    assert any(n.startswith("wav2vec2.feature_extractor.conv_layers.0.") for n in changed(before, trainer.model))


def test_lora_trains_only_the_adapter_weights(built, tmp_path):
    from peft import LoraConfig

    model, processor = built["wav2vec2"]
    trainer = ASRGRPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[length_reward],
        args=make_args(tmp_path),
        train_dataset=clip_dataset(),
        processing_class=processor,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    before = snapshot(trainer.model)
    trainer.train()
    moved = changed(before, trainer.model)
    assert moved and all("lora_" in n for n in moved), moved
    with pytest.raises(ValueError, match="PEFT has no CTC task"):
        ASRGRPOTrainer(
            model=copy.deepcopy(model),
            reward_funcs=[length_reward],
            args=make_args(tmp_path),
            train_dataset=clip_dataset(),
            processing_class=processor,
            peft_config=LoraConfig(r=4, target_modules=["q_proj"], task_type="SEQ_CLS"),
        )


def test_mms_adapter_only_training_changes_only_adapters_and_head(tmp_path):
    model, processor = tiny_wav2vec2_ctc(adapter_attn_dim=8)
    trainer = ASRGRPOTrainer(
        model=model,
        reward_funcs=[length_reward],
        args=make_args(tmp_path, freeze_encoder=True),
        train_dataset=clip_dataset(),
        processing_class=processor,
    )
    adapters = {n for n in trainer.model._get_adapters()}
    assert {n for n, p in trainer.model.named_parameters() if p.requires_grad} == adapters
    before = snapshot(trainer.model)
    trainer.train()
    moved = changed(before, trainer.model)
    assert moved <= adapters and any(".adapter_layer." in n for n in moved) and "lm_head.weight" in moved


def test_two_steps_with_the_reward_model_and_wer(built, tmp_path):
    from rlnf.rewards.audio_text_reward import AudioTextReward
    from rlnf.testing import tiny_reward_model

    reward_model, reward_processor = tiny_reward_model(tmp_path / "rm")
    reward = AudioTextReward(reward_model, reward_processor, device="cpu")
    model, processor = built["parakeet"]
    trainer = ASRGRPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[reward, "wer"],
        args=make_args(tmp_path),
        train_dataset=clip_dataset(),
        eval_dataset=clip_dataset(),
        processing_class=processor,
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) for h in logs)
    assert all(0.0 <= h["rewards/reward_model/mean"] <= 1.0 for h in logs), logs[0].keys()
    assert all(0.0 <= h["rewards/wer/mean"] <= 1.0 for h in logs)
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_cer"] and metrics["eval_wer"] >= 0.0


def test_two_processes_train_like_one(built, tmp_path):
    """1 process x 8 completions per step == 2 CPU processes x 4 (gloo), with the sampling noise keyed by global
    row (``tests/distributed_scripts/grpo_ctc_tiny.py``): same completions, per-step losses and metrics, weights.
    Tolerances as in ``test_distributed_equivalence.py`` (float32 sums in another order: a few ulps), except the
    weights: abs 5e-5 = 5 % of one AdamW step (lr 1e-3), because Adam's g / sqrt(v) turns ulp differences of a
    near-zero gradient into up to 1.5e-5 here (measured: 1 element of ~30k). A gradient not averaged over ranks
    moves weights by ~1e-3 and its scale would show in grad_norm (rel 1e-5)."""
    from safetensors.torch import load_file
    from test_distributed_equivalence import assert_logs_match, launch, read_grpo_run

    script = Path(__file__).resolve().parent / "distributed_scripts" / "grpo_ctc_tiny.py"
    model, processor = built["wav2vec2"]
    policy = tmp_path / "policy"
    model.save_pretrained(policy)
    processor.save_pretrained(policy)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    launch(script, str(policy), str(one), str(G * CLIPS_PER_STEP), processes=1)
    launch(script, str(policy), str(two), str(G * CLIPS_PER_STEP // 2), processes=2)
    (log_one,), samples_one, (state_one,) = read_grpo_run(one, 1)
    (log_two, log_two_rank1), samples_two, (state_two, state_two_rank1) = read_grpo_run(two, 2)
    assert len(samples_one) == 2 * G * CLIPS_PER_STEP and samples_one == samples_two
    steps = [entry for entry in log_one if "loss" in entry]
    assert len(steps) == 2 and all(entry["reward_std"] > 0.01 for entry in steps) and steps[1]["kl"] > 0
    assert_logs_match(log_one, log_two, rtol=1e-5, atol=1e-6)
    assert_logs_match(log_two, log_two_rank1, rtol=1e-5, atol=1e-6)
    initial = load_file(policy / "model.safetensors")
    moved = max((state_one[k] - initial[k]).abs().max().item() for k in initial if k in state_one)
    assert moved > 1e-3
    for key in state_one:
        assert torch.equal(state_two[key], state_two_rank1[key]), key
        torch.testing.assert_close(state_two[key], state_one[key], rtol=0, atol=5e-5, msg=key)


# --------------------------------------------------------------------------------------------------
# Supervised CTC fine-tuning (the warm start)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILDERS))
def test_sft_collator_targets_round_trip_and_the_model_learns_them(name, built):
    from rlnf.policies.ctc import CTCCollator, ctc_label_text

    model, processor = built[name]
    model = copy.deepcopy(model)
    rows = [{"audio": {"array": w, "sampling_rate": 16000}, "text": t} for w, t in zip(clips(2), ["Ɛ ni ce!", "Aa bɛ"])]
    collator = CTCCollator(processor, main_input_name=model.main_input_name)
    batch = collator(rows)
    assert ctc_label_text(processor.tokenizer, "Ɛ ni ce!") == "ɛ ni ce"  # the rewards' normalisation
    labels = [[t for t in row if t >= 0] for row in batch["labels"].tolist()]
    assert decode_labels(processor.tokenizer, labels) == ["ɛ ni ce", "aa bɛ"]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses
