"""ASRRLOOTrainer on a tiny offline Whisper: TRL's RLOO with the speech seam, the reward model and wer as
rewards, the encoder once per clip per pass, and TRL's RLOO loss recomputed by hand from independent forwards."""

from __future__ import annotations

import copy

import pytest
import torch
import trl
from trl import TrlParser
from trl.trainer.utils import get_callable_name

from rlnf.policies.base import CLIPS_KEY, ClipBatch, peft_base
from rlnf.policies.tiny_whisper import build_tiny_whisper
from rlnf.rewards.audio_text_reward import AudioTextReward
from rlnf.testing import tiny_reward_model
from rlnf.trainers import ASRRLOOConfig, ASRRLOOTrainer
from rlnf.trainers.speech import resolve_reward_names

G = 4
CLIPS_PER_GENERATION = 2
WEIGHTS = [0.5, 1.0]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_policy():
    texts = ["i ni ce", "an bɛ taa sugu la", "sanji bɛ na bi", "den fila bɛ yen", "i ni sɔgɔma"] * 3
    return build_tiny_whisper(
        texts, d_model=64, layers=2, heads=2, max_source_positions=100, max_target_positions=32, vocab_size=300
    )


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    return tiny_reward_model(tmp_path_factory.mktemp("reward"))


def make_args(tmp_path, **overrides) -> ASRRLOOConfig:
    values = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=G * CLIPS_PER_GENERATION // 2,
        steps_per_generation=2,  # two optimizer steps per generation: the second one is off-policy
        num_generations=G,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        eval_normalizer="none",
        reward_weights=WEIGHTS,
    )
    values.update(overrides)
    return ASRRLOOConfig(**values)


class Recorder:
    """A reward function that records what it returned, in TRL's row order."""

    def __init__(self, func):
        self.func, self.__name__, self.values = func, get_callable_name(func), []

    def __call__(self, **kwargs):
        values = self.func(**kwargs)
        self.values.append(list(values))
        return values


PAUSED: list[bool] = [False]  # True while the test runs its own forwards


def encoder_batch_sizes(model) -> list[int]:
    sizes: list[int] = []
    peft_base(model).get_encoder().register_forward_hook(
        lambda _m, _a, out: None if PAUSED[0] else sizes.append(out.last_hidden_state.shape[0])
    )
    return sizes


def sequence_logps(model, clips: ClipBatch, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """Sum of completion-token log-probs from a plain per-row Whisper forward (no rlnf code path)."""
    with torch.no_grad():
        logits = model(
            input_features=clips.features[clips.clip_of_row], decoder_input_ids=ids, decoder_attention_mask=mask
        ).logits
    logps = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0][:, -keep:]
    return (logps * mask[:, -keep:]).sum(1)


def test_config_defaults_and_cli(tmp_path):
    args = ASRRLOOConfig(output_dir=str(tmp_path))
    assert (args.max_completion_length, args.num_generations, args.beta, args.gradient_checkpointing) == (
        128,
        8,
        0.05,
        False,
    )
    own = [f for f in ASRRLOOConfig.__dataclass_fields__.values() if f.name not in trl.RLOOConfig.__dataclass_fields__]
    assert own and all(f.metadata.get("help") for f in own)
    (parsed,) = TrlParser(ASRRLOOConfig).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--audio_column", "speech", "--reference_column", "None"]
    )
    assert (parsed.audio_column, parsed.reference_column) == ("speech", None)
    with pytest.raises(ValueError, match="RLOO requires at least 2 generations"):
        ASRRLOOConfig(output_dir=str(tmp_path), num_generations=1, per_device_train_batch_size=2)


def test_two_steps_reward_model_and_wer_encoder_once_per_clip_and_loss_by_hand(
    tmp_path, tiny_policy, reward_model, audio_dataset
):
    model, processor = copy.deepcopy(tiny_policy[0]), tiny_policy[1]
    args = make_args(tmp_path)
    scorer = Recorder(AudioTextReward(*reward_model, device="cpu"))
    (wer,) = resolve_reward_names(["wer"], args)
    wer = Recorder(wer)
    trainer = ASRRLOOTrainer(model, [scorer, wer], args=args, train_dataset=audio_dataset, processing_class=processor)

    def frozen(state):  # a fresh model with these weights (not a deep copy of the trainer's, which shares them)
        clone = copy.deepcopy(tiny_policy[0]).eval()
        clone.load_state_dict({k: v.detach().clone() for k, v in state.items()})
        return clone

    initial = frozen(trainer.model.state_dict())
    policy_calls = encoder_batch_sizes(trainer.model)
    reference_calls = encoder_batch_sizes(trainer.ref_model)

    generations, steps = [], []
    generate, compute_loss = trainer._generate_and_score_completions, trainer.compute_loss

    def record_generation(inputs):
        out = generate(inputs)
        generations.append({k: (v.clone() if torch.is_tensor(v) else v) for k, v in out.items()})
        return out

    def record_loss(model, inputs, *args, **kwargs):
        clips = ClipBatch.from_row_views(inputs[CLIPS_KEY], torch.device("cpu"))
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
        keep = inputs["completion_ids"].shape[1]
        PAUSED[0] = True
        try:
            now = sequence_logps(frozen(trainer.model.state_dict()), clips, ids, mask, keep)
            at_sampling = sequence_logps(initial, clips, ids, mask, keep)
        finally:
            PAUSED[0] = False
        loss = compute_loss(model, inputs, *args, **kwargs)
        steps.append((inputs, clips.num_clips, now, at_sampling, loss.detach()))
        return loss

    trainer._generate_and_score_completions = record_generation
    trainer.compute_loss = record_loss
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()

    # One generation (2 clips x G rows) feeds both steps.
    assert len(generations) == 1 and len(steps) == 2
    # Encoder once per unique clip in every pass: sampling (both clips), the old-policy pass (per_device batch of
    # 4 rows = one clip per chunk), then each step's loss pass over the clips of its micro-batch.
    assert policy_calls == [2, 1, 1, steps[0][1], steps[1][1]]
    assert reference_calls == [1, 1]

    # Advantages: reward = 0.5 * reward_model + 1.0 * wer - beta * KL (0: the reference is the sampling policy),
    # minus the mean reward of the clip's other G - 1 samples.
    (scores,), (wers,) = scorer.values, wer.values
    rewards = WEIGHTS[0] * torch.tensor(scores) + WEIGHTS[1] * torch.tensor(wers)
    grouped = rewards.view(CLIPS_PER_GENERATION, G)
    baseline = (grouped.sum(1, keepdim=True) - grouped) / (G - 1)
    torch.testing.assert_close(generations[0]["advantages"], (grouped - baseline).view(-1), atol=1e-5, rtol=0)

    eps = args.epsilon
    for step, (inputs, _, now, at_sampling, loss) in enumerate(steps):
        torch.testing.assert_close(inputs["old_logps"], at_sampling, atol=1e-4, rtol=1e-4)
        ratio = torch.exp(now - inputs["old_logps"])
        advantages = inputs["advantages"]
        by_hand = -torch.min(ratio * advantages, ratio.clamp(1 - eps, 1 + eps) * advantages).mean()
        torch.testing.assert_close(loss, by_hand, atol=1e-5, rtol=1e-4)
        if step == 1:  # after one update the ratio is no longer 1
            assert not torch.allclose(ratio, torch.ones_like(ratio), atol=1e-4)
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters() if ".encoder." in n)
    logs = trainer.state.log_history
    assert "rewards/reward_model/mean" in logs[0] and "rewards/wer/mean" in logs[0]


def test_bad_config_type_and_missing_dataset(tmp_path, tiny_policy, audio_dataset):
    model, processor = tiny_policy
    with pytest.raises(TypeError, match="args must be an ASRRLOOConfig"):
        ASRRLOOTrainer(
            model, "wer", args=trl.RLOOConfig(output_dir=str(tmp_path), bf16=False), train_dataset=audio_dataset
        )
    with pytest.raises(ValueError, match="needs a train_dataset"):
        ASRRLOOTrainer(model, "wer", args=make_args(tmp_path), processing_class=processor)
