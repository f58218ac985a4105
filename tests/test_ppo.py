"""PPO with a value model: the math against hand computations, the value heads' shapes and masking, and
ASRPPOTrainer on a tiny offline Whisper (one update moves policy and critic, resume == uninterrupted)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from rlnf.policies.base import ClipBatch
from rlnf.policies.value_heads import (
    SequenceValueModel,
    TokenValueModel,
    ValueHead,
    build_value_model,
    capture_decoder_hidden,
    completion_values,
    pooled_states,
)
from rlnf.trainers.ppo_math import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
    gae,
    masked_mean,
    masked_whiten,
    per_token_kl,
    per_token_rewards,
    sequence_advantages,
)

# --------------------------------------------------------------------------------------------------
# PPO math (every expected number below was worked out by hand; see the comments)
# --------------------------------------------------------------------------------------------------


def test_gae_and_returns_by_hand():
    # row 0: 3 tokens, score 1 on the last one; row 1: 2 tokens (position 2 is padding with junk values).
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 7.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [1.0, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 0: d2 = 1 - 0.7 = 0.3; d1 = 0.9*0.7 - 0.6 = 0.03; d0 = 0.9*0.6 - 0.5 = 0.04
    #        A2 = 0.3; A1 = 0.03 + 0.72*0.3 = 0.246; A0 = 0.04 + 0.72*0.246 = 0.21712
    # row 1: d1 = 2 + 0 - 0.5 = 1.5 (V after the last token is 0); d0 = 0.9*0.5 - 1 = -0.55
    #        A1 = 1.5; A0 = -0.55 + 0.72*1.5 = 0.53
    expected_adv = torch.tensor([[0.21712, 0.246, 0.3], [0.53, 1.5, 0.0]])
    expected_ret = torch.tensor([[0.71712, 0.846, 1.0], [1.53, 2.0, 0.0]])
    torch.testing.assert_close(advantages, expected_adv, atol=1e-6, rtol=0)
    torch.testing.assert_close(returns, expected_ret, atol=1e-6, rtol=0)


def test_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.1, -0.2, 1.0, 0.0]])
    values = torch.tensor([[0.3, 0.2, 0.4, 5.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(returns, torch.tensor([[0.9, 0.8, 1.0, 0.0]]))  # Monte-Carlo returns
    torch.testing.assert_close(advantages, torch.tensor([[0.6, 0.6, 0.6, 0.0]]))


def test_kl_penalty_per_token_and_score_on_last_token():
    logp = torch.tensor([[-1.0, -0.5, -2.0], [-0.3, -1.0, -4.0]])
    ref = torch.tensor([[-1.1, -0.7, -2.3], [-0.7, -1.5, 0.0]])
    kl = per_token_kl(logp, ref, "k1")
    torch.testing.assert_close(kl, torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, -4.0]]))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards, non_score = per_token_rewards(torch.tensor([1.0, 0.5]), kl, mask, kl_coef=0.1)
    torch.testing.assert_close(non_score, torch.tensor([[-0.01, -0.02, -0.03], [-0.04, -0.05, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.01, -0.02, 0.97], [-0.04, 0.45, 0.0]]))
    # k3: (r - 1) - log r with r = pi_ref / pi; log pi - log pi_ref = 1 -> exp(-1) - 1 + 1 = 0.3679
    k3 = per_token_kl(torch.tensor([-1.0]), torch.tensor([-2.0]), "k3")
    assert k3.item() == pytest.approx(math.exp(-1.0), abs=1e-6)
    with pytest.raises(ValueError, match="kl_estimator must be 'k1' or 'k3', got 'k2'"):
        per_token_kl(logp, ref, "k2")
    with pytest.raises(ValueError, match=r"rows \[1\] have no completion token"):
        per_token_rewards(torch.tensor([1.0, 0.5]), kl, torch.tensor([[1, 1, 1], [0, 0, 0]]), kl_coef=0.1)


def test_adaptive_kl_controller_moves_towards_target():
    ctl = AdaptiveKLController(value=0.1, target=6.0, horizon=10000)
    ctl.update(12.0, n_steps=100)  # error clipped to +0.2: 0.1 * (1 + 0.2 * 100 / 10000)
    assert ctl.value == pytest.approx(0.1002)
    ctl.update(3.0, n_steps=100)  # error -0.5 clipped to -0.2
    assert ctl.value == pytest.approx(0.1002 * 0.998)
    with pytest.raises(ValueError, match="target > 0"):
        AdaptiveKLController(value=0.1, target=0.0, horizon=10)


def test_masked_whitening_by_hand():
    x = torch.tensor([[1.0, 3.0], [5.0, 100.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    # mean 3, unbiased variance (4 + 0 + 4) / 2 = 4, std 2
    torch.testing.assert_close(masked_whiten(x, mask), torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        masked_whiten(x, mask, shift_mean=False), torch.tensor([[2.0, 3.0], [4.0, 0.0]]), atol=1e-6, rtol=0
    )
    assert masked_mean(x, mask).item() == pytest.approx(3.0)
    # A rollout split over two ranks holding the same rows: summing over "ranks" equals whitening both copies.
    doubled = masked_whiten(x, mask, reduce=lambda t: 2 * t)
    both = masked_whiten(torch.cat([x, x]), torch.cat([mask, mask]))[:2]
    torch.testing.assert_close(doubled, both)


def test_clipped_policy_loss_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -0.5, 3.0]])
    old = torch.tensor([[-1.2, -1.5, -0.55, -3.0]])
    adv = torch.tensor([[1.0, -2.0, 0.5, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, clipfrac, approx_kl = clipped_policy_loss(logp, old, adv, mask, cliprange=0.2)
    # token 0: r = e^0.2 = 1.2214 -> max(-1.2214, -1.2) = -1.2 (clipped)
    # token 1: r = e^-0.5 = 0.6065, A = -2 -> max(1.2131, 1.6) = 1.6 (clipped)
    # token 2: r = e^0.05 = 1.05127 inside the range -> -0.5 * 1.05127 = -0.525636
    assert loss.item() == pytest.approx((-1.2 + 1.6 - 0.5 * math.exp(0.05)) / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(2 / 3)
    assert approx_kl.item() == pytest.approx(0.5 * (0.04 + 0.25 + 0.0025) / 3, abs=1e-7)


def test_clipped_value_loss_by_hand():
    values = torch.tensor([1.0, 0.0, 50.0])
    old = torch.tensor([0.5, 0.1, 0.0])
    returns = torch.tensor([2.0, -1.0, 0.0])
    mask = torch.tensor([1, 1, 0])
    loss, clipfrac = clipped_value_loss(values, old, returns, mask, cliprange_value=0.2)
    # v0 clipped to 0.7: max((1 - 2)^2, (0.7 - 2)^2) = 1.69; v1 inside [-0.1, 0.3]: 1
    assert loss.item() == pytest.approx(0.5 * (1.69 + 1.0) / 2)
    assert clipfrac.item() == pytest.approx(0.5)


def test_explained_variance_and_sequence_advantages():
    values = torch.tensor([1.0, 2.0, 3.0, 8.0])
    returns = torch.tensor([1.0, 2.0, 4.0, 0.0])
    mask = torch.tensor([1, 1, 1, 0])
    # Var[returns] = 14/9, Var[returns - values] = Var[0, 0, 1] = 2/9 -> 1 - 1/7
    assert explained_variance(values, returns, mask) == pytest.approx(6 / 7)
    assert math.isnan(explained_variance(values, torch.ones(4), mask))
    adv, ret = sequence_advantages(torch.tensor([1.0, 0.2]), torch.tensor([0.4, 0.5]))
    torch.testing.assert_close(adv, torch.tensor([0.6, -0.3]))
    torch.testing.assert_close(ret, torch.tensor([1.0, 0.2]))


# --------------------------------------------------------------------------------------------------
# Value heads
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_whisper():
    from rlnf.policies.tiny_whisper import build_tiny_whisper

    torch.manual_seed(0)
    texts = ["i ni ce", "an bɛ taa sugu la", "sanji bɛ na bi", "den fila bɛ yen"] * 3
    return build_tiny_whisper(
        texts, d_model=32, layers=1, heads=2, max_source_positions=50, max_target_positions=24, vocab_size=200
    )


def _decoder_batch(model, rows=3, prefix=3, completion=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mels = model.config.num_mel_bins
    features = torch.randn(2, mels, 2 * model.config.max_source_positions, generator=g)
    clips = ClipBatch({"input_features": features}, torch.tensor([0, 0, 1][:rows]))
    ids = torch.randint(4, 100, (rows, prefix + completion), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0  # row 1: 2 completion tokens, then padding
    return clips, ids, mask


def test_token_value_model_shape_masks_padding_and_prefix(tiny_whisper):
    model, _ = tiny_whisper
    critic = TokenValueModel.from_policy(model).eval()
    clips, ids, mask = _decoder_batch(model)
    values = critic(clips, ids, mask, logits_to_keep=4)
    assert values.shape == (3, 4)  # completion positions only: the 3 prefix positions get no value
    assert torch.all(values[1, -2:] == 0) and torch.all(values[0] != 0)
    # Real tokens' values do not depend on what sits in padded positions (causal decoder + masking).
    junk = ids.clone()
    junk[1, -2:] = 7
    torch.testing.assert_close(critic(clips, junk, mask, 4)[1, :2], values[1, :2])
    # The value of completion token j reads the hidden state at the position that predicts it.
    out = critic.trunk(input_features=clips.inputs["input_features"][clips.clip_of_row], decoder_input_ids=ids)
    torch.testing.assert_close(values[0], critic.head(out.last_hidden_state[0, 2:6]), atol=1e-5, rtol=1e-5)
    # A copy: training the critic leaves the policy alone.
    assert critic.trunk.decoder.embed_tokens.weight.data_ptr() != model.model.decoder.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(critic.trunk.decoder.embed_tokens.weight, model.model.decoder.embed_tokens.weight)


def test_shared_head_reads_the_policys_decoder_states(tiny_whisper):
    model, _ = tiny_whisper
    model = copy.deepcopy(model).eval()
    head = build_value_model("shared", model)
    assert isinstance(head, ValueHead)
    clips, ids, mask = _decoder_batch(model)
    features = clips.inputs["input_features"][clips.clip_of_row]
    with capture_decoder_hidden(model) as hidden:
        model(input_features=features, decoder_input_ids=ids, decoder_attention_mask=mask)
    assert len(hidden) == 1 and hidden[0].shape == (3, 7, 32)
    values = completion_values(head, hidden[0], mask, 4)
    assert values.shape == (3, 4) and torch.all(values[1, -2:] == 0)
    with pytest.raises(ValueError, match="hidden states cover 7 positions but the mask 6"):
        completion_values(head, hidden[0], mask[:, 1:], 4)


def test_pooled_states_and_audio_critic(tiny_whisper):
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    torch.testing.assert_close(pooled_states(states, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))
    with pytest.raises(ValueError, match="no valid frame"):
        pooled_states(states, torch.tensor([[0, 0, 0]]))
    model, _ = tiny_whisper
    critic = SequenceValueModel.from_policy(model).eval()
    clips, _, _ = _decoder_batch(model)
    values = critic(clips)
    assert values.shape == (2,)  # one value per clip, whatever its number of rows
    encoded = model.model.encoder(clips.inputs["input_features"]).last_hidden_state
    torch.testing.assert_close(values, critic.head(encoded.mean(1)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="value_model must be one of"):
        build_value_model("critic", model)


# --------------------------------------------------------------------------------------------------
# ASRPPOTrainer
# --------------------------------------------------------------------------------------------------

CLIPS = 2  # clips per rollout batch (num_generations = 1)


def overlap(completions, text, **kwargs):
    """Character overlap with the reference: varies even for a random policy."""
    return [len(set(hyp) & set(ref)) / len(set(ref)) for hyp, ref in zip(completions, text, strict=True)]


def make_ppo_args(tmp_path, **overrides):
    from rlnf.trainers import ASRPPOConfig

    values = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=CLIPS,
        per_device_eval_batch_size=2,
        num_mini_batches=1,
        num_ppo_epochs=1,
        max_completion_length=6,
        max_steps=1,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        eval_normalizer="none",
        use_cpu=True,
    )
    values.update(overrides)
    return ASRPPOConfig(**values)


def encoder_calls(encoder) -> list[int]:
    sizes: list[int] = []
    encoder.register_forward_hook(lambda _m, _a, out: sizes.append(out.last_hidden_state.shape[0]))
    return sizes


def params(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def moved(before, module, prefix="") -> set[str]:
    return {n for n, p in module.named_parameters() if n.startswith(prefix) and not torch.equal(before[n], p)}


@pytest.mark.parametrize("value_model", ["separate", "shared", "audio"])
def test_one_ppo_update_changes_policy_and_critic(tmp_path, tiny_whisper, audio_dataset, value_model):
    from rlnf.trainers import ASRPPOTrainer

    model, processor = copy.deepcopy(tiny_whisper[0]), tiny_whisper[1]
    trainer = ASRPPOTrainer(
        model,
        [overlap, "wer"],
        args=make_ppo_args(tmp_path, value_model=value_model, reward_weights=[1.0, 0.5]),
        train_dataset=audio_dataset,
        eval_dataset=audio_dataset,
        processing_class=processor,
    )
    policy_calls = encoder_calls(trainer.model.get_encoder())
    reference_calls = encoder_calls(trainer.ref_model.get_encoder())
    policy_before, critic_before = params(trainer.model), params(trainer.value_model)
    reference_before = params(trainer.ref_model)
    trainer.train()

    # Rollout: sampling + old-policy pass, then the loss pass: each encodes the 2 clips once; one reference pass.
    assert policy_calls == [CLIPS] * 3 and reference_calls == [CLIPS]
    assert moved(policy_before, trainer.model, "model.decoder.")
    assert moved(policy_before, trainer.model, "model.encoder.")
    critic_moved = moved(critic_before, trainer.value_model)
    assert any("summary" in n for n in critic_moved)  # the value head learns
    if value_model == "separate":
        assert any(n.startswith("trunk.decoder.") for n in critic_moved)
    if value_model == "audio":
        assert any(n.startswith("encoder.") for n in critic_moved)
    assert not moved(reference_before, trainer.ref_model)
    logs = trainer.state.log_history[0]
    for key in (
        "objective/kl",
        "objective/entropy",
        "policy/clipfrac",
        "val/clipfrac",
        "loss/value",
        "val/explained_variance",
        "rewards/overlap/mean",
        "rewards/wer/mean",
    ):
        assert key in logs, key
    assert logs["objective/kl"] == pytest.approx(0.0, abs=1e-6)  # first rollout: the policy is the reference
    metrics = trainer.evaluate()
    assert "eval_wer" in metrics and "eval_cer" in metrics


def test_rollout_advantages_are_whitened_gae_of_the_rewards(tmp_path, tiny_whisper, audio_dataset):
    """The trainer's rollout batch, recomputed from its parts with independent loops."""
    from rlnf.trainers import ASRPPOTrainer

    model, processor = copy.deepcopy(tiny_whisper[0]), tiny_whisper[1]
    args = make_ppo_args(tmp_path, gamma=0.9, lam=0.8, kl_coef=0.3, per_device_train_batch_size=4)
    trainer = ASRPPOTrainer(model, overlap, args=args, train_dataset=audio_dataset, processing_class=processor)
    trainer.model.train()
    rows = [audio_dataset[i] for i in range(4)]
    # Move the policy away from the reference so the KL term is not zero.
    with torch.no_grad():
        for p in trainer.model.model.decoder.layers.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = trainer._rollout(rows)
    mask = batch["completion_mask"].float()
    texts = processor.tokenizer.batch_decode(
        [ids[m.bool()].tolist() for ids, m in zip(batch["completion_ids"], mask, strict=True)], skip_special_tokens=True
    )
    scores = overlap(texts, [r["text"] for r in rows])
    clips = ClipBatch.from_row_views(batch["audio_clips"], torch.device("cpu"))
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    with torch.no_grad():
        features = clips.features[clips.clip_of_row]
        ref_logits = trainer.ref_model(input_features=features, decoder_input_ids=ids).logits
    width = mask.shape[1]
    ref = torch.log_softmax(ref_logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0][:, -width:]
    advantages = torch.zeros_like(mask)
    for r in range(mask.shape[0]):
        n = int(mask[r].sum())
        kl = batch["old_logps"][r, :n] - ref[r, :n]
        rewards = [-0.3 * float(k) for k in kl]
        rewards[-1] += scores[r]
        values = batch["old_values"][r, :n].tolist() + [0.0]
        last = 0.0
        for t in reversed(range(n)):
            last = rewards[t] + 0.9 * values[t + 1] - values[t] + 0.9 * 0.8 * last
            advantages[r, t] = last
    flat = advantages[mask.bool()]
    expected = (advantages - flat.mean()) / flat.std() * mask
    torch.testing.assert_close(batch["advantages"], expected, atol=1e-4, rtol=1e-4)
    assert trainer.state.global_step == 0


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, tiny_whisper, audio_dataset):
    from rlnf.trainers import ASRPPOTrainer
    from rlnf.trainers.ppo_trainer import PPO_STATE, VALUE_WEIGHTS

    model, processor = tiny_whisper
    common = dict(max_steps=4, num_ppo_epochs=2, adaptive_kl=True, kl_coef=0.1, kl_target=0.01, kl_horizon=10)
    straight = ASRPPOTrainer(
        copy.deepcopy(model),
        overlap,
        args=make_ppo_args(tmp_path / "a", save_strategy="steps", save_steps=2, **common),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    straight.train()
    checkpoint = tmp_path / "a" / "out" / "checkpoint-2"
    assert (checkpoint / VALUE_WEIGHTS).is_file() and (checkpoint / PPO_STATE).is_file()
    assert straight.kl_ctl.value != 0.1  # the adaptive coefficient moved (and is checkpointed)

    resumed = ASRPPOTrainer(
        copy.deepcopy(model),
        overlap,
        args=make_ppo_args(tmp_path / "b", **common),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 4
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    for (name, a), (_, b) in zip(
        straight.value_model.named_parameters(), resumed.value_model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=f"critic {name}")
    assert resumed.kl_ctl.value == pytest.approx(straight.kl_ctl.value)

    other = ASRPPOTrainer(
        copy.deepcopy(model),
        overlap,
        args=make_ppo_args(tmp_path / "c", value_model="audio"),
        train_dataset=audio_dataset,
        processing_class=processor,
    )
    with pytest.raises(ValueError, match="holds a 'separate' critic but value_model='audio'"):
        other.load_value_model(str(checkpoint))
    with pytest.raises(FileNotFoundError, match="has no value_model.safetensors"):
        other.load_value_model(str(tmp_path))


def test_ppo_config_and_input_errors(tmp_path, tiny_whisper, audio_dataset):
    from rlnf.trainers import ASRPPOConfig, ASRPPOTrainer

    for overrides, message in [
        ({"value_model": "critic"}, "value_model must be 'separate', 'shared' or 'audio', got 'critic'"),
        ({"kl_estimator": "k2"}, "kl_estimator must be 'k1' or 'k3', got 'k2'"),
        ({"eval_sampled_rewards": True}, "eval_sampled_rewards=True is not supported"),
        ({"num_generations": 3}, r"per_device_train_batch_size \(2\) must be a multiple of num_generations \(3\)"),
        ({"num_mini_batches": 3, "gradient_accumulation_steps": 2}, "must be a multiple of gradient_accumulation"),
        ({"gamma": 1.5}, r"gamma and lam must lie in \[0, 1\]"),
        ({"per_device_train_batch_size": 1}, "at least 2 completions"),
    ]:
        with pytest.raises(ValueError, match=message):
            make_ppo_args(tmp_path, **overrides)
    model, processor = tiny_whisper
    with pytest.raises(TypeError, match="args must be an ASRPPOConfig"):
        ASRPPOTrainer(model, overlap, args=object(), train_dataset=audio_dataset, processing_class=processor)
    with pytest.raises(TypeError, match="wrap an audio\\+text model in rlnf.AudioTextReward"):
        ASRPPOTrainer(
            copy.deepcopy(model),
            [torch.nn.Linear(2, 1)],
            args=make_ppo_args(tmp_path),
            train_dataset=audio_dataset,
            processing_class=processor,
        )
    with pytest.raises(ValueError, match="1 reward_weights for 2 reward functions"):
        ASRPPOTrainer(
            copy.deepcopy(model),
            [overlap, "wer"],
            args=make_ppo_args(tmp_path, reward_weights=[1.0]),
            train_dataset=audio_dataset,
            processing_class=processor,
        )
    assert ASRPPOConfig(output_dir=str(tmp_path), use_cpu=True).num_generations == 1


def test_losses_split_over_processes_average_to_the_one_process_mean():
    """Two ranks dividing their sums by (global count / 2): the mean of their losses is the full-batch loss."""
    g = torch.Generator().manual_seed(0)
    logp, old, adv = (torch.randn(4, 5, generator=g) for _ in range(3))
    values, old_values, returns = (torch.randn(4, 5, generator=g) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    full = (
        clipped_policy_loss(logp, old, adv, mask, 0.2)[0],
        clipped_value_loss(values, old_values, returns, mask, 0.2)[0],
    )
    norm = mask.sum() / 2
    halves = [
        (
            clipped_policy_loss(logp[s], old[s], adv[s], mask[s], 0.2, norm)[0],
            clipped_value_loss(values[s], old_values[s], returns[s], mask[s], 0.2, norm)[0],
        )
        for s in (slice(0, 2), slice(2, 4))
    ]
    torch.testing.assert_close((halves[0][0] + halves[1][0]) / 2, full[0])
    torch.testing.assert_close((halves[0][1] + halves[1][1]) / 2, full[1])
    assert not torch.allclose(
        (
            clipped_policy_loss(logp[:2], old[:2], adv[:2], mask[:2], 0.2)[0]
            + clipped_policy_loss(logp[2:], old[2:], adv[2:], mask[2:], 0.2)[0]
        )
        / 2,
        full[0],
    )


# --------------------------------------------------------------------------------------------------
# Choosing a trainer by name, and the demo YAMLs
# --------------------------------------------------------------------------------------------------


def test_trainer_choice_by_name():
    from rlnf.trainers import ASRPPOConfig, ASRPPOTrainer, ASRRLOOConfig, ASRRLOOTrainer
    from rlnf.trainers.choice import pop_trainer_choice, trainer_classes

    assert pop_trainer_choice(["--max_steps", "3"]) == ("grpo", ["--max_steps", "3"])
    assert pop_trainer_choice(["--trainer", "ppo", "--max_steps", "3"]) == ("ppo", ["--max_steps", "3"])
    assert pop_trainer_choice(["--trainer=rloo"]) == ("rloo", [])
    assert trainer_classes("ppo") == (ASRPPOConfig, ASRPPOTrainer)
    assert trainer_classes("rloo") == (ASRRLOOConfig, ASRRLOOTrainer)
    with pytest.raises(ValueError, match="--trainer must be one of grpo, rloo, ppo, got 'dpo'"):
        pop_trainer_choice(["--trainer", "dpo"])
    with pytest.raises(ValueError, match="--trainer needs a value"):
        pop_trainer_choice(["--trainer"])


@pytest.mark.parametrize("name", ["grpo", "rloo", "ppo"])
def test_demo_yamls_parse_with_their_config(name):
    """Each demo YAML is valid for its config class and the recipe's script arguments (no unknown field)."""
    from dataclasses import dataclass, field
    from pathlib import Path

    from trl import TrlParser

    from rlnf.recipe_support import ASRModelConfig, ASRScriptArguments
    from rlnf.trainers.choice import demo_config, trainer_classes

    @dataclass
    class Script(ASRScriptArguments):  # the reward fields of recipes/grpo_asr.py's script arguments
        reward_funcs: list[str] = field(default_factory=lambda: ["reward_model", "wer"])
        reward_model_path: str | None = "demo"

    config_class, _ = trainer_classes(name)
    path = demo_config(name, Path(__file__).resolve().parents[1] / "recipes")
    script, args, _ = TrlParser((Script, config_class, ASRModelConfig)).parse_args_and_config(
        args=["--config", str(path)], fail_with_unknown_args=True
    )
    assert script.dataset_name == "demo" and script.reward_funcs == ["reward_model", "wer"]
    assert args.reward_weights == [1.0, 1.0] and args.max_completion_length == 48
    grpo_demo = TrlParser((Script, trainer_classes("grpo")[0], ASRModelConfig)).parse_args_and_config(
        args=["--config", str(path.with_name("grpo_asr_demo.yaml"))]
    )[1]
    assert (args.learning_rate, args.max_steps) == (grpo_demo.learning_rate, grpo_demo.max_steps)
    # the same completions per rollout as the GRPO demo's per step, so the rows of the learning benchmark compare
    assert args.generation_batch_size == grpo_demo.per_device_train_batch_size
    if name == "ppo":
        assert args.value_model == "separate" and args.num_ppo_epochs == 2


# --------------------------------------------------------------------------------------------------
# CTC policies: the audio critic (one value per clip), sequence-level advantages
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["wav2vec2", "parakeet"])
def test_ctc_policy_with_the_audio_critic(tmp_path, audio_dataset, architecture):
    from rlnf.policies import tiny_ctc
    from rlnf.trainers import ASRPPOTrainer

    model, processor = getattr(tiny_ctc, f"tiny_{architecture}_ctc")()
    args = make_ppo_args(tmp_path, value_model="audio", per_device_train_batch_size=4, num_generations=2)
    args.num_ppo_epochs = 2
    args.max_steps = 2
    trainer = ASRPPOTrainer(model, overlap, args=args, train_dataset=audio_dataset, processing_class=processor)
    critic = trainer.value_model
    assert isinstance(critic, SequenceValueModel)
    # The critic pools real frames only: a clip's value does not depend on the longer clip padded next to it.
    waveforms = [np.asarray(audio_dataset[i]["audio"]["array"], dtype=np.float32) for i in (0, 3)]
    with torch.no_grad():
        both = critic(ClipBatch(trainer.policy.clip_inputs(waveforms, torch.device("cpu"), torch.float32), None))
        alone = critic(ClipBatch(trainer.policy.clip_inputs(waveforms[:1], torch.device("cpu"), torch.float32), None))
    assert "attention_mask" in trainer.policy.clip_inputs(waveforms, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(both[:1], alone, atol=1e-5, rtol=1e-4)
    before_critic, before_policy = params(critic), params(trainer.model)
    trainer.train()
    assert moved(before_critic, critic, "encoder.") and moved(before_critic, critic, "head.")
    assert moved(before_policy, trainer.model)
    assert "val/explained_variance" in trainer.state.log_history[0]
    with pytest.raises(ValueError, match="value_model='separate' needs a decoder; a ctc policy takes"):
        ASRPPOTrainer(
            copy.deepcopy(model),
            overlap,
            args=make_ppo_args(tmp_path, per_device_train_batch_size=4),
            train_dataset=audio_dataset,
            processing_class=processor,
        )


def test_lora_policy_uses_the_base_model_as_reference(tmp_path, tiny_whisper, audio_dataset):
    from peft import LoraConfig

    from rlnf.trainers import ASRPPOTrainer

    model, processor = copy.deepcopy(tiny_whisper[0]), tiny_whisper[1]
    trainer = ASRPPOTrainer(
        model,
        overlap,
        args=make_ppo_args(tmp_path, max_steps=2, num_ppo_epochs=2, kl_coef=0.2),
        train_dataset=audio_dataset,
        processing_class=processor,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    assert trainer.ref_model is None  # the reference is the base model, adapters off
    before = params(trainer.model)
    trainer.train()
    changed = moved(before, trainer.model)
    assert changed and all("lora_" in name for name in changed)
    assert trainer.state.log_history[0]["objective/kl"] == pytest.approx(0.0, abs=1e-6)


def test_loss_of_a_mini_batch_from_independent_forwards(tmp_path, tiny_whisper, audio_dataset):
    """compute_loss == clipped policy loss + vf_coef x clipped value loss, with the log-probs from a plain per-row
    Whisper forward and the values from a plain forward of the critic's trunk (no rlnf code path)."""
    from rlnf.trainers import ASRPPOTrainer

    model, processor = copy.deepcopy(tiny_whisper[0]), tiny_whisper[1]
    args = make_ppo_args(tmp_path, per_device_train_batch_size=4, vf_coef=0.3, cliprange=0.1, cliprange_value=0.05)
    trainer = ASRPPOTrainer(model, overlap, args=args, train_dataset=audio_dataset, processing_class=processor)
    trainer.model.train()
    batch = trainer._rollout([audio_dataset[i] for i in range(4)])
    with torch.no_grad():  # move policy and critic so ratios and value clipping are not trivial
        for module in (trainer.model.model.decoder.layers, trainer.value_model.trunk.decoder.layers):
            for p in module.parameters():
                p.add_(0.05 * torch.randn_like(p))
    loss = trainer.compute_loss(trainer.model, batch)

    clips = ClipBatch.from_row_views(batch["audio_clips"], torch.device("cpu"))
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    mask = batch["completion_mask"]
    width = mask.shape[1]
    features = clips.features[clips.clip_of_row]
    with torch.no_grad():
        logits = trainer.model(input_features=features, decoder_input_ids=ids).logits
        logps = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0][:, -width:]
        hidden = trainer.value_model.trunk(input_features=features, decoder_input_ids=ids).last_hidden_state
        values = trainer.value_model.head(hidden[:, -width - 1 : -1])
    pg, _, _ = clipped_policy_loss(logps, batch["old_logps"], batch["advantages"], mask, 0.1)
    vf, vf_clipfrac = clipped_value_loss(values, batch["old_values"], batch["returns"], mask, 0.05)
    assert vf_clipfrac > 0  # the value clipping is exercised
    torch.testing.assert_close(loss.detach(), pg + 0.3 * vf, atol=1e-5, rtol=1e-4)
