"""PPO on 2 CPU processes trains like 1 process: same per-step logs and the same final policy AND critic.

The run (``tests/distributed_scripts/ppo_tiny.py``): one rollout of 8 completions (4 clips x 2), whitened
advantages and explained variance over the rollout of both ranks, the losses as means over the mini-batch of
both ranks, DDP for the policy and for the critic, 2 PPO epochs. Launching, sampling and tolerances are those of
``test_distributed_equivalence.py`` (see its GRPO test's docstring).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from test_distributed_equivalence import assert_logs_match, build_policy, launch

SCRIPT = Path(__file__).resolve().parent / "distributed_scripts" / "ppo_tiny.py"


def read(folder: Path, world: int) -> tuple[list[list[dict]], list[dict[str, torch.Tensor]]]:
    records = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(world)]
    assert all(record["world"] == world for record in records)
    return [r["log_history"] for r in records], [torch.load(folder / f"rank{r}.pt") for r in range(world)]


def test_ppo_two_processes_train_like_one(tmp_path):
    policy = tmp_path / "policy"
    build_policy(policy)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    launch(SCRIPT, str(policy), str(one), "8", processes=1)
    launch(SCRIPT, str(policy), str(two), "4", processes=2)
    (log_one,), (state_one,) = read(one, 1)
    (log_two, log_two_rank1), (state_two, state_two_rank1) = read(two, 2)

    steps = [entry for entry in log_one if "loss" in entry]
    assert len(steps) == 2 and steps[1]["policy/clipfrac"] >= 0 and "objective/kl" in steps[0]
    assert abs(steps[0]["loss"]) > 1e-4 and abs(steps[1]["loss"]) > 1e-4
    assert_logs_match(log_one, log_two, rtol=1e-5, atol=1e-6)
    assert_logs_match(log_two, log_two_rank1, rtol=1e-5, atol=1e-6)
    assert state_one.keys() == state_two.keys() and any(k.startswith("critic.") for k in state_one)
    from safetensors.torch import load_file

    initial = load_file(policy / "model.safetensors")
    # Both models really trained (over 100x the tolerance): the critic starts as a copy of the policy's trunk.
    for prefix, name in (("policy.", "{}"), ("critic.trunk.", "model.{}")):
        moved = max(
            (state_one[k] - initial[name.format(k[len(prefix) :])]).abs().max().item()
            for k in state_one
            if k.startswith(prefix) and name.format(k[len(prefix) :]) in initial
        )
        assert moved > 100 * 1e-5, f"{prefix[:-1]} barely moved ({moved:.2e}): the comparison would be vacuous"
    for key in state_one:
        assert torch.equal(state_two[key], state_two_rank1[key]), f"{key}: the two ranks' replicas diverged"
        torch.testing.assert_close(state_two[key], state_one[key], rtol=0, atol=1e-5, msg=key)
