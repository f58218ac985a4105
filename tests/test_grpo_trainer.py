"""ASRGRPOTrainer on a tiny offline Whisper: training (full / LoRA, with and without KL), one encoder pass per
clip, greedy WER/CER evaluation, save + resume, and the errors a user sees for bad input."""

from __future__ import annotations

import copy
import logging
import warnings

import jiwer
import numpy as np
import pytest
import torch
import trl
from datasets import Dataset
from trl import TrlParser

from rlnf.policies.base import peft_base
from rlnf.policies.tiny_whisper import build_tiny_whisper
from rlnf.policies.whisper import decoder_prefix_ids
from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer, RewardFunctionError, UndecodableAudioError

G = 4
CLIPS_PER_STEP = 2


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny model is faster on one thread, and the test machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_policy():
    texts = [
        "i ni ce",
        "an bɛ taa sugu la",
        "sanji bɛ na bi",
        "den fila bɛ yen",
        "i ni sɔgɔma",
        "a bɛ so kɔnɔ",
        "ne tɔgɔ ye Fanta ye",
        "muso ni cɛ bɛ baara la",
    ] * 3
    return build_tiny_whisper(
        texts, d_model=64, layers=2, heads=2, max_source_positions=100, max_target_positions=32, vocab_size=300
    )


@pytest.fixture
def policy(tiny_policy):
    model, processor = tiny_policy
    return copy.deepcopy(model), processor


def make_args(tmp_path, **overrides) -> ASRGRPOConfig:
    values = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=G * CLIPS_PER_STEP,
        per_device_eval_batch_size=G,
        num_generations=G,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        eval_normalizer="none",
        dataloader_num_workers=0,
    )
    values.update(overrides)
    return ASRGRPOConfig(**values)


def wer_reward(completions, text, **kwargs):
    """Plain 1 - WER (jiwer), clipped at 0."""
    return [max(0.0, 1.0 - jiwer.wer(ref, hyp or "<empty>")) for hyp, ref in zip(completions, text, strict=True)]


class AudioCheckingReward:
    """Character overlap with the reference (non-zero variance even for a random policy); checks what TRL
    passes: the decoded audio (one object per clip) and the reference column."""

    __name__ = "overlap"

    def __init__(self):
        self.calls = 0
        self.completion_ids: list[list[int]] = []

    def __call__(self, completions, audio, text, completion_ids, **kwargs):
        self.calls += 1
        self.completion_ids.extend(completion_ids)
        assert len(audio) == len(text) == len(completions) == G * CLIPS_PER_STEP
        assert all(isinstance(a, dict) and a["sampling_rate"] == 16000 for a in audio)
        assert all(isinstance(a["array"], np.ndarray) and a["array"].dtype == np.float32 for a in audio)
        assert len({id(a) for a in audio}) == CLIPS_PER_STEP  # the G rows of a clip share one decoded object
        assert all(isinstance(t, str) and t for t in text)
        assert "__rlnf_row__" not in kwargs
        return [len(set(hyp) & set(ref)) / len(set(ref)) for hyp, ref in zip(completions, text, strict=True)]


def encoder_batch_sizes(model) -> list[int]:
    """Record the batch size of every call of ``model``'s encoder."""
    sizes: list[int] = []
    peft_base(model).get_encoder().register_forward_hook(
        lambda _m, _a, out: sizes.append(out.last_hidden_state.shape[0])
    )
    return sizes


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before: dict[str, torch.Tensor], model, prefix: str = "") -> set[str]:
    return {
        name
        for name, p in model.named_parameters()
        if name.startswith(prefix) and not torch.equal(before[name], p.detach())
    }


# ----------------------------------------------------------------------------------------------------
# Config (the TRL internals rlnf overrides are checked in test_trl_compat.py)
# ----------------------------------------------------------------------------------------------------


def test_config_defaults_and_cli(tmp_path):
    args = ASRGRPOConfig(output_dir=str(tmp_path))
    assert (args.audio_column, args.reference_column, args.sampling_rate) == ("audio", "text", 16000)
    assert (args.language, args.task, args.predict_timestamps, args.pad_features_to) == (
        None,
        "transcribe",
        False,
        "model",
    )
    assert (args.max_completion_length, args.temperature, args.beta, args.num_generations) == (128, 1.0, 0.04, 8)
    assert args.gradient_checkpointing is False
    assert args.bf16 is (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    own = [f for f in ASRGRPOConfig.__dataclass_fields__.values() if f.name not in trl.GRPOConfig.__dataclass_fields__]
    assert own and all(f.metadata.get("help") for f in own)
    (parsed,) = TrlParser(ASRGRPOConfig).parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--audio_column",
            "speech",
            "--language",
            "fr",
            "--freeze_encoder",
            "true",
            "--pad_features_to",
            "30s",
            "--reference_column",
            "None",
        ]
    )
    assert (parsed.audio_column, parsed.language, parsed.freeze_encoder, parsed.pad_features_to) == (
        "speech",
        "fr",
        True,
        "30s",
    )
    assert parsed.reference_column is None


def test_decoder_prefix(policy):
    _, processor = policy
    tokenizer = processor.tokenizer
    tokens = tokenizer.convert_ids_to_tokens(decoder_prefix_ids(tokenizer))
    assert tokens == ["<|startoftranscript|>", "<|transcribe|>", "<|notimestamps|>"]
    with pytest.raises(ValueError, match="language token '<\\|bm\\|>'"):
        decoder_prefix_ids(tokenizer, language="bm")


# ----------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------


def test_full_finetuning_with_kl_runs_encoder_once_per_clip(tmp_path, policy, audio_dataset):
    model, processor = policy
    suppressed = list(range(100, 250))  # the checkpoint's generation config is honoured when sampling
    model.generation_config.suppress_tokens = suppressed
    reward = AudioCheckingReward()
    trainer = ASRGRPOTrainer(
        model,
        [wer_reward, reward],
        args=make_args(tmp_path, beta=0.04),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    policy_calls = encoder_batch_sizes(trainer.model)
    reference_calls = encoder_batch_sizes(trainer.ref_model)
    before = snapshot(trainer.model)
    trainer.train()

    assert reward.calls == 2
    sampled = [token for ids in reward.completion_ids for token in ids]
    assert len(reward.completion_ids) == 2 * G * CLIPS_PER_STEP and not set(sampled) & set(suppressed)
    eos = processor.tokenizer.eos_token_id
    assert all(ids and ids[0] != eos for ids in reward.completion_ids)  # begin_suppress_tokens: no empty transcript
    prefix = decoder_prefix_ids(processor.tokenizer)
    assert not any(ids[: len(prefix)] == prefix for ids in reward.completion_ids)  # completions exclude the prefix
    # Per step: generation + loss pass on the policy, one reference pass; each over the 2 unique clips only.
    assert policy_calls == [CLIPS_PER_STEP] * 4
    assert reference_calls == [CLIPS_PER_STEP] * 2
    assert changed(before, trainer.model, "model.encoder."), "gradients must reach the encoder"
    assert changed(before, trainer.model, "model.decoder.")
    assert trainer.ref_model is not trainer.model
    assert all(not p.requires_grad for p in trainer.ref_model.parameters())
    logs = trainer.state.log_history
    assert "kl" in logs[0] and "rewards/overlap/mean" in logs[0] and "rewards/wer_reward/mean" in logs[0]
    assert logs[0]["completions/max_length"] <= 8


def test_lora_with_kl_uses_base_model_as_reference(tmp_path, policy, audio_dataset):
    from peft import LoraConfig

    model, processor = policy
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    trainer = ASRGRPOTrainer(
        model,
        AudioCheckingReward(),
        args=make_args(tmp_path, beta=0.04, max_steps=1),
        train_dataset=audio_dataset,
        processing_class=processor,
        peft_config=lora,
    )
    assert trainer.ref_model is None  # TRL disables the adapters for the reference pass
    calls = encoder_batch_sizes(trainer.model)
    before = snapshot(trainer.model)
    trainer.train()
    moved = changed(before, trainer.model)
    assert moved and all("lora_" in name for name in moved)
    assert any(".encoder." in name for name in moved) and any(".decoder." in name for name in moved)
    assert calls == [CLIPS_PER_STEP] * 3  # generation, reference (adapters off), loss


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_gradient_checkpointing(tmp_path, policy, audio_dataset, lora):
    """Backward re-runs checkpointed decoder layers: the per-clip hooks must still be in place then."""
    from peft import LoraConfig

    model, processor = policy
    peft = LoraConfig(r=4, lora_alpha=8, target_modules=["k_proj", "v_proj"]) if lora else None
    trainer = ASRGRPOTrainer(
        model,
        AudioCheckingReward(),
        args=make_args(tmp_path, max_steps=1, beta=0.0, gradient_checkpointing=True),
        train_dataset=audio_dataset,
        processing_class=processor,
        peft_config=peft,
    )
    before = snapshot(trainer.model)
    trainer.train()
    assert changed(before, trainer.model)
    assert all(not hooks.handles for hooks in trainer._deferred_hooks or [])


def test_frozen_encoder_is_run_once_per_clip_per_step(tmp_path, policy, audio_dataset):
    model, processor = policy
    trainer = ASRGRPOTrainer(
        model,
        AudioCheckingReward(),
        args=make_args(tmp_path, beta=0.04, max_steps=1, freeze_encoder=True),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    calls = encoder_batch_sizes(trainer.model)
    reference_calls = encoder_batch_sizes(trainer.ref_model)
    before = snapshot(trainer.model)
    trainer.train()
    assert calls == [CLIPS_PER_STEP] and reference_calls == []  # generation's states serve every pass
    assert not changed(before, trainer.model, "model.encoder.")
    assert changed(before, trainer.model, "model.decoder.")


def test_buffered_generation_shuffled_micro_batches(tmp_path, policy, audio_dataset):
    """steps_per_generation=2 and num_iterations=2: TRL shuffles and splits the generation batch and computes
    old log-probs; every pass still encodes each clip of its rows once."""
    model, processor = policy
    args = make_args(tmp_path, per_device_train_batch_size=G, gradient_accumulation_steps=2, num_iterations=2, beta=0.0)
    reward = AudioCheckingReward()  # still sees the whole generation batch: 8 rows, 2 clips
    trainer = ASRGRPOTrainer(model, reward, args=args, train_dataset=audio_dataset, processing_class=processor)
    calls = encoder_batch_sizes(trainer.model)
    trainer.train()
    assert trainer.state.global_step == 2 and reward.calls == 1  # one generation serves 2 optimizer steps
    # generation (both clips), the old policy's pass in chunks of per_device_train_batch_size rows = one clip
    # each (a clip is never split across chunks), then 4 loss micro-batches of shuffled rows
    assert calls[:3] == [CLIPS_PER_STEP, 1, 1]
    assert len(calls) == 3 + 4 and all(1 <= n <= CLIPS_PER_STEP for n in calls[3:])


def test_log_probs_and_encoder_gradients_match_a_plain_per_row_forward(tmp_path, policy, audio_dataset):
    """The per-clip encoder and cross-attention shortcuts change the cost, not the numbers."""

    model, processor = policy
    trainer = ASRGRPOTrainer(
        model, wer_reward, args=make_args(tmp_path), train_dataset=audio_dataset, processing_class=processor
    )
    trainer.model.train()
    rows, clips, _ = trainer._collect_clips([audio_dataset[i] for i in (1, 0, 1, 2, 0, 1, 2)])
    assert clips.features.shape[0] == 3 and clips.clip_of_row.tolist() == [0, 1, 0, 2, 1, 0, 2]
    generator = torch.Generator().manual_seed(0)
    completions = torch.randint(8, len(processor.tokenizer), (7, 6), generator=generator)
    prefix = torch.tensor([trainer.policy.prompt_ids] * 7)
    ids = torch.cat([prefix, completions], dim=1)
    mask = torch.ones_like(ids)
    mask[2, -2:] = 0  # a shorter completion

    trainer._clip_batch = clips
    logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
        trainer.model, ids, mask, logits_to_keep=6, batch_size=3, compute_entropy=True
    )
    logps.sum().backward()
    ours = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    trainer.model.zero_grad()

    logits = trainer.model(
        input_features=clips.features[clips.clip_of_row], decoder_input_ids=ids, decoder_attention_mask=mask
    ).logits
    plain = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0][:, -6:] * mask[:, -6:]
    torch.testing.assert_close(logps, plain, atol=1e-5, rtol=1e-4)
    assert entropies.shape == logps.shape
    plain.sum().backward()
    encoder_grads = [n for n in ours if ".encoder." in n]
    assert encoder_grads
    for name in ours:
        torch.testing.assert_close(ours[name], trainer.model.get_parameter(name).grad, atol=1e-5, rtol=1e-3, msg=name)


def test_save_and_resume_match_an_uninterrupted_run(tmp_path, policy, audio_dataset):
    from transformers import WhisperProcessor

    model, processor = policy
    initial = copy.deepcopy(model)
    args = make_args(tmp_path, beta=0.0, save_strategy="steps", save_steps=1)
    straight = ASRGRPOTrainer(
        model, AudioCheckingReward(), args=args, train_dataset=audio_dataset, processing_class=processor
    )
    straight.train()
    checkpoint = tmp_path / "out" / "checkpoint-1"
    reloaded = WhisperProcessor.from_pretrained(checkpoint)  # the feature extractor is saved too
    assert len(reloaded.tokenizer) == len(processor.tokenizer)
    assert reloaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()

    resumed = ASRGRPOTrainer(
        initial,
        AudioCheckingReward(),
        args=make_args(tmp_path / "b", beta=0.0),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 2
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


# ----------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------


def greedy_by_hand(model, processor, dataset, max_new_tokens=8) -> list[str]:
    """Greedy decoding written out step by step (no generate()), as an independent reference."""
    tokenizer, fe = processor.tokenizer, processor.feature_extractor
    prefix = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|transcribe|>", "<|notimestamps|>"])
    eos = tokenizer.eos_token_id
    texts = []
    model.eval()
    for row in dataset:
        audio = np.asarray(row["audio"]["array"], dtype=np.float32)
        features = fe(
            audio, sampling_rate=16000, padding="max_length", max_length=200 * 160, return_tensors="pt"
        ).input_features
        ids = list(prefix)
        with torch.no_grad():
            for step in range(max_new_tokens):
                logits = model(input_features=features, decoder_input_ids=torch.tensor([ids])).logits[0, -1]
                if step == 0:
                    logits[eos] = -float("inf")  # the checkpoint's begin_suppress_tokens
                ids.append(int(logits.argmax()))
                if ids[-1] == eos:
                    break
        texts.append(tokenizer.decode(ids[len(prefix) :], skip_special_tokens=True))
    return texts


def test_eval_reports_greedy_corpus_wer_and_cer(tmp_path, policy, audio_dataset):
    model, processor = policy
    reference = copy.deepcopy(model)
    trainer = ASRGRPOTrainer(
        model,
        wer_reward,
        args=make_args(tmp_path, eval_sampled_rewards=False),
        train_dataset=audio_dataset,
        eval_dataset=audio_dataset,
        processing_class=processor,
    )
    metrics = trainer.evaluate()
    hypotheses = greedy_by_hand(reference, processor, audio_dataset)
    references = list(audio_dataset["text"])
    assert metrics["eval_wer"] == pytest.approx(jiwer.wer(references, hypotheses))
    assert metrics["eval_cer"] == pytest.approx(jiwer.cer(references, hypotheses))
    assert trainer.state.log_history[-1]["eval_wer"] == metrics["eval_wer"]


def test_eval_with_sampled_rewards_and_wav_paths(tmp_path, policy, wav_dataset):
    model, processor = policy
    trainer = ASRGRPOTrainer(
        model,
        wer_reward,
        args=make_args(tmp_path),
        train_dataset=wav_dataset,
        eval_dataset={"dev": wav_dataset},
        processing_class=processor,
    )
    metrics = trainer.evaluate()
    assert {"eval_dev_wer", "eval_dev_cer", "eval_dev_loss"} <= set(metrics)
    assert "eval_rewards/wer_reward/mean" in trainer.state.log_history[-1]  # TRL's sampled metrics, logged by TRL


# ----------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------


def test_missing_columns_are_named(tmp_path, policy, audio_dataset):
    model, processor = policy
    args = make_args(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"^train_dataset has no column 'speech' \(audio_column\); its columns are \['audio', 'text'\]$",
    ):
        ASRGRPOTrainer(
            model,
            wer_reward,
            args=make_args(tmp_path, audio_column="speech"),
            train_dataset=audio_dataset,
            processing_class=processor,
        )
    with pytest.raises(
        ValueError,
        match=r"train_dataset has no column 'text' \(reference_column\); its columns are \['audio'\]\. Set reference_column=None",
    ):
        ASRGRPOTrainer(
            model, wer_reward, args=args, train_dataset=audio_dataset.remove_columns("text"), processing_class=processor
        )
    with pytest.raises(
        ValueError,
        match=r"eval_dataset has no column 'text' \(eval_reference_column\); its columns are \['audio', 'sentence'\]\. "
        r"Set eval_reference_column=None for no WER/CER",
    ):
        ASRGRPOTrainer(
            model,
            wer_reward,
            args=args,
            train_dataset=audio_dataset,
            eval_dataset=audio_dataset.rename_column("text", "sentence"),
            processing_class=processor,
        )


def test_completion_length_must_fit_the_decoder(tmp_path, policy, audio_dataset):
    model, processor = policy
    with pytest.raises(ValueError, match=r"max_completion_length=30 plus the 3-token decoder prefix exceeds.*32"):
        ASRGRPOTrainer(
            model,
            wer_reward,
            args=make_args(tmp_path, max_completion_length=30),
            train_dataset=audio_dataset,
            processing_class=processor,
        )


def test_num_generations_must_divide_the_batch(tmp_path):
    with pytest.raises(ValueError, match=r"divisible by num_generations.*sampled num_generations=4 times"):
        make_args(tmp_path, per_device_train_batch_size=6)


def test_wrong_policy_and_processor_types(tmp_path, policy, audio_dataset):
    model, processor = policy
    with pytest.raises(TypeError, match="feature extractor and a tokenizer"):
        ASRGRPOTrainer(
            model,
            wer_reward,
            args=make_args(tmp_path),
            train_dataset=audio_dataset,
            processing_class=processor.tokenizer,
        )
    with pytest.raises(TypeError, match=r"Known families: .*WhisperForConditionalGeneration"):
        ASRGRPOTrainer(
            torch.nn.Linear(2, 2),
            wer_reward,
            args=make_args(tmp_path),
            train_dataset=audio_dataset,
            processing_class=processor,
        )


def test_undecodable_audio_names_the_row(tmp_path, policy, wav_dataset):
    model, processor = policy
    paths = list(wav_dataset["audio"])
    paths[2] = str(tmp_path / "missing.wav")
    broken = Dataset.from_dict({"audio": paths, "text": list(wav_dataset["text"])})
    trainer = ASRGRPOTrainer(
        model,
        wer_reward,
        args=make_args(tmp_path, shuffle_dataset=False),
        train_dataset=broken,
        processing_class=processor,
    )
    with pytest.raises(UndecodableAudioError, match=r"clip 'missing\.wav'.*Pass --skip_undecodable_audio"):
        trainer.train()


def test_undecodable_audio_can_be_skipped(tmp_path, policy, wav_dataset):
    model, processor = policy
    paths = list(wav_dataset["audio"])
    paths[0] = str(tmp_path / "missing.wav")
    broken = Dataset.from_dict({"audio": paths, "text": list(wav_dataset["text"])})
    trainer = ASRGRPOTrainer(
        model,
        wer_reward,
        args=make_args(tmp_path, shuffle_dataset=False, max_steps=1, skip_undecodable_audio=True),
        train_dataset=broken,
        processing_class=processor,
    )
    held_back = []  # TRL's "All reward functions returned None", once per step: the skip was already said
    handler = logging.Handler()
    handler.emit = lambda record: held_back.append(record.getMessage())
    trl_logger = logging.getLogger(ASRGRPOTrainer._trl_module.__name__)
    trl_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train()
    finally:
        trl_logger.removeHandler(handler)
    assert any("clip 'missing.wav'" in str(w.message) and "skipped" in str(w.message) for w in caught)
    assert trainer.state.global_step == 1
    assert not [m for m in held_back if "All reward functions returned None" in m]


def test_failing_reward_names_function_and_step(tmp_path, policy, audio_dataset):
    model, processor = policy

    def flaky_reward(completions, **kwargs):
        raise KeyError("no such column")

    trainer = ASRGRPOTrainer(
        model,
        [wer_reward, flaky_reward],
        args=make_args(tmp_path),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    with pytest.raises(RewardFunctionError, match=r"'flaky_reward' raised KeyError at global step 0"):
        trainer.train()


# ----------------------------------------------------------------------------------------------------
# Regression tests (issue 9 §2): each failed before its fix
# ----------------------------------------------------------------------------------------------------


class LengthCheckingReward:
    """Checks that every row's decoded audio is the clip of its own reference (the clips differ in length)."""

    __name__ = "length_check"

    def __init__(self, lengths: dict[str, int]):
        self.lengths, self.rows = lengths, 0

    def __call__(self, completions, audio, text, **kwargs):
        for clip, ref in zip(audio, text, strict=True):
            assert len(clip["array"]) == self.lengths[ref], f"row of {ref!r} got another clip's audio"
        self.rows += len(completions)
        return [float(len(c)) for c in completions]


def test_sharded_shuffled_iterable_dataset_keeps_each_rows_audio(tmp_path, policy, audio_rows):
    """A streamed dataset with 2 shards, shuffled by TRL: per-shard row indices collide; clips are identified by
    what they are, so every row is sampled and rewarded with its own audio."""
    model, processor = policy
    lengths = {row["text"]: len(row["audio"]["array"]) for row in audio_rows}
    stream = Dataset.from_list(audio_rows).to_iterable_dataset(num_shards=2)
    reward = LengthCheckingReward(lengths)
    args = make_args(tmp_path, per_device_train_batch_size=8, num_generations=2, max_steps=1, beta=0.0)
    trainer = ASRGRPOTrainer(model, reward, args=args, train_dataset=stream, processing_class=processor)
    calls = encoder_batch_sizes(trainer.model)
    trainer.train()
    assert reward.rows == 8
    assert calls[0] == 4  # 4 distinct clips in the generation batch, each encoded once


def test_gradient_checkpointing_turned_on_in_the_model_only(tmp_path, policy, audio_dataset):
    """The policy arrives with checkpointing on while args.gradient_checkpointing=False (CheckpointError before)."""
    model, processor = policy
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainer = ASRGRPOTrainer(
        model,
        AudioCheckingReward(),
        args=make_args(tmp_path, max_steps=1, beta=0.0, gradient_checkpointing=False),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    assert trainer.model.is_gradient_checkpointing
    before = snapshot(trainer.model)
    trainer.train()
    assert changed(before, trainer.model, "model.decoder.")


def test_left_padded_prefix_scores_like_the_unpadded_one(tmp_path, policy, audio_dataset):
    """pad_to_multiple_of left-pads the decoder prefix: the log-probs must not move (Whisper's positions are
    learned; they shifted by the padding before)."""
    model, processor = policy
    trainer = ASRGRPOTrainer(
        model,
        wer_reward,
        args=make_args(tmp_path, pad_to_multiple_of=8, max_steps=1, beta=0.04),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    trainer.model.eval()
    _, clips, _ = trainer._collect_clips([audio_dataset[i] for i in (0, 0, 1, 1)])
    completions = torch.randint(8, len(processor.tokenizer), (4, 5), generator=torch.Generator().manual_seed(1))
    prefix = torch.tensor([trainer.policy.prompt_ids] * 4)
    ids = torch.cat([prefix, completions], dim=1)
    pad = torch.full((4, 5), processor.tokenizer.pad_token_id)
    padded = torch.cat([pad, ids], dim=1)
    padded_mask = torch.cat([torch.zeros_like(pad), torch.ones_like(ids)], dim=1)
    trainer._clip_batch = clips
    with torch.no_grad():
        plain, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, torch.ones_like(ids), 5)
        shifted, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, padded, padded_mask, 5)
    trainer._clip_batch = None
    torch.testing.assert_close(shifted, plain, atol=1e-5, rtol=1e-5)
    trainer.model.train()
    trainer.train()  # the padded batches of a real step train (no NaN from all-padding query rows)
    assert all(np.isfinite(log["loss"]) for log in trainer.state.log_history if "loss" in log)


def test_bf16_encoder_runs_under_autocast_at_sampling_and_scoring(tmp_path, policy, audio_dataset):
    model, processor = policy
    trainer = ASRGRPOTrainer(
        model,
        AudioCheckingReward(),
        args=make_args(tmp_path, bf16=True, use_cpu=True, max_steps=1, beta=0.04),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    dtypes: list[torch.dtype] = []  # of an encoder matmul (the encoder's last layer norm is fp32 under autocast)
    for module in (trainer.model, trainer.ref_model):
        peft_base(module).get_encoder().layers[0].fc1.register_forward_hook(
            lambda _m, _a, out: dtypes.append(out.dtype)
        )
    trainer.train()
    assert len(dtypes) == 3 and set(dtypes) == {torch.bfloat16}  # generation, reference, loss: one precision


def test_cast_lm_head_and_spec_augment_are_refused(tmp_path, policy, audio_dataset):
    model, processor = policy
    with pytest.raises(ValueError, match=r"cast_lm_head_to_fp32=True is not supported.*proj_out"):
        ASRGRPOTrainer(
            model,
            wer_reward,
            args=make_args(tmp_path, cast_lm_head_to_fp32=True),
            train_dataset=audio_dataset,
            processing_class=processor,
        )
    model.config.apply_spec_augment = True
    with pytest.raises(ValueError, match=r"apply_spec_augment=True.*apply_spec_augment = False"):
        ASRGRPOTrainer(
            model, wer_reward, args=make_args(tmp_path), train_dataset=audio_dataset, processing_class=processor
        )


def test_greedy_eval_refuses_fsdp(tmp_path, policy, audio_dataset):
    model, processor = policy
    trainer = ASRGRPOTrainer(
        model,
        wer_reward,
        args=make_args(tmp_path, eval_sampled_rewards=False),
        train_dataset=audio_dataset,
        eval_dataset=audio_dataset,
        processing_class=processor,
    )
    trainer._dist.fsdp_version = 2  # what TRL's DistributedBackend reads from accelerate's FSDP plugin
    with pytest.raises(NotImplementedError, match=r"not supported under FSDP.*eval_strategy='no'"):
        trainer.evaluate()


class RowSpy:
    """Records the rows a reward function is called with."""

    __name__ = "spy"

    def __init__(self):
        self.audio_lengths: list[int] = []
        self.calls = 0
        self.columns: set[str] = set()

    def __call__(self, completions, audio, **kwargs):
        self.calls += 1
        self.columns |= set(kwargs)
        self.audio_lengths.extend(len(a["array"]) for a in audio)
        return [1.0] * len(completions)


@pytest.mark.parametrize("freeze_encoder", [False, True], ids=["encoder", "frozen-encoder"])
def test_skipped_clip_is_neither_sampled_nor_rewarded(tmp_path, policy, wav_dataset, freeze_encoder):
    """With a frozen encoder the sampled clip's states are also reused by the later passes."""
    model, processor = policy
    paths = list(wav_dataset["audio"])
    paths[0] = str(tmp_path / "missing.wav")
    broken = Dataset.from_dict({"audio": paths, "text": list(wav_dataset["text"])})
    spy = RowSpy()
    trainer = ASRGRPOTrainer(
        model,
        spy,
        args=make_args(
            tmp_path, shuffle_dataset=False, max_steps=1, skip_undecodable_audio=True, freeze_encoder=freeze_encoder
        ),
        train_dataset=broken,
        processing_class=processor,
    )
    calls = encoder_batch_sizes(trainer.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    assert calls[0] == 1  # generation: only the decodable clip of the two
    assert len(calls) == (1 if freeze_encoder else 2)  # frozen: generation's states serve the loss pass
    assert spy.calls == 1 and len(spy.audio_lengths) == G  # the reward saw only that clip's G rows
    assert min(spy.audio_lengths) > 16000 // 10  # never the placeholder
    assert trainer.state.global_step == 1


# ----------------------------------------------------------------------------------------------------
# Trainer bad input (issue 9 §3)
# ----------------------------------------------------------------------------------------------------


def test_unknown_reward_name_lists_the_known_ones(tmp_path, policy, audio_dataset):
    model, processor = policy
    with pytest.raises(ValueError, match=r"unknown reward 'wr'.*'wer'"):
        ASRGRPOTrainer(model, ["wr"], args=make_args(tmp_path), train_dataset=audio_dataset, processing_class=processor)
    trainer = ASRGRPOTrainer(
        model, ["wer"], args=make_args(tmp_path), train_dataset=audio_dataset, processing_class=processor
    )
    assert trainer.reward_func_names == ["wer"]
    with pytest.raises(ValueError, match=r"reward\(s\) \['wer'\] compare with a reference.*reference_column is None"):
        ASRGRPOTrainer(
            model,
            ["wer"],
            args=make_args(tmp_path, reference_column=None),
            train_dataset=audio_dataset,
            processing_class=processor,
        )
    free = ASRGRPOTrainer(  # penalties take a reference when there is one, and work without
        model,
        ["repetition_penalty", "empty_penalty"],
        args=make_args(tmp_path, reference_column=None),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    assert free.reward_func_names == ["repetition_penalty", "empty_penalty"]


def test_in_memory_model_needs_a_processor(tmp_path, policy, audio_dataset):
    model, _ = policy
    model.config._name_or_path = ""
    with pytest.raises(ValueError, match=r"processing_class is required.*in memory"):
        ASRGRPOTrainer(model, wer_reward, args=make_args(tmp_path), train_dataset=audio_dataset)


def test_empty_or_too_small_datasets(tmp_path, policy, audio_dataset):
    model, processor = policy
    with pytest.raises(ValueError, match=r"train_dataset is empty"):
        ASRGRPOTrainer(
            model,
            wer_reward,
            args=make_args(tmp_path),
            train_dataset=audio_dataset.select([]),
            processing_class=processor,
        )
    with pytest.raises(ValueError, match=r"train_dataset has 1 rows, fewer than the 2 clips of one generation batch"):
        ASRGRPOTrainer(
            model,
            wer_reward,
            args=make_args(tmp_path),
            train_dataset=audio_dataset.select([0]),
            processing_class=processor,
        )
    with pytest.raises(ValueError, match=r"eval_dataset is empty"):
        ASRGRPOTrainer(
            model,
            wer_reward,
            args=make_args(tmp_path),
            train_dataset=audio_dataset,
            eval_dataset=audio_dataset.select([]),
            processing_class=processor,
        )


def test_eval_rows_without_reference_are_left_out(tmp_path, policy, audio_rows):
    model, processor = policy
    reference = copy.deepcopy(model)
    rows = [dict(row) for row in audio_rows]
    rows[1]["text"] = None
    dataset = Dataset.from_list(rows)
    trainer = ASRGRPOTrainer(
        model,
        wer_reward,
        args=make_args(tmp_path, eval_sampled_rewards=False),
        train_dataset=Dataset.from_list(audio_rows),
        eval_dataset=dataset,
        processing_class=processor,
    )
    with pytest.warns(UserWarning, match=r"1 evaluation rows have no reference"):
        metrics = trainer.evaluate()
    kept = dataset.select([0, 2, 3])
    hypotheses = greedy_by_hand(reference, processor, kept)
    assert metrics["eval_wer"] == pytest.approx(jiwer.wer(list(kept["text"]), hypotheses))


# ----------------------------------------------------------------------------------------------------
# Reference-free RL (issue 10 item 4)
# ----------------------------------------------------------------------------------------------------


def test_reference_free_training_never_sees_transcripts_and_eval_reports_wer(tmp_path, policy, audio_dataset):
    """reference_column=None: the training split's transcripts never reach the rewards (its 'text' column is
    dropped), while the greedy eval WER/CER still come from the eval split's references."""
    model, processor = policy
    reference = copy.deepcopy(model)
    spy = RowSpy()
    trainer = ASRGRPOTrainer(
        model,
        spy,
        args=make_args(tmp_path, reference_column=None, eval_sampled_rewards=False, max_steps=1),
        train_dataset=audio_dataset,  # has a 'text' column: it must not be read
        eval_dataset=audio_dataset,
        processing_class=processor,
    )
    assert "text" not in trainer.train_dataset.column_names
    metrics = trainer.evaluate()
    hypotheses = greedy_by_hand(reference, processor, audio_dataset)
    assert metrics["eval_wer"] == pytest.approx(jiwer.wer(list(audio_dataset["text"]), hypotheses))
    trainer.train()
    assert spy.calls == 1 and "text" not in spy.columns


def test_reference_free_training_split_without_transcripts(tmp_path, policy, audio_dataset):
    model, processor = policy
    spy = RowSpy()
    trainer = ASRGRPOTrainer(
        model,
        spy,
        args=make_args(
            tmp_path,
            reference_column=None,
            eval_sampled_rewards=False,
            max_steps=1,
            eval_strategy="steps",
            eval_steps=1,
        ),
        train_dataset=audio_dataset.remove_columns("text"),
        eval_dataset=audio_dataset,
        processing_class=processor,
    )
    trainer.train()
    assert any("eval_wer" in log and "eval_cer" in log for log in trainer.state.log_history)
    assert spy.calls == 1 and "text" not in spy.columns


# ----------------------------------------------------------------------------------------------------
# The seam: policy families and the per-batch clips
# ----------------------------------------------------------------------------------------------------


def test_policy_for_picks_the_family_and_names_the_known_ones(tmp_path, policy):
    from rlnf.policies.base import PolicyOptions, policy_for
    from rlnf.policies.whisper import WhisperPolicy

    model, processor = policy
    args = make_args(tmp_path, language=None, max_completion_length=8)
    chosen = policy_for(model, processor, args)
    assert isinstance(chosen, WhisperPolicy)
    options = chosen.options  # read from the config, field by field, not compared with itself
    assert (options.max_completion_length, options.language, options.task, options.sampling_rate) == (
        8,
        None,
        args.task,
        args.sampling_rate,
    )
    assert PolicyOptions.from_args(args, max_completion_length=3).max_completion_length == 3  # overrides win
    assert chosen.prompt_ids == decoder_prefix_ids(processor.tokenizer)
    with pytest.raises(
        TypeError, match=r"no rlnf policy family handles Linear.*whisper: Whisper \(WhisperForConditionalGeneration\)"
    ):
        policy_for(torch.nn.Linear(2, 2), processor, args)


def test_clip_views_survive_trl_shuffle_and_split():
    """Per-row `Clip` views, shuffled and split like TRL's batch dict, rebuild each chunk's unique clips."""
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    from rlnf.policies.base import CLIPS_KEY, ClipBatch

    features = torch.arange(3 * 2 * 5, dtype=torch.float32).reshape(3, 2, 5)
    clip_of_row = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    batch = ClipBatch({"input_features": features}, clip_of_row)
    torch.manual_seed(0)
    shuffled = shuffle_sequence_dict({"row": torch.arange(8), CLIPS_KEY: batch.row_views()})
    for chunk in split_tensor_dict(shuffled, 2):
        rebuilt = ClipBatch.from_row_views(chunk[CLIPS_KEY], torch.device("cpu"))
        assert rebuilt.num_clips == len(set(clip_of_row[chunk["row"]].tolist()))
        torch.testing.assert_close(rebuilt.features[rebuilt.clip_of_row], features[clip_of_row[chunk["row"]]])


def test_evaluate_asr_matches_greedy_by_hand_and_skips_missing_references(policy, audio_rows):
    from rlnf.trainers import evaluate_asr

    model, processor = policy
    rows = [dict(row) for row in audio_rows]
    rows[2]["text"] = None
    with pytest.warns(UserWarning, match=r"1 evaluation rows have no reference \('text' is None; rows \[2\]\)"):
        result = evaluate_asr(model, processor, Dataset.from_list(rows), normalizer="none", max_new_tokens=8)
    kept = Dataset.from_list([rows[i] for i in (0, 1, 3)])
    hypotheses = greedy_by_hand(copy.deepcopy(model), processor, kept)
    assert result["hypotheses"] == hypotheses and result["num_samples"] == 3
    assert result["wer"] == pytest.approx(jiwer.wer(list(kept["text"]), hypotheses))
