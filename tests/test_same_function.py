"""Every RL pass is the same function of the weights: at learning rate 0 the ratio is 1 and the KL 0.

Regression tests for BatchNorm running in training mode (Parakeet / FastConformer conv modules) and for dropout
left on in GRPO/RLOO: both made policy, old policy and reference disagree at identical weights.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import clip_dataset, grpo_args, length_reward

from rlnf.assets import resolve_demo_path
from rlnf.policies.base import ClipBatch
from rlnf.policies.same_function import use_fixed_statistics_and_no_dropout
from rlnf.policies.tiny_ctc import tiny_wav2vec2_ctc
from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer, ASRPPOConfig, ASRRLOOConfig

CPU = torch.device("cpu")


def lr_zero_args(tmp_path, **overrides) -> ASRGRPOConfig:
    """The CTC demo YAML's batch shape: 2 clips x 8 samples, two optimizer steps per generation, lr 0."""
    shape = dict(per_device_train_batch_size=16, num_generations=8, steps_per_generation=2, learning_rate=0.0)
    return grpo_args(tmp_path, **{**shape, **overrides})


def run_at_lr_zero(model, processor, tmp_path) -> tuple[ASRGRPOTrainer, list[dict], list[float]]:
    """Train two steps at lr 0; each loss pass records the batch and the largest gap between the current
    policy's log-probs (model in the trainer's train mode) and the old-policy and reference log-probs."""
    trainer = ASRGRPOTrainer(
        model=model,
        reward_funcs=[length_reward],
        args=lr_zero_args(tmp_path),
        train_dataset=clip_dataset(),
        processing_class=processor,
    )
    gaps: list[float] = []
    original = trainer._compute_loss

    def compare(model, inputs):
        clips = ClipBatch.from_row_views(inputs["audio_clips"], CPU)
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        assert model.training  # the Trainer's mode during the loss pass
        with torch.no_grad():
            current, _ = trainer.policy.log_probs(model, clips, ids, mask, inputs["completion_ids"].size(1))
        keep = inputs["completion_mask"].bool()
        for name in ("old_per_token_logps", "ref_per_token_logps"):
            assert inputs.get(name) is not None, name
            gaps.append(float((current - inputs[name])[keep].abs().max()))
        return original(model, inputs)

    trainer._compute_loss = compare
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "kl" in entry]
    return trainer, logs, gaps


def test_demo_ctc_policy_at_lr_zero_has_ratio_one_and_kl_zero(tmp_path):
    from rlnf.policies.base import load_policy_model

    path = resolve_demo_path("demo-ctc", "policy")
    from transformers import AutoProcessor

    model = load_policy_model(path)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())  # what made it fail before
    running_mean = {n: b.clone() for n, b in model.named_buffers() if "running_mean" in n}
    trainer, logs, gaps = run_at_lr_zero(model, AutoProcessor.from_pretrained(path), tmp_path)
    assert len(logs) == 2 and all(abs(entry["kl"]) < 1e-6 for entry in logs)
    assert len(gaps) == 4 and max(gaps) < 1e-6, gaps
    for name, buffer in trainer.model.named_buffers():  # no pass moved BatchNorm's running statistics
        if name in running_mean:
            assert torch.equal(buffer, running_mean[name]), name


def test_dropout_in_the_config_is_switched_off_for_every_pass(tmp_path):
    model, processor = tiny_wav2vec2_ctc(hidden_dropout=0.2, attention_dropout=0.2, activation_dropout=0.2)
    _, logs, gaps = run_at_lr_zero(model, processor, tmp_path)
    assert all(abs(entry["kl"]) < 1e-6 for entry in logs)
    assert max(gaps) < 1e-6, gaps


def test_batch_norm_rows_do_not_depend_on_the_batch_in_train_mode():
    path = resolve_demo_path("demo-ctc", "policy")
    from rlnf.policies.base import load_policy_model

    model = load_policy_model(path)
    use_fixed_statistics_and_no_dropout(model)
    reference = copy.deepcopy(model).eval()
    model.train()  # what the Trainer does every step: must not bring batch statistics back
    features = torch.randn(3, 200, model.config.encoder_config.num_mel_bins)
    with torch.no_grad():
        together = model(input_features=features).logits
        alone = model(input_features=features[:1]).logits
        in_eval = reference(input_features=features).logits
    assert torch.allclose(together[:1], alone, atol=1e-5)
    assert torch.allclose(together, in_eval, atol=1e-6)
    assert use_fixed_statistics_and_no_dropout(model) == 0  # idempotent


@pytest.mark.parametrize("config_class", [ASRGRPOConfig, ASRRLOOConfig, ASRPPOConfig])
def test_dropout_left_on_is_refused_by_every_trainer_config(config_class, tmp_path):
    assert config_class(output_dir=str(tmp_path), report_to=[]).disable_dropout is True
    with pytest.raises(ValueError, match="disable_dropout=False"):
        config_class(output_dir=str(tmp_path), report_to=[], disable_dropout=False)
