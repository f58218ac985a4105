"""A tiny, deterministic ASRPPOTrainer run, launched by ``tests/test_ppo_distributed.py``.

    python ppo_tiny.py POLICY_DIR OUT_DIR PER_DEVICE_BATCH                         # 1 process
    ACCELERATE_USE_CPU=1 accelerate launch --config_file accelerate_configs/cpu_2proc.yaml \\
        ppo_tiny.py POLICY_DIR OUT_DIR PER_DEVICE_BATCH                            # 2 processes

One rollout of 4 clips x 2 samples = 8 completions (8 per device on 1 process, 4 on 2), KL to the reference,
a separate critic, then 2 PPO epochs over it (the second update is off-policy: ratios and clipping matter).
Sampling noise is keyed by (call, global row, position) exactly as in ``grpo_tiny.py`` (see there), so both
layouts draw the same completions. Each rank writes ``OUT_DIR/rank<r>.json`` (log_history) and
``OUT_DIR/rank<r>.pt`` (final policy and critic state dicts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from grpo_tiny import OverlapReward, dataset, install_keyed_sampling  # noqa: E402  (sets the offline env too)

from rlnf.trainers import ASRPPOConfig, ASRPPOTrainer  # noqa: E402


def main(policy_dir: str, out_dir: str, per_device_batch: int) -> None:
    torch.set_num_threads(1)
    out = Path(out_dir)
    args = ASRPPOConfig(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=per_device_batch,
        num_generations=2,
        num_mini_batches=1,
        num_ppo_epochs=2,
        max_completion_length=6,
        max_steps=2,
        learning_rate=1e-3,
        # AdamW moves a weight by ~lr * g / (|g| + eps): with eps 1e-8, tied-embedding rows whose gradient is at
        # rounding level (~1e-9) moved by up to 2e-4 differently in the two layouts (2 of 8448 entries; every
        # log entry and all other weights agreed). eps 1e-6 keeps such noise below the weight tolerance.
        adam_epsilon=1e-6,
        kl_coef=0.1,
        value_model="separate",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        full_determinism=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        eval_normalizer="none",
    )
    rank = args.process_index
    install_keyed_sampling(rank, per_device_batch)
    trainer = ASRPPOTrainer(policy_dir, [OverlapReward(rank, per_device_batch)], args=args, train_dataset=dataset())
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    state = {f"policy.{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state.update({f"critic.{k}": v.detach().cpu().clone() for k, v in trainer.value_module.state_dict().items()})
    torch.save(state, out / f"rank{rank}.pt")
    record = {"rank": rank, "world": trainer.accelerator.num_processes, "log_history": trainer.state.log_history}
    (out / f"rank{rank}.json").write_text(json.dumps(record, default=float))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
