"""A tiny, fully deterministic ASRGRPOTrainer run with a CTC policy, launched by ``tests/test_ctc_policy.py``
(``grpo_tdt_tiny.py`` runs the same with a TDT policy and its own keyed sampler).

    python grpo_ctc_tiny.py POLICY_DIR OUT_DIR PER_DEVICE_BATCH                    # 1 process
    ACCELERATE_USE_CPU=1 accelerate launch --config_file accelerate_configs/cpu_2proc.yaml \\
        grpo_ctc_tiny.py POLICY_DIR OUT_DIR PER_DEVICE_BATCH                       # 2 processes

The global batch is the same in both layouts (8 completions = 2 clips x G=4 per step). Each rank writes
``OUT_DIR/rank<r>.json`` (log_history, sampled completions with their global rows) and ``OUT_DIR/rank<r>.pt``.

Sampling. TRL seeds each process differently, so torch's generator cannot give both layouts the same frame
paths. `keyed_sample_paths` replaces `rlnf.policies.ctc.sample_paths` with Gumbel-max sampling whose noise is
keyed by (sampling call, global row): argmax(log p + Gumbel) is an exact draw from each frame's distribution, so
this is still on-policy sampling. Everything else is the production path (one forward per clip, CTC log-probs,
reward gathering, the reference/KL pass, DDP all-reduce, AdamW).
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "OMP_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_name, _value)

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402

import rlnf.policies.ctc as ctc  # noqa: E402
from rlnf.testing import BAMBARA_SAMPLE, sine_clip  # noqa: E402
from rlnf.trainers import ASRGRPOConfig, ASRGRPOTrainer  # noqa: E402

G = 4
CLIPS_PER_STEP = 2
STEPS = 2
NOISE_SEED = 1234


def install_keyed_sampling(rank: int, per_device_batch: int) -> None:
    calls = {"n": 0}

    def keyed_sample_paths(log_probs, frames, clip_of_row, blank, generator=None):
        rows = clip_of_row.numel()
        _, steps, vocab = log_probs.shape
        noise = []
        for row in range(rows):
            key = zlib.crc32(f"{NOISE_SEED}/{calls['n']}/{rank * per_device_batch + row}".encode())
            uniform = torch.rand(steps, vocab, generator=torch.Generator().manual_seed(key), dtype=torch.float64)
            noise.append(-torch.log(-torch.log(uniform.clamp(1e-12, 1 - 1e-12))))
        calls["n"] += 1
        scores = log_probs.double().index_select(0, clip_of_row) + torch.stack(noise)
        paths = scores.argmax(-1)
        valid = ctc.frame_mask(frames, steps).index_select(0, clip_of_row)
        return paths.masked_fill(~valid, blank)

    ctc.sample_paths = keyed_sample_paths


class LengthReward:
    """Deterministic, varies within a group; records what this rank sampled."""

    __name__ = "length"

    def __init__(self, rank: int, per_device_batch: int):
        self.first_global_row = rank * per_device_batch
        self.sampled: list[dict] = []

    def __call__(self, completions, completion_ids, text, trainer_state=None, **kwargs):
        step = trainer_state.global_step if trainer_state is not None else -1
        for i, ids in enumerate(completion_ids):
            self.sampled.append({"step": step, "row": self.first_global_row + i, "ids": list(map(int, ids))})
        return [-abs(len(hyp) - len(ref)) / len(ref) for hyp, ref in zip(completions, text, strict=True)]


def dataset() -> Dataset:
    rows = [
        {"audio": {"array": sine_clip(0.6 + 0.1 * i, 170.0 + 60 * i, seed=i), "sampling_rate": 16000},
         "text": BAMBARA_SAMPLE[i]}
        for i in range(CLIPS_PER_STEP * STEPS)
    ]  # fmt: skip
    return Dataset.from_list(rows)


def main(
    policy_dir: str,
    out_dir: str,
    per_device_batch: int,
    install: Callable[[int, int], None] = install_keyed_sampling,
    **config: Any,
) -> None:
    """Train ``STEPS`` steps; ``install(rank, per_device_batch)`` keys the family's sampler; ``config`` adds
    `ASRGRPOConfig` fields."""
    torch.set_num_threads(1)
    out = Path(out_dir)
    args = ASRGRPOConfig(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=per_device_batch,
        num_generations=G,
        max_steps=STEPS,
        learning_rate=1e-3,
        beta=0.04,
        importance_sampling_level="sequence",
        loss_type="grpo",
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
        **config,
    )
    rank = args.process_index
    install(rank, per_device_batch)
    reward = LengthReward(rank, per_device_batch)
    trainer = ASRGRPOTrainer(policy_dir, [reward], args=args, train_dataset=dataset())
    trainer.train()

    model = trainer.accelerator.unwrap_model(trainer.model)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, out / f"rank{rank}.pt")
    record = {
        "rank": rank,
        "world": trainer.accelerator.num_processes,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "log_history": trainer.state.log_history,
        "sampled": reward.sampled,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(record, default=float))
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
